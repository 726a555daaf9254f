"""Inputs that used to be accepted silently (issue 16, class 5): empty sentences, binary files
read as text, NaN latents, mistyped API arguments, a string given as the corpus, sentences cut
at max_length and unknown word labels (counted and reported)."""

from __future__ import annotations

import pytest
import torch
from support import CORPUS

from lmvae import LanguageVAE, TrainConfig, train
from lmvae.cli import main
from lmvae.data import read_corpus
from lmvae.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def vae(make_vae):
    return make_vae("bert", "gpt2", decoder_max_length=12)


@pytest.mark.parametrize("bad", ["", "   ", "\t\n"])
def test_empty_or_whitespace_sentences_are_refused(vae, bad):
    for call in (
        lambda: vae.encode(["a dog runs", bad]),
        lambda: vae.reconstruct([bad]),
        lambda: vae.posterior([bad]),
    ):
        with pytest.raises(ConfigError, match="sentence .* is empty or only whitespace"):
            call()
    with pytest.raises(ConfigError, match="end is empty or only whitespace"):
        vae.interpolate("a dog runs", bad)


def test_sentences_that_are_not_strings_are_refused(vae):
    with pytest.raises(ConfigError, match="sentence 1 must be a string, got int"):
        vae.encode(["a dog runs", 3])
    with pytest.raises(ConfigError, match="start must be a string, got NoneType"):
        vae.interpolate(None, "a dog runs")


def test_interpolate_on_the_command_line_refuses_an_empty_sentence(vae, tmp_path, capsys):
    folder = vae.save_pretrained(tmp_path / "m")
    assert main(["interpolate", str(folder), "a dog runs", "  "]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "end is empty or only whitespace" in err


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_latent_is_refused_not_decoded_to_nothing(vae, value):
    z = torch.zeros(3, 8)
    z[1, 2] = value
    with pytest.raises(ConfigError, match=r"1 latent\(s\) hold NaN or inf \(row 1\)"):
        vae.decode(z)
    with pytest.raises(ConfigError, match="floating point"):
        vae.decode(torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(ConfigError, match="must be a tensor"):
        vae.decode([[0.0] * 8])


@pytest.mark.parametrize("n", [-1, 0, 2.5, True, "3"])
def test_sample_prior_needs_a_whole_positive_number(vae, n):
    with pytest.raises(ConfigError, match="sample_prior needs a whole number n >= 1"):
        vae.sample_prior(n)


def test_mistyped_api_arguments(vae):
    with pytest.raises(ConfigError, match="seed must be an integer"):
        vae.sample_prior(2, seed=1.5)
    with pytest.raises(ConfigError, match="whole number of steps >= 2"):
        vae.interpolate("a dog runs", "the cat sat", steps=2.5)


def test_a_fractional_latent_size_is_refused_before_loading_backbones():
    # The backbones do not exist: the size is checked first.
    with pytest.raises(ConfigError, match="latent_size must be an integer, got 2.5"):
        LanguageVAE.from_backbones("/no/such/encoder", "/no/such/decoder", latent_size=2.5)


@pytest.mark.parametrize("corpus", ["the cat sat on the mat", b"bytes", 42, [CORPUS[0], None]])
def test_train_refuses_what_is_not_a_list_of_sentences(vae, corpus):
    with pytest.raises(ConfigError, match="train_texts"):
        train(vae, corpus, config=TrainConfig(epochs=1))


def test_train_refuses_a_path_as_the_corpus(vae, tmp_path):
    with pytest.raises(ConfigError, match="single PosixPath.*read_corpus"):
        train(vae, CORPUS[:4], tmp_path / "heldout.txt", TrainConfig(epochs=1))


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"\x00" * 64, "holds a NUL byte"),
        (b"a dog runs\n\x00\x01\x02\n", "holds a NUL byte"),
        (bytes(range(1, 32)) * 4, "control characters"),
    ],
)
@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl"])
def test_a_binary_file_is_refused(tmp_path, content, fragment, suffix):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"is not a text file: .*{fragment}"):
        read_corpus(path)


def test_a_binary_file_on_the_command_line(vae, tmp_path, capsys):
    folder = vae.save_pretrained(tmp_path / "m")
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"\x00\x01\x02" * 40)
    assert main(["encode", str(folder), "--data", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a text file" in err


def test_tabs_and_a_stray_control_character_still_read(tmp_path):
    path = tmp_path / "ok.txt"
    path.write_text("a dog\truns\r\n" + "the cat sat on the mat\n" * 20 + "odd \x1b char\n")
    assert len(read_corpus(path)) == 22


def test_cut_sentences_are_counted_in_the_training_log(make_vae):
    vae = make_vae("bert", "gpt2", decoder_max_length=5)
    lines = []
    config = TrainConfig(epochs=1, progress=False)
    result = train(vae, CORPUS[:8], CORPUS[8:10], config, None, lines.append)
    cut = [line for line in lines if "longer than the decoder's max_length" in line]
    assert cut and cut[0].startswith("training data: ") and "cut to 4 tokens" in cut[0]
    assert result.notes == [line for line in lines if line.startswith(("training", "held-out"))]


def test_a_clean_run_logs_no_notes(make_vae):
    lines = []
    vae = make_vae("bert", "gpt2", decoder_max_length=16)
    result = train(vae, CORPUS[:8], (), TrainConfig(epochs=1, progress=False), None, lines.append)
    assert result.notes == []
    assert not any("max_length" in line or "label" in line for line in lines)


def test_reconstruct_on_the_command_line_reports_cut_sentences(vae, tmp_path, capsys):
    folder = vae.save_pretrained(tmp_path / "m")
    data = tmp_path / "long.txt"
    data.write_text("a dog runs\n" + " ".join(CORPUS[:4]) + "\n")
    assert main(["reconstruct", str(folder), "--data", str(data)]) == 0
    err = capsys.readouterr().err
    assert "note: " in err and "1 of 2 sentences are longer than the decoder's max_length" in err
