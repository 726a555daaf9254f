"""A study file: which encoders, decoders, conditions, latent sizes and seeds to cross, on which
data, trained how and for how long.  TOML (``tomllib``; ``tomli`` on Python 3.10), or YAML
where PyYAML is installed; ``examples/grid_tiny.toml`` shows every section.

The cells are the cross product of the axes, narrowed by ``only`` (a cell runs if it matches
one of these partial cells) and ``exclude`` (it does not if it matches one), each a list of
tables such as ``{ encoder = "minilm", condition = "pos" }``: the paper's studies are not full
cross products.  Relative paths resolve against the study file's folder; what a backbone
entry may name: :mod:`lmvae.sources`.  The data ``path`` may be ``demo``: the bundled
demo corpus with its role labels.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmvae.errors import ConfigError
from lmvae.sources import resolve_backbone
from lmvae.train_config import TrainConfig

__all__ = ["Cell", "Condition", "DataSpec", "ProbeSpec", "Study", "load_study"]

_SECTIONS = {
    "name",
    "encoders",
    "decoders",
    "conditions",
    "latent_sizes",
    "seeds",
    "data",
    "model",
    "train",
    "budget",
    "probes",
    "only",
    "exclude",
}
_CELL_KEYS = ("encoder", "decoder", "condition", "latent_size", "seed")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Condition:
    """How word labels enter a cell's model: nowhere (the plain condition), or the encoder,
    the decoder or both, from the data's own labels or made by spaCy."""

    labels: str | None = None  # None | "encoder" | "decoder" | "both"
    spacy: str | None = None  # pos | tag | dep | ent: annotate with spaCy instead of the data
    spacy_model: str = "en_core_web_sm"


@dataclass
class DataSpec:
    """The corpus every cell trains and is evaluated on."""

    path: str | None = None  # .txt, .jsonl (text + per-word labels + sentence labels), .csv
    corpus: str | None = None  # "wordnet": lmvae.wordnet.build_corpus, with POS/lexfile factors
    heldout: str | None = None  # held-out file; default: a seeded split of `path`
    heldout_fraction: float = 0.1
    train_sentences: int = 0  # first N training sentences (0: all)
    heldout_sentences: int = 1000  # first N held-out sentences
    text_field: str = "text"
    labels_field: str = "labels"
    wordnet_root: str = "/usr/share/wordnet"


