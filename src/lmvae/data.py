"""Corpora and tokenisation: text -> encoder tensors and decoder (input, label) tensors
(:class:`lmvae.codec.TextCodec` applies these with a model's tokenizers and settings).

Decoder sequences are ``[BOS] tokens`` as input and ``tokens [EOS]`` as target, so the model
learns to stop; padding is masked out of attention and out of the loss.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from lmvae.errors import DataError
from lmvae.textfiles import jsonl_records, read_text

IGNORE_INDEX = -100


def read_corpus(source: str | Path, text_field: str = "text", split: str = "train") -> list[str]:
    """Read sentences from a .txt (one per line), .jsonl, .json, .csv/.tsv file, or a Hugging
    Face dataset name (needs the ``datasets`` package).  Blank lines are skipped."""
    path = Path(source)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            texts = _read_jsonl(path, text_field)
        elif suffix == ".json":
            texts = _read_json(path, text_field)
        elif suffix in (".csv", ".tsv"):
            texts = _read_csv(path, text_field, "\t" if suffix == ".tsv" else ",")
        else:
            texts = read_text(path).split("\n")
    elif path.exists():
        raise DataError(f"{source} is not a file")
    elif path.suffix.lower() in (".txt", ".jsonl", ".json", ".csv", ".tsv") or path.is_absolute():
        raise DataError(f"corpus file {source} does not exist")
    else:
        texts = _read_hf_dataset(str(source), text_field, split)
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise DataError(f"corpus {source} holds no sentences")
    return texts


def _read_jsonl(path: Path, field: str) -> list[str]:
    return [record_text(record, field, where) for where, record in jsonl_records(path)]


def _read_json(path: Path, field: str) -> list[str]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of strings or objects")
    return [record_text(r, field, str(path)) for r in data]


def record_text(record: object, field: str, where: str) -> str:
    """A JSON record's text: the record itself if a string, else its string ``field``."""
    if isinstance(record, str):
        return record
    if isinstance(record, dict) and isinstance(record.get(field), str):
        return record[field]
    raise DataError(f"{where}: no string field {field!r}")


def _read_csv(path: Path, field: str, delimiter: str) -> list[str]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
    try:
        if reader.fieldnames is None:
            return []
        if field not in reader.fieldnames:
            raise DataError(
                f"{path}: no column {field!r} (columns: {', '.join(reader.fieldnames)})"
            )
        return [row[field] or "" for row in reader]
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None


def _read_hf_dataset(name: str, field: str, split: str) -> list[str]:
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"corpus {name} does not exist as a file; to read it as a Hugging Face dataset, "
            "install `datasets` (pip install 'lmvae[datasets]')"
        ) from None
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # datasets raises many types for a missing or unreachable dataset
        raise DataError(f"cannot load dataset {name!r}: {str(e).splitlines()[0]}") from None
    if field not in ds.column_names:
        raise DataError(f"dataset {name!r} has no column {field!r} (columns: {ds.column_names})")
    return list(ds[field])


def split_corpus(
    texts: Sequence[str], eval_fraction: float, max_eval: int, seed: int
) -> tuple[list[str], list[str]]:
    """Shuffle deterministically and hold out an eval split (at least one sentence if asked)."""
    if eval_fraction <= 0:
        return list(texts), []
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_eval = min(max_eval, max(1, round(len(texts) * eval_fraction)))
    if n_eval >= len(texts):
        raise DataError(f"corpus of {len(texts)} sentences is too small to hold out an eval split")
    held = set(order[:n_eval])
    return [t for i, t in enumerate(texts) if i not in held], [texts[i] for i in sorted(held)]


def epoch_batches(
    num_items: int,
    batch_size: int,
    generator: torch.Generator,
    lengths: Sequence[int] | None = None,
    bucket_batches: int = 0,
) -> list[list[int]]:
    """One epoch's batches of item indices: a random permutation cut into batches.

    Length bucketing, with ``lengths`` and ``bucket_batches`` > 0: each run of ``bucket_batches``
    batches of the permutation is sorted by length (stably, so ties keep their random order)
    before it is cut, and the batches are then shuffled, so a batch holds random items of about
    one length and the batch order stays random.  Padding shrinks; the number of batches and
    their sizes do not change.
    """
    order = torch.randperm(num_items, generator=generator).tolist()
    if lengths is None or bucket_batches <= 0:
        return [order[i : i + batch_size] for i in range(0, num_items, batch_size)]
    pool = batch_size * bucket_batches
    batches = []
    for start in range(0, num_items, pool):
        run = sorted(order[start : start + pool], key=lengths.__getitem__)
        batches.extend(run[i : i + batch_size] for i in range(0, len(run), batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


class EpochBatches(Sequence[list[int]]):
    """One epoch's batches of item indices without bucketing, made on demand from the
    permutation tensor: the batches of :func:`epoch_batches` (the same generator draws give the
    same batches) in 4 bytes per item instead of a Python list of them all, for corpora larger
    than memory.  With ``world`` > 1, batch i is this process's rows ``rank::world`` of global
    batch i, and a last batch with fewer rows than processes is left out (as
    :meth:`lmvae.distributed.Processes.shard_batches` does)."""

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        generator: torch.Generator,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        # int32 halves the permutation of a long stream; torch draws the same permutation
        # in either dtype (tests/test_streaming.py holds it to the listed batches).
        dtype = torch.int32 if num_items < 2**31 else torch.int64
        self.order = torch.randperm(num_items, generator=generator, dtype=dtype)
        self.batch_size, self.rank, self.world = batch_size, rank, world
        count, rest = divmod(num_items, batch_size)
        self._range = range(count + (rest >= world if world > 1 else rest > 0))

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            view = object.__new__(EpochBatches)
            view.__dict__.update(self.__dict__, _range=self._range[index])
            return view
        i = self._range[index]
        batch = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return batch[self.rank :: self.world].tolist()


def tokenize_decoder(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[list[int]]:
    """Token ids of each text without special tokens, cut so that ids + EOS fit max_length."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [row[: max_length - 1] for row in ids]


def collate_decoder(
    rows: Sequence[Sequence[int]],
    bos_id: int,
    eos_id: int,
    pad_id: int,
    pad_to_multiple_of: int = 1,
) -> dict[str, Tensor]:
    """Token rows -> right-padded input_ids ``[BOS] x``, labels ``x [EOS]``, attention_mask;
    the padded length is rounded up to a multiple of ``pad_to_multiple_of``."""
    length = max(len(r) for r in rows) + 1
    length += -length % pad_to_multiple_of
    # Padded Python lists, then one tensor each: no per-row tensor indexing.
    input_ids, labels, mask = [], [], []
    for row in rows:
        row, tail = list(row), length - 1 - len(row)
        input_ids.append([bos_id, *row] + [pad_id] * tail)
        labels.append([*row, eos_id] + [IGNORE_INDEX] * tail)
        mask.append([1] * (len(row) + 1) + [0] * tail)
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def collate_labels(rows: Sequence[Sequence[int]], width: int) -> Tensor:
    """Label-id rows -> (B, width) right-padded with the padding label 0 (rows are cut)."""
    out = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = min(len(row), width)
        out[i, :n] = torch.tensor(list(row[:n]), dtype=torch.long)
    return out


def tokenize_encoder(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> dict[str, Tensor]:
    """Padded encoder inputs with the tokenizer's own special tokens."""
    enc = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
