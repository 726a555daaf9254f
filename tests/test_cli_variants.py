"""lmvae.cli for the model variants: training from an annotation file with a mixture prior, an
injection mode, LoRA and unfrozen layers in one run; then the commands on the result, and the
one-line errors of bad annotations, columns and categories."""

from __future__ import annotations

import json

import pytest
from support import CORPUS

from lmvae import LanguageVAE
from lmvae.cli import main

pytest.importorskip("peft")

DET, ADP = {"the", "a", "my", "his", "we"}, {"on", "in", "at", "over", "to", "with", "across"}


def tag(text):
    return ["DET" if w in DET else "ADP" if w in ADP else "W" for w in text.split()]


def family(text):
    return "the" if text.startswith("the ") else "other"


def _base(backbones, out):
    return [
        "train",
        "--encoder", str(backbones.encoder("bert")),
        "--decoder", str(backbones.decoder("gpt2")),
        "--out", str(out),
        "--epochs", "1",
        "--latent-size", "8",
        "--batch-size", "8",
        "--max-length", "16",
        "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(backbones, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-variants")
    data = root / "roles.jsonl"
    records = [{"text": t, "roles": tag(t), "family": family(t)} for t in CORPUS]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = root / "run"
    argv = _base(backbones, out) + [
        "--annotations", str(data),
        "--label-field", "roles",
        "--condition", "both",
        "--prior", "mixture",
        "--prior-label", "family",
        "--injection", "memory",
        "--lora-decoder",
        "--lora-rank", "2",
        "--unfreeze-top", "1",
    ]  # fmt: skip
    code = main(argv)
    return {"code": code, "root": root, "data": data, "out": out, "best": str(out / "best")}


def _one_error_line(capsys, code, *fragments):
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error:") and "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_train_saves_every_option(run):
    assert run["code"] == 0
    vae = LanguageVAE.from_pretrained(run["best"])
    cfg = vae.config
    assert cfg.annotations.labels == ["ADP", "DET", "W"] and cfg.annotations.field == "roles"
    assert cfg.annotations.encoder and cfg.annotations.decoder
    assert (cfg.prior.kind, cfg.prior.field, cfg.prior.categories) == (
        "mixture",
        "family",
        ["other", "the"],
    )
    assert cfg.decoder.injection == "memory"
    assert (cfg.decoder.lora_rank, cfg.decoder.unfreeze_top, cfg.encoder.lora_rank) == (2, 1, 0)
    assert any(".lora_B." in k for k in vae.trainable_state_dict())


def test_reconstruct_and_encode_read_the_labels(run, capsys):
    assert main(["reconstruct", run["best"], "--data", str(run["data"]), "--format", "jsonl"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == CORPUS
    assert main(["encode", run["best"], "--data", str(run["data"])]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(CORPUS)


def test_generate_a_category_with_labels(run, capsys):
    argv = ["generate", run["best"], "-n", "3", "--category", "the", "--labels", "DET W W"]
    assert main(argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    _one_error_line(
        capsys,
        main(["generate", run["best"], "-n", "2", "--category", "dogs"]),
        "category 'dogs' is not in the prior (categories: other, the)",
    )


def test_error_reconstruct_plain_text_with_a_conditioned_encoder(run, capsys, tmp_path):
    data = tmp_path / "plain.txt"
    data.write_text("the cat sat on the mat\n")
    _one_error_line(
        capsys,
        main(["reconstruct", run["best"], "--data", str(data)]),
        "conditioned on word labels",
    )


def test_error_evaluate_a_conditioned_model(run, capsys):
    _one_error_line(
        capsys,
        main(["evaluate", run["best"], "--data", str(run["data"])]),
        "conditioned on word labels ('roles')",
    )


def test_error_label_count_differs_from_word_count(run, backbones, capsys, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"text": "the cat sat", "labels": ["DET", "W"]}) + "\n")
    argv = _base(backbones, tmp_path / "o") + ["--annotations", str(data)]
    _one_error_line(capsys, main(argv), "bad.jsonl:1: 2 labels for 3 words")


def test_error_unknown_label_column(run, backbones, capsys, tmp_path):
    data = tmp_path / "a.conll"
    data.write_text("# global.columns = FORM POS\nthe\tDET\ncat\tNOUN\n")
    argv = _base(backbones, tmp_path / "o") + ["--annotations", str(data), "--label-field", "srl"]
    _one_error_line(capsys, main(argv), "unknown label column 'srl' (columns: FORM POS)")


def test_error_mixture_prior_options(run, backbones, capsys, tmp_path):
    argv = _base(backbones, tmp_path / "o") + ["--data", str(run["data"]), "--prior", "mixture"]
    _one_error_line(capsys, main(argv), "--prior mixture needs --prior-label")
    argv += ["--prior-label", "topic"]
    _one_error_line(capsys, main(argv), "no category field 'topic'")
    argv = _base(backbones, tmp_path / "o") + ["--data", str(run["data"])]
    _one_error_line(capsys, main(argv + ["--annotations", str(run["data"])]), "either --data or")


def test_train_per_position_from_a_conll_file_with_encoder_lora(backbones, tmp_path):
    lines = ["# global.columns = FORM ROLE"]
    for text in CORPUS:
        lines += [f"# family = {family(text)}"]
        lines += [f"{w}\t{lab}" for w, lab in zip(text.split(), tag(text), strict=True)] + [""]
    data = tmp_path / "roles.conll"
    data.write_text("\n".join(lines))
    argv = _base(backbones, tmp_path / "o") + [
        "--annotations", str(data),
        "--label-field", "ROLE",
        "--injection", "per_position",
        "--lora-encoder",
        "--encoder-layer", "-1",
    ]  # fmt: skip
    assert main(argv) == 0
    vae = LanguageVAE.from_pretrained(tmp_path / "o" / "best")
    assert vae.config.decoder.injection == "per_position" and vae.config.encoder.lora_rank == 8
    assert vae.config.annotations.labels == ["ADP", "DET", "W"]


def test_train_packed_with_a_prompt_template_and_reconstruct(backbones, tmp_path, capsys):
    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(CORPUS[:40]) + "\n")
    template = "the {latent} the cat"  # words of the tiny decoder's vocabulary
    argv = _base(backbones, tmp_path / "run") + [
        "--data", str(data), "--injection", "prompt", "--prompt-template", template, "--pack",
    ]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["pack"] is True
    best = str(tmp_path / "run" / "best")
    model = LanguageVAE.from_pretrained(best)
    assert model.config.decoder.prompt_template == template
    assert model.codec.start_id != model.codec.bos_id  # the template's last token starts
    capsys.readouterr()
    assert main(["reconstruct", best, "--data", str(data)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 40


def test_error_a_prompt_template_without_its_placeholder(backbones, tmp_path, capsys):
    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(CORPUS[:8]) + "\n")
    argv = _base(backbones, tmp_path / "run") + [
        "--data", str(data), "--injection", "prompt", "--prompt-template", "no placeholder",
    ]  # fmt: skip
    _one_error_line(capsys, main(argv), "prompt template", "{latent}")
