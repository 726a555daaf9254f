"""lmvae grid end to end on tiny backbones: a 2 x 1 grid through the CLI, its table, plots and
index; a rerun skips finished cells, a half-finished cell resumes, a failed cell is recorded
while the others finish, a time budget stops training, and SIGTERM stops the study with a cell
that resumes from its step checkpoint."""

from __future__ import annotations

import json
import os
import signal

import pytest

from lmvae.cli import main
from lmvae.errors import TrainingInterrupted
from lmvae.probes.records import load_probe_data
from lmvae.training import loop


def _study(path, backbones, data, encoders=("bert", "gpt2enc"), epochs=1, seed=0, minutes=0):
    paths = {"bert": backbones.encoder("bert"), "gpt2enc": backbones.encoder("gpt2-enc")}
    table = "\n".join(f'{e} = "{paths.get(e, "/nonexistent/encoder")}"' for e in encoders)
    path.write_text(
        f"""
name = "t"
latent_sizes = [8]
seeds = [{seed}]
[encoders]
{table}
[decoders]
gpt2 = "{backbones.decoder("gpt2")}"
[conditions]
plain = {{}}
[data]
path = "{data.name}"
train_sentences = 40
heldout_sentences = 30
heldout_fraction = 0.4
[model]
preset = "tiny"
decoder_max_length = 16
[train]
batch_size = 8
[budget]
epochs = {epochs}
minutes = {minutes}
[probes]
sentences = 30
cka_sentences = 24
attention_sentences = 8
report = ["disentanglement"]
maps = ["pca"]
full_eval = false
"""
    )
    return str(path)


@pytest.fixture(scope="module")
def grid(backbones, tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    demo = load_probe_data("demo").subset(range(80))
    data = root / "demo.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": t, "labels": r, "template": k}) + "\n"
            for t, r, k in zip(demo.texts, demo.roles, demo.labels["template"], strict=True)
        )
    )
    study = _study(root / "study.toml", backbones, data)
    out = root / "study"
    code = main(["grid", study, "--out", str(out)])
    return {"code": code, "root": root, "out": out, "data": data, "study": study}


def _results(out) -> dict[str, dict]:
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    return {r["cell"]: r for r in rows}


def test_every_cell_is_trained_measured_and_tabled(grid):
    assert grid["code"] == 0
    out = grid["out"]
    rows = _results(out)
    assert set(rows) == {"bert__gpt2__plain__z8__s0", "gpt2enc__gpt2__plain__z8__s0"}
    for cell, row in rows.items():
        assert row["status"] == "done" and row["error"] is None
        for key in ("bleu", "loop_rate", "eos_rate", "kl", "neg_elbo", "decoder_nll", "mig"):
            assert key in row, key
        assert row["cka"]["n"] == 24 and len(row["cka"]["matrix"]) == 3
        assert len(row["slot_attention"]["per_layer"]) == 2
        assert (out / "cells" / cell / "report" / "report.html").is_file()
    md = (out / "comparison.md").read_text()
    assert "| bert__gpt2__plain__z8__s0 |" in md
    assert (out / "comparison.csv").read_text().startswith("cell,encoder,decoder,condition")
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {"heatmap_bleu.png", "heatmap_mig.png", "training_curves.png"} <= plots
    assert {"reconstruction_vs_disentanglement.png", "slot_attention_per_layer.png"} <= plots
    index = (out / "index.html").read_text()
    assert 'href="cells/bert__gpt2__plain__z8__s0/report/report.html"' in index
    assert 'src="plots/heatmap_bleu.png"' in index


def test_a_rerun_skips_finished_cells(grid, capsys):
    result = grid["out"] / "cells" / "bert__gpt2__plain__z8__s0" / "result.json"
    before = result.stat().st_mtime_ns
    assert main(["grid", grid["study"], "--out", str(grid["out"])]) == 0
    err = capsys.readouterr().err
    assert err.count(": done, skipped") == 2 and "running" not in err
    assert result.stat().st_mtime_ns == before


def test_a_half_finished_cell_resumes(grid, backbones, capsys):
    out = grid["out"]
    cell = out / "cells" / "gpt2enc__gpt2__plain__z8__s0"
    (cell / "result.json").unlink()
    (cell / "trained.json").unlink()  # as if stopped after its first epoch
    study = _study(grid["root"] / "two.toml", backbones, grid["data"], epochs=2)
    assert main(["grid", study, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "resuming after epoch 1" in err and err.count(": done, skipped") == 1
    history = json.loads((cell / "result.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert _results(out)[cell.name]["epochs"] == 2


def test_a_failed_cell_is_recorded_and_the_others_finish(grid, backbones, capsys):
    out = grid["root"] / "failing"
    study = _study(
        grid["root"] / "failing.toml",
        backbones,
        grid["data"],
        encoders=("broken", "bert"),
        epochs=3,
        seed=1,
        minutes=0.00001,
    )
    assert main(["grid", study, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    rows = _results(out)
    broken = rows["broken__gpt2__plain__z8__s1"]
    assert broken["status"] == "failed" and "/nonexistent/encoder" in broken["error"]
    assert "\n" not in broken["error"]
    assert rows["bert__gpt2__plain__z8__s1"]["status"] == "done"
    assert rows["bert__gpt2__plain__z8__s1"]["epochs"] == 1  # the time budget stopped it
    assert "budget is spent" in err and "1 done, 1 failed" in err
    assert err.strip().splitlines()[-1].startswith("error: 1 cell(s) failed")
    assert "failed" in (out / "comparison.md").read_text()


def test_cell_patterns_run_part_of_a_study(grid, backbones, capsys):
    study = _study(grid["root"] / "part.toml", backbones, grid["data"], encoders=("broken", "bert"))
    out = grid["root"] / "part"
    assert main(["grid", study, "--out", str(out), "--cell", "nothing*"]) == 2
    assert "--cell 'nothing*' matches no cell" in capsys.readouterr().err
    assert main(["grid", study, "--out", str(out), "--cell", "broken__*"]) == 2  # it fails fast
    rows = _results(out)
    assert rows["broken__gpt2__plain__z8__s0"]["status"] == "failed"
    assert rows["bert__gpt2__plain__z8__s0"]["status"] == "pending"  # not run, still tabled
    assert "bert__gpt2" not in capsys.readouterr().err


def test_sigterm_stops_the_study_and_the_cell_resumes_from_its_step(grid, backbones, capsys):
    out = grid["root"] / "stopped"
    study = _study(grid["root"] / "stopped.toml", backbones, grid["data"], seed=2)
    original, sent = loop.cyclical_beta, []

    def beta(at, *args):  # SIGTERM as the third step of the first cell begins
        if at == 2 and not sent:
            sent.append(os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)
        return original(at, *args)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(loop, "cyclical_beta", beta)
        assert main(["grid", study, "--out", str(out)]) == TrainingInterrupted.exit_code
    err = capsys.readouterr().err
    first, second = "bert__gpt2__plain__z8__s2", "gpt2enc__gpt2__plain__z8__s2"
    assert f"SIGTERM stopped the study in cell {first}" in err and "run the same lmvae grid" in err
    assert [r["status"] for r in _results(out).values()] == ["pending", "pending"]
    assert list((out / "cells" / first / "run" / "steps").glob("step-*"))
    assert not (out / "cells" / second).exists()  # the study stopped: no other cell started
    assert main(["grid", study, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "resuming" in err and "(step 3)" in err
    rows = _results(out)
    assert rows[first]["status"] == rows[second]["status"] == "done"
