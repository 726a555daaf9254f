"""lmvae.cli: one tiny training run shared by the module, then every command and error path."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from support import CORPUS

from lmvae import LanguageVAE
from lmvae.cli import main


@pytest.fixture(scope="module")
def run(backbones, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "corpus.txt"
    data.write_text("\n".join(CORPUS) + "\n")
    out = root / "run"
    argv = [
        "train",
        "--encoder", str(backbones.encoder("bert")),
        "--decoder", str(backbones.decoder("llama-gqa")),
        "--data", str(data),
        "--out", str(out),
        "--epochs", "1",
        "--latent-size", "8",
        "--batch-size", "8",
        "--max-length", "16",
        "--no-progress",
    ]  # fmt: skip
    code = main(argv)
    return {"code": code, "root": root, "data": data, "out": out, "best": str(out / "best")}


def _one_error_line(capsys, code, *fragments):
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error:")
    assert "Traceback" not in captured.err + captured.out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_train_writes_loadable_best_and_last_and_history(run):
    assert run["code"] == 0
    out = run["out"]
    assert {"best", "last", "history.jsonl"} <= set(os.listdir(out))
    for name in ("best", "last"):
        vae = LanguageVAE.from_pretrained(out / name)
        assert vae.latent_size == 8
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1]
    assert "eval_neg_elbo" in history[0]  # a held-out split was made from --data
    assert json.loads((out / "train_config.json").read_text())["batch_size"] == 8


def test_reconstruct_jsonl(run, capsys):
    capsys.readouterr()
    assert main(["reconstruct", run["best"], "--data", str(run["data"]), "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(CORPUS)
    records = [json.loads(line) for line in lines]
    assert all(set(r) == {"text", "reconstruction"} for r in records)
    assert [r["text"] for r in records] == CORPUS
    vae = LanguageVAE.from_pretrained(run["best"])
    assert [r["reconstruction"] for r in records[:3]] == vae.reconstruct(CORPUS[:3])


def test_reconstruct_text_and_json_formats(run, capsys, tmp_path):
    f = tmp_path / "two.jsonl"
    f.write_text("".join(json.dumps({"sentence": s}) + "\n" for s in CORPUS[:2]))
    base = ["reconstruct", run["best"], "--data", str(f), "--text-field", "sentence"]
    capsys.readouterr()
    assert main([*base, "--max-new-tokens", "3"]) == 0
    text_lines = capsys.readouterr().out.splitlines()  # text format: tab-separated fields
    assert [line.split("\t")[0] for line in text_lines] == CORPUS[:2]
    assert all(len(line.split("\t")[1].split()) <= 3 for line in text_lines)
    assert main([*base, "--format", "json", "--strategy", "beam", "--num-beams", "2"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in records] == CORPUS[:2]


def test_encode_jsonl(run, capsys):
    capsys.readouterr()
    assert main(["encode", run["best"], "--data", str(run["data"]), "--logvar"]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(records) == len(CORPUS)
    assert all(len(r["z"]) == 8 and len(r["logvar"]) == 8 for r in records)
    vae = LanguageVAE.from_pretrained(run["best"])
    expected = vae.encode(CORPUS[:2])
    torch.testing.assert_close(
        torch.tensor([r["z"] for r in records[:2]]), expected, atol=1e-5, rtol=0
    )
    # Sampled latents are seeded.
    argv = ["encode", run["best"], "--data", str(run["data"]), "--sample", "--seed", "3"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert [json.loads(x)["z"] for x in first.splitlines()][0] != records[0]["z"]


def test_encode_output_reads_back_as_data(run, capsys, tmp_path):
    capsys.readouterr()
    assert main(["encode", run["best"], "--data", str(run["data"])]) == 0
    f = tmp_path / "latents.jsonl"
    f.write_text(capsys.readouterr().out)
    assert main(["reconstruct", run["best"], "--data", str(f), "--max-new-tokens", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(CORPUS)


def test_generate_jsonl(run, capsys):
    capsys.readouterr()
    argv = ["generate", run["best"], "-n", "3", "--format", "jsonl", "--max-new-tokens", "6"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    records = [json.loads(x) for x in out.splitlines()]
    assert len(records) == 3 and all(set(r) == {"text"} for r in records)
    assert main(argv) == 0
    assert capsys.readouterr().out == out  # default seed: reproducible
    assert main([*argv, "--strategy", "sample", "--top-k", "5", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_interpolate_json(run, capsys):
    capsys.readouterr()
    argv = ["interpolate", run["best"], "a", "b", "--steps", "4", "--format", "json"]
    assert main(argv) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert [r["t"] for r in records] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0], abs=1e-4)
    vae = LanguageVAE.from_pretrained(run["best"])
    assert [r["text"] for r in records] == vae.interpolate("a", "b", steps=4)


def test_evaluate_writes_every_figure(run, capsys, tmp_path):
    out = tmp_path / "figs" / "figures.json"
    argv = ["evaluate", run["best"], "--data", str(run["data"]), "--max-sentences", "8"]
    capsys.readouterr()
    assert main([*argv, "--no-full", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    figures = json.loads(out.read_text())
    assert {
        "bleu", "exact_match", "loop_rate", "eos_rate", "decoder_nll", "recon_nll", "kl",
        "neg_elbo", "active_units", "examples",
    } <= set(figures)  # fmt: skip
    assert "mutual_information" not in figures and "prior_distinct_2" not in figures
    assert [e["reference"] for e in figures["examples"]] == CORPUS[:8]
    assert figures["neg_elbo"] == pytest.approx(figures["recon_nll"] + figures["kl"])
    for fragment in ("bleu", "eos rate", "decoder nll", "active units", str(out)):
        assert fragment in captured.err
    assert os.listdir(out.parent) == ["figures.json"]  # the temporary file was renamed

    assert main([*argv, "--full", "--seed", "1"]) == 0  # no --out: the JSON goes to stdout
    captured = capsys.readouterr()
    full = json.loads(captured.out)
    assert {"mutual_information", "prior_distinct_2", "iw_nll", "prior_examples"} <= set(full)
    assert full["bleu"] == pytest.approx(figures["bleu"])
    assert "mutual information" in captured.err


# -- errors: one line, exit code 2, no traceback ---------------------------------------------------


def _train_argv(run, backbones, tmp_path, **overrides):
    opts = {
        "--encoder": str(backbones.encoder("bert")),
        "--decoder": str(backbones.decoder("llama-gqa")),
        "--data": str(run["data"]),
        "--out": str(tmp_path / "out"),
        "--epochs": "1",
        **overrides,
    }
    return ["train", *[x for kv in opts.items() for x in kv], "--no-progress"]


def test_error_missing_data_file(run, backbones, tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    code = main(_train_argv(run, backbones, tmp_path, **{"--data": str(missing)}))
    _one_error_line(capsys, code, "does not exist", str(missing))
    assert not (tmp_path / "out" / "best").exists()


def test_error_evaluate_options(run, tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    code = main(["evaluate", run["best"], "--data", str(missing)])
    _one_error_line(capsys, code, "does not exist", str(missing))
    code = main(["evaluate", run["best"], "--data", str(run["data"]), "--max-sentences", "0"])
    _one_error_line(capsys, code, "--max-sentences")
    argv = ["evaluate", run["best"], "--data", str(run["data"]), "--max-sentences", "2"]
    code = main([*argv, "--no-full", "--out", str(tmp_path)])  # a folder cannot be replaced
    _one_error_line(capsys, code, "cannot write", str(tmp_path))


def test_error_empty_corpus(run, backbones, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    code = main(_train_argv(run, backbones, tmp_path, **{"--data": str(empty)}))
    _one_error_line(capsys, code, "no sentences")


def test_error_nonexistent_model_folder(run, tmp_path, capsys):
    for command in ("reconstruct", "encode", "evaluate"):
        code = main([command, str(tmp_path / "nope"), "--data", str(run["data"])])
        _one_error_line(capsys, code, "not an lmvae model folder")
    code = main(["generate", str(tmp_path / "nope"), "-n", "1"])
    _one_error_line(capsys, code, "not an lmvae model folder")


def test_error_unknown_encoder_name(run, backbones, tmp_path, capsys):
    code = main(_train_argv(run, backbones, tmp_path, **{"--encoder": "no-such-org/no-such-model"}))
    _one_error_line(capsys, code, "no-such-org/no-such-model")


def test_error_latent_size_mismatch(run, tmp_path, capsys):
    edited = shutil.copytree(run["out"] / "best", tmp_path / "edited")
    config = json.loads((edited / "config.json").read_text())
    # The copied folder sits elsewhere: point it at the backbones by absolute path.
    for side in ("encoder", "decoder"):
        ref = config[side]["backbone"]
        ref["name_or_path"] = os.path.normpath(run["out"] / "best" / ref["name_or_path"])
    config["latent_size"] = 16
    (edited / "config.json").write_text(json.dumps(config))
    code = main(["reconstruct", str(edited), "--data", str(run["data"])])
    _one_error_line(capsys, code, "latent size")


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"--pooling": "max"}, "pooling"),
        ({"--encoder-layer": "top"}, "--encoder-layer"),
        ({"--encoder-layer": "7"}, "out of range"),
        ({"--latent-size": "0"}, "latent_size"),
        ({"--epochs": "0"}, "epochs"),
    ],
)
def test_error_bad_training_options(run, backbones, tmp_path, capsys, overrides, fragment):
    code = main(_train_argv(run, backbones, tmp_path, **overrides))
    _one_error_line(capsys, code, fragment)


def test_error_bad_generation_options(run, capsys):
    _one_error_line(capsys, main(["generate", run["best"], "-n", "0"]), "--n")
    code = main(["generate", run["best"], "-n", "1", "--temperature", "0"])
    _one_error_line(capsys, code, "temperature")
    code = main(["interpolate", run["best"], "a", "b", "--steps", "1"])
    _one_error_line(capsys, code, "steps >= 2")


def test_probe_writes_report_with_training_curves(run, capsys, tmp_path):
    from lmvae.probes.records import load_probe_data

    demo = load_probe_data("demo").subset(range(60))
    data = tmp_path / "probe.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": t, "labels": r, "template": k}) + "\n"
            for t, r, k in zip(demo.texts, demo.roles, demo.labels["template"], strict=True)
        )
    )
    out = tmp_path / "report"
    argv = ["probe", run["best"], "--data", str(data), "--out", str(out),
            "--probes", "traversal,clusters,properties", "--maps", "pca"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "report.html")
    assert "report written" in captured.err
    results = json.loads((out / "report.json").read_text())
    assert results["meta"]["probes"] == ["traversal", "clusters", "properties"]
    assert [r["epoch"] for r in results["training"]] == [1]  # found next to best/
    assert set(results["clusters"]["coords"]) == {"pca"}
    assert {"clusters_pca.png", "clusters_pca.html"} <= set(os.listdir(out))


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--probes", "nope"], "unknown probe 'nope'"),
        (["--probes", "sts"], "needs a file of sentence pairs"),
        (["--maps", "lda"], "unknown projection 'lda'"),
        (["--sts", "/nonexistent/pairs.tsv"], "STS file not found"),
    ],
)
def test_probe_errors(run, capsys, tmp_path, extra, fragment):
    argv = ["probe", run["best"], "--data", str(run["data"]), "--out", str(tmp_path / "r")]
    _one_error_line(capsys, main([*argv, *extra]), fragment)


def test_probe_missing_data(run, capsys, tmp_path):
    code = main(["probe", run["best"], "--data", str(tmp_path / "none.jsonl")])
    _one_error_line(capsys, code, "probe data not found")


def test_train_records_the_default_layout_and_a_preset(run, backbones, tmp_path):
    default = json.loads((run["out"] / "best" / "config.json").read_text())
    assert default["preset"] is None and default["decoder"]["injection"] == "prompt"
    argv = _train_argv(run, backbones, tmp_path, **{"--preset": "tiny", "--latent-size": "8"})
    assert main(argv) == 0
    tiny = json.loads((tmp_path / "out" / "best" / "config.json").read_text())
    assert tiny["preset"] == "tiny" and tiny["decoder"]["injection"] == "prefix"
    assert tiny["encoder"]["layer"] == 0
    state = json.loads((tmp_path / "out" / "best" / "trainer_state.json").read_text())
    assert state["train_config"]["lr"] == 1e-2  # the preset's, as no --lr was given


def test_error_unknown_preset(run, backbones, tmp_path, capsys):
    code = main(_train_argv(run, backbones, tmp_path, **{"--preset": "huge"}))
    _one_error_line(capsys, code, "unknown preset 'huge'")


def test_train_takes_a_backbone_inside_an_installed_package(
    run, backbones, tmp_path, monkeypatch, capsys
):
    package = tmp_path / "site" / "tiny_models_pkg"
    shutil.copytree(backbones.decoder("llama-gqa"), package / "decoder")
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    argv = _train_argv(run, backbones, tmp_path, **{"--decoder": "package:tiny_models_pkg/dec*"})
    assert main([*argv, "--latent-size", "8", "--max-length", "16"]) == 0
    best = tmp_path / "out" / "best"
    recorded = json.loads((best / "config.json").read_text())["decoder"]["backbone"]
    assert (best / recorded["name_or_path"]).resolve() == (package / "decoder").resolve()
    capsys.readouterr()
    argv = _train_argv(run, backbones, tmp_path, **{"--encoder": "package:no_such_pkg_here/x"})
    # The run folder is checked first: a model to unpack (mpnet: a minute) waits for it.
    _one_error_line(capsys, main(argv), "is not empty")
    _one_error_line(capsys, main([*argv, "--overwrite"]), "no installed package 'no_such_pkg_here'")
