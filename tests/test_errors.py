"""lmvae.errors: every user-facing error is an LmvaeError and keeps its standard base class."""

from __future__ import annotations

import lmvae
from lmvae.errors import ConfigError, DataError, LmvaeError, LoadError


def test_hierarchy():
    assert issubclass(ConfigError, LmvaeError) and issubclass(ConfigError, ValueError)
    assert issubclass(DataError, LmvaeError) and issubclass(DataError, ValueError)
    assert issubclass(LoadError, LmvaeError) and issubclass(LoadError, OSError)
    assert lmvae.LmvaeError is LmvaeError


def test_lazy_public_api():
    from lmvae.evaluation import evaluate
    from lmvae.model import LanguageVAE
    from lmvae.train_config import TrainConfig

    assert lmvae.LanguageVAE is LanguageVAE and lmvae.TrainConfig is TrainConfig
    assert lmvae.evaluate is evaluate
    for name in lmvae.__all__:
        assert getattr(lmvae, name) is not None
    try:
        lmvae.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("unknown attribute did not raise")


def test_top_level_train_is_the_function_every_time():
    import importlib

    importlib.import_module("lmvae.training")  # submodules must not shadow the function
    importlib.import_module("lmvae.evaluation")
    from lmvae import train

    assert callable(train), f"lmvae.train is {train!r}"
