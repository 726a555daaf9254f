"""Exceptions whose message is a one-line explanation a user can act on.

The CLI prints these as a single line; anything else is a bug and keeps its traceback.
"""


class LmvaeError(Exception):
    """Base class for every error lmvae raises on bad input."""


class ConfigError(LmvaeError, ValueError):
    """A setting that cannot work."""


class DataError(LmvaeError, ValueError):
    """A corpus or input that cannot be read or is empty."""


class LoadError(LmvaeError, OSError):
    """A model or backbone that cannot be found or does not match its config."""


class TrainingDiverged(LmvaeError, ArithmeticError):
    """Training met too many non-finite losses or gradients in a row and stopped."""


class CheckpointError(LmvaeError, OSError):
    """A checkpoint or a run file could not be written (a full disk, a read-only folder); the
    previous checkpoint is kept."""
