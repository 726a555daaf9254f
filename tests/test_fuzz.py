"""Property-based fuzzing (hypothesis) of what users hand lmvae: the data readers take any
bytes and either read sentences or raise one DataError; the command line takes any argument
list and ends in exit 0 or 2 with no traceback.  Example counts stay modest (a few seconds)."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmvae.annotations import CONLL_SUFFIXES, read_annotations
from lmvae.cli import main
from lmvae.data import read_corpus
from lmvae.errors import DataError
from lmvae.textfiles import jsonl_records

FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)
WORK = Path(tempfile.mkdtemp(prefix="lmvae-fuzz-"))

# Bytes that look like text files, with the characters that break readers mixed in.
_pieces = st.sampled_from(
    [b"the cat sat", b"\n", b"\r\n", b"\t", b",", b'"', b"{", b"}", b"[", b"]", b":", b"\x00",
     b"\x1b", b"\xef\xbb\xbf", b"\xff\xfe", b"\xe2\x80\xa8", b"\xc3", b'"text"', b" ", b"#",
     b"# text = x", b"1\tdog\t_\tNOUN", b"null", b"0", b"-1e999", b"\\u0000"]
)  # fmt: skip
file_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(_pieces, max_size=40).map(b"".join),
)
records = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["text", "labels", "category", "x"]), children, max_size=4
        )
    ),
    max_leaves=12,
)


def _write(content: bytes, suffix: str) -> Path:
    path = WORK / f"data{suffix}"
    path.write_bytes(content)
    return path


def _check_sentences(texts) -> None:
    assert texts and all(isinstance(t, str) and t == t.strip() and t for t in texts)


@FUZZ
@given(content=file_bytes, suffix=st.sampled_from([".txt", ".jsonl", ".json", ".csv", ".tsv"]))
def test_read_corpus_reads_sentences_or_raises_a_data_error(content, suffix):
    try:
        texts = read_corpus(_write(content, suffix))
    except DataError as e:
        assert str(e) and "\n" not in str(e).strip()
        return
    _check_sentences(texts)
    assert not any("\x00" in t for t in texts)


@FUZZ
@given(lines=st.lists(records, max_size=6), field=st.sampled_from(["text", "x"]))
def test_jsonl_of_any_values(lines, field):
    path = _write("\n".join(json.dumps(r) for r in lines).encode(), ".jsonl")
    assert len(jsonl_records(path)) == len(lines)
    try:
        texts = read_corpus(path, text_field=field)
    except DataError:
        return
    _check_sentences(texts)


@FUZZ
@given(
    content=file_bytes,
    suffix=st.sampled_from([".jsonl", ".json", *CONLL_SUFFIXES[:2]]),
    label_field=st.sampled_from(["labels", "UPOS", "1", "-1", "99", None]),
    category_field=st.sampled_from([None, "category", "text"]),
)
def test_read_annotations_reads_a_corpus_or_raises_a_data_error(
    content, suffix, label_field, category_field
):
    try:
        corpus = read_annotations(_write(content, suffix), label_field, category_field)
    except DataError as e:
        assert str(e)
        return
    for text, row in zip(corpus.texts, corpus.labels or [], strict=False):
        assert len(row) == len(text.split())


# -- the command line ----------------------------------------------------------------------------
_commands = ["train", "encode", "reconstruct", "generate", "interpolate", "evaluate", "probe"]
_options = [
    "--data", "--out", "--format", "--strategy", "--n", "-n", "--steps", "--mode", "--top-p",
    "--top-k", "--temperature", "--num-beams", "--device", "--latent-size", "--epochs", "--lr",
    "--batch-size", "--encoder", "--decoder", "--resume", "--overwrite", "--seed", "--threads",
    "--max-new-tokens", "--text-field", "--prior", "--injection", "--trust-remote-code",
    "--allow-pickle", "--help", "--max-length", "--eval-data",
]  # fmt: skip
_values = st.sampled_from(
    ["", " ", "-", "--", "0", "-1", "2.5", "nan", "inf", "1e309", "99999999999999999999",
     "text", "jsonl", "xml", "greedy", "beam", "slerp", "cuda:7", "cpu", "mps", "\u2028",
     "é", "a dog runs", str(WORK / "missing.txt"), str(WORK), str(WORK / "data.txt"),
     str(WORK / "out"), "/dev/null", "x" * 300]
)  # fmt: skip
argv = st.tuples(
    st.sampled_from(_commands),
    st.lists(st.one_of(st.sampled_from(_options), _values), max_size=8),
).map(lambda t: [t[0], *t[1]])


@settings(FUZZ, max_examples=30, suppress_health_check=list(HealthCheck))
@given(args=argv)
def test_the_command_line_never_shows_a_traceback(args):
    # No real model or backbone exists under these names, so nothing long runs: every call
    # ends at a usage error, a check, or a failed load.
    (WORK / "data.txt").write_text("a dog runs\nthe cat sat\n")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert code in (0, 2), (args, code, err.getvalue())
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert err.getvalue().strip(), args