@dataclass
class ProbeSpec:
    """What is measured on each cell beyond :func:`lmvae.evaluation.evaluate_model`."""

    sentences: int = 1000  # held-out sentences of the probe report and disentanglement
    cka_sentences: int = 1000  # sentences of the layer-wise CKA (>= 1000 on real runs)
    attention_sentences: int = 200  # sentences of the slot attention mass
    report: list[str] = field(
        default_factory=lambda: ["reconstruction", "disentanglement", "clusters", "properties"]
    )
    maps: list[str] = field(default_factory=lambda: ["pca"])
    full_eval: bool = True  # evaluate_model(full=True): IW-NLL, MI, prior samples


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a model to build, train and measure."""

    encoder: str
    decoder: str
    condition: str
    latent_size: int
    seed: int

    @property
    def id(self) -> str:
        return (
            f"{self.encoder}__{self.decoder}__{self.condition}__z{self.latent_size}__s{self.seed}"
        )


@dataclass
class Study:
    """A parsed, checked study file."""

    name: str
    encoders: dict[str, str]
    decoders: dict[str, str]
    conditions: dict[str, Condition]
    latent_sizes: list[int]
    seeds: list[int]
    data: DataSpec
    model: dict[str, Any]
    train: TrainConfig
    probes: ProbeSpec
    root: Path = Path(".")
    only: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)

    def cells(self) -> list[Cell]:
        """Every cell ``only`` / ``exclude`` keep, in the order they run: encoder, decoder,
        condition, latent, seed."""
        crossed = itertools.product(
            self.encoders, self.decoders, self.conditions, self.latent_sizes, self.seeds
        )
        cells = [Cell(*values) for values in crossed]
        return [
            c
            for c in cells
            if (not self.only or any(_matches(c, m) for m in self.only))
            and not any(_matches(c, m) for m in self.exclude)
        ]

    def backbone(self, name: str, role: str) -> str:
        table = self.encoders if role == "encoder" else self.decoders
        return resolve_backbone(table[name], self.root)

    def path(self, value: str) -> Path:
        if value == "demo":
            return Path(value)
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path


def _matches(cell: Cell, partial: dict[str, Any]) -> bool:
    return all(getattr(cell, key) == value for key, value in partial.items())


def _partial_cells(raw: dict, key: str, axes: dict[str, list]) -> list[dict[str, Any]]:
    """``only`` / ``exclude``: partial cells whose every key and value names a real axis."""
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) and v for v in value):
        raise ConfigError(f'{key} must be a list of tables such as {{ encoder = "name" }}')
    for partial in value:
        for axis, wanted in partial.items():
            if axis not in axes:
                raise ConfigError(f"{key}: no axis {axis!r}: use {', '.join(_CELL_KEYS)}")
            if wanted not in axes[axis]:
                raise ConfigError(f"{key}: {axis} {wanted!r} is not in the study's {axis}s")
    return value


def _table(raw: dict, key: str, kind: type) -> Any:
    """A section as a dataclass, naming an unknown key."""
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table, got {value!r}")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ConfigError(f"[{key}] has no setting {unknown[0]!r}: use {', '.join(sorted(names))}")
    return kind(**value)


def _names(raw: dict, key: str) -> dict[str, Any]:
    value = raw.get(key)
    if isinstance(value, list):  # a list of backbones: named by their last path part
        value = {Path(str(v)).stem or str(v): v for v in value}
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"the study needs {key}: a table of name = backbone (hub id or path)")
    for name in value:
        if not _NAME.match(name) or "__" in name:
            raise ConfigError(f"{key} name {name!r}: use letters, digits, '.', '-', '_'")
    return value


def _ints(raw: dict, key: str, default: list[int]) -> list[int]:
    value = raw.get(key, default)
    value = value if isinstance(value, list) else [value]
    if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{key} must be a list of integers, got {value!r}")
    return value


def _conditions(raw: dict) -> dict[str, Condition]:
    value = raw.get("conditions", {"plain": {}})
    if not isinstance(value, dict) or not value:
        raise ConfigError("[conditions] must be a table of name = { labels = ..., spacy = ... }")
    out = {}
    for name, spec in _names({"conditions": value}, "conditions").items():
        cond = _table({name: spec}, name, Condition)
        if cond.labels not in (None, "encoder", "decoder", "both"):
            raise ConfigError(f"condition {name}: labels must be encoder, decoder or both")
        if cond.spacy is not None and cond.labels is None:
            cond.labels = "encoder"
        out[name] = cond
    return out


def parse_study(raw: dict, root: Path, name: str = "study") -> Study:
    """A study from its parsed file contents; every problem is a :class:`ConfigError`."""
    unknown = sorted(set(raw) - _SECTIONS)
    if unknown:
        raise ConfigError(
            f"unknown study setting {unknown[0]!r}: use {', '.join(sorted(_SECTIONS))}"
        )
    budget = raw.get("budget", {})
    if not isinstance(budget, dict) or set(budget) - {"epochs", "minutes"}:
        raise ConfigError("[budget] takes epochs and/or minutes")
    train_raw = {**raw.get("train", {}), "progress": False}
    if "epochs" in budget:
        train_raw["epochs"] = budget["epochs"]
    if "minutes" in budget:
        train_raw["max_minutes"] = float(budget["minutes"])
    model = raw.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError("[model] must be a table of LanguageVAE.from_backbones options")
    for key in ("latent_size", "seed", "annotations"):
        if key in model:
            raise ConfigError(f"[model] {key}: the grid sets it per cell")
    try:  # a preset in [model] brings its training settings too, as in lmvae train
        train = TrainConfig.from_preset(model.get("preset"), **train_raw)
    except TypeError as e:
        raise ConfigError(f"[train]: {e}") from None
    train.validate()
    data = _table(raw, "data", DataSpec)
    if (data.path is None) == (data.corpus is None):
        raise ConfigError('[data] needs path = a corpus file, or corpus = "wordnet" (not both)')
    if data.corpus not in (None, "wordnet"):
        raise ConfigError(f"[data] corpus {data.corpus!r}: the one built in is wordnet")
    latent_sizes = _ints(raw, "latent_sizes", [32])
    if any(v < 1 for v in latent_sizes):
        raise ConfigError(f"latent sizes must be >= 1, got {latent_sizes}")
    encoders = {k: str(v) for k, v in _names(raw, "encoders").items()}
    decoders = {k: str(v) for k, v in _names(raw, "decoders").items()}
    conditions = _conditions(raw)
    seeds = _ints(raw, "seeds", [0])
    axes = dict(
        zip(_CELL_KEYS, ([*encoders], [*decoders], [*conditions], latent_sizes, seeds), strict=True)
    )
    study = Study(
        name=str(raw.get("name", name)),
        encoders=encoders,
        decoders=decoders,
        conditions=conditions,
        latent_sizes=latent_sizes,
        seeds=seeds,
        data=data,
        model=dict(model),
        train=train,
        probes=_table(raw, "probes", ProbeSpec),
        root=root,
        only=_partial_cells(raw, "only", axes),
        exclude=_partial_cells(raw, "exclude", axes),
    )
    if not study.cells():
        raise ConfigError("only / exclude leave no cell to run")
    return study


def load_study(path: str | Path) -> Study:
    """Read and check a study file (.toml, or .yaml / .yml with PyYAML installed)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError("YAML study files need PyYAML: pip install pyyaml") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                raise ConfigError(
                    "TOML study files need Python 3.11+ or pip install tomli"
                ) from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study file is a table of settings")
    return parse_study(raw, path.parent.absolute(), path.stem)
