"""Frozen encoder features on disk, reused across epochs, runs and processes
(``TrainConfig.feature_cache_dir``, ``lmvae train --feature-cache DIR``).

``DIR/<namespace>/`` holds the features of one encoder set-up: the namespace is a digest of
everything that changes a sentence's features (:func:`feature_settings`: the encoder's weights
or hub revision, pooled layers, pooling, max length, dtype, device, word-label vocabulary,
lmvae version), written out beside them in ``settings.json``.  Each entry is keyed by a digest
of the sentence's text (and its word labels, when the encoder pools per label).

Features live in safetensors shards (``keys`` (N, 16) uint8 digests, ``features`` (N, ...)
float32; no pickles), each written once under a temporary name and renamed into place: a
reader lists only ``shard-*.safetensors``, so it never sees half a shard, and processes share
the folder without locks (each writes its own shards; two holding one sentence serve it alike).
The folder is bounded: past ``max_bytes`` the oldest shards go, and a reader that loses one
computes those rows again.

Rows are stored as the trainer computed them, each in its batch (features differ in their last
bits with the batch they were computed in), so a run that reads them trains exactly as the run
that computed them did.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from lmvae.errors import ConfigError
from lmvae.textfiles import atomic_write

SHARD_GLOB = "shard-*.safetensors"
#: Temporary files older than this were left by a killed writer; younger ones may be in use.
STALE_TMP_SECONDS = 24 * 3600
_KEY_BYTES = 16
Encode = Callable[[list[str], list[list[str]] | None], Tensor]


def feature_settings(model: Any, device: torch.device, mixed_precision: str) -> dict[str, Any]:
    """What decides a sentence's frozen features besides its text: the namespace of a store."""
    from lmvae import __version__
    from lmvae.backbones import fingerprint

    encoder, ref = model.encoder, model.config.encoder.backbone
    weights = fingerprint(ref.name_or_path)
    tokenizer = model.codec.encoder_tokenizer
    return {
        "lmvae": __version__,
        # A local backbone is known by its weights (wherever it lies), a hub one by id + revision.
        "encoder": None if weights else ref.name_or_path,
        "revision": None
        if weights
        else ref.revision or getattr(encoder.backbone.config, "_commit_hash", None),
        "weights": weights,
        "tokenizer": [type(tokenizer).__name__, len(tokenizer)],
        "layers": list(encoder.layers),
        "pooling": model.config.encoder.pooling,
        "max_length": model.config.encoder.max_length,
        "dtype": str(next(encoder.backbone.parameters()).dtype),
        "device": device.type,
        "autocast": "no" if device.type == "cpu" else mixed_precision,
        "labels": model.config.annotations.labels if model.codec.encoder_labels else None,
        "shape": list(encoder.feature_shape),
    }


class FeatureStore:
    """One namespace of an on-disk feature cache.

    :meth:`fetch` serves rows found on disk (or written by this process and not yet flushed)
    and computes the rest in one batch; new rows are gathered and written as one shard every
    ``shard_rows`` rows and at :meth:`flush`.  The index in memory holds 24 bytes per stored
    sentence (two key halves and a location), nothing of the features.
    """

    def __init__(
        self,
        root: str | Path,
        settings: dict[str, Any],
        max_bytes: int,
        device: torch.device | str = "cpu",
        shard_rows: int = 4096,
    ) -> None:
        text = json.dumps(settings, sort_keys=True)
        self.root = Path(root)
        self.dir = self.root / hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        self.shape = tuple(settings["shape"])
        self.max_bytes, self.shard_rows = max_bytes, shard_rows
        self.device = torch.device(device)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not (self.dir / "settings.json").is_file():
                atomic_write(self.dir / "settings.json", lambda p: Path(p).write_text(text + "\n"))
        except OSError as e:
            raise ConfigError(f"cannot use the feature cache {root}: {e.strerror or e}") from None
        self._remove_stale_tmp()
        self.hits = self.computed = 0
        self._pending: dict[bytes, Tensor] = {}
        self._shards: list[tuple[Path, int]] = []  # path, byte offset of the features
        self._names: set[str] = set()
        self._gone: set[int] = set()
        self._index = np.zeros((0, 3), dtype=np.uint64)  # key halves, shard << 32 | row
        self._seen_mtime = -1
        self._refresh()

    # -- the one call the trainer makes ---------------------------------------------------------
    def fetch(
        self, texts: Sequence[str], labels: Sequence[Sequence[str]] | None, encode: Encode
    ) -> Tensor:
        """Features (B, ...) of ``texts``: stored rows as they are, the others from one call
        of ``encode(texts, labels)`` on the missing sentences."""
        keys = [self.key(t, None if labels is None else labels[i]) for i, t in enumerate(texts)]
        rows: list[Tensor | None] = [self._pending.get(k) for k in keys]
        self._read_into(rows, keys)
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing and self._changed():  # another process may have written them meanwhile
            self._refresh()
            self._read_into(rows, keys)
            missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            out = encode(
                [texts[i] for i in missing],
                None if labels is None else [list(labels[i]) for i in missing],
            )
            for i, row in zip(missing, out, strict=True):
                rows[i] = row
                self._pending[keys[i]] = row.detach().to("cpu", copy=True)
            if len(self._pending) >= self.shard_rows:
                self.flush()
        self.hits += len(keys) - len(missing)
        self.computed += len(missing)
        return torch.stack([r.to(self.device) for r in rows])  # type: ignore[union-attr]

    def key(self, text: str, labels: Sequence[str] | None = None) -> bytes:
        """The digest a sentence (and its word labels) is stored under."""
        data = text if labels is None else json.dumps([text, list(labels)])
        return hashlib.blake2b(data.encode("utf-8"), digest_size=_KEY_BYTES).digest()

    def flush(self) -> None:
        """Write the rows gathered since the last flush as one shard (temporary name, then
        rename), then keep the folder within its bound."""
        if not self._pending:
            return
        keys = list(self._pending)
        tensors = {
            "keys": torch.frombuffer(bytearray(b"".join(keys)), dtype=torch.uint8).view(-1, 16),
            "features": torch.stack([self._pending[k] for k in keys]).contiguous(),
        }
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.safetensors"
        tmp = self.dir / f".tmp-{name}"
        try:
            save_file(tensors, str(tmp))
            os.replace(tmp, self.dir / name)
        except Exception:  # OSError, or safetensors' own error for a failed write
            # A full or read-only disk costs reuse, never the run: the rows are recomputed.
            tmp.unlink(missing_ok=True)
            self._pending.clear()
            return
        self._pending.clear()
        self._add_shards([self.dir / name])
        self._evict(keep=self.dir / name)

    # -- the index ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    def _changed(self) -> bool:
        try:
            return os.stat(self.dir).st_mtime_ns != self._seen_mtime
        except OSError:
            return False

    def _refresh(self) -> None:
        """Add the shards written since the last look (by this process or another)."""
        try:
            mtime = os.stat(self.dir).st_mtime_ns
            found = sorted(self.dir.glob(SHARD_GLOB))
        except OSError:
            return
        # A rename within the same clock tick as this look may leave the folder's time as it
        # is: while the folder changed in the last second, every miss looks again.
        self._seen_mtime = mtime if time.time_ns() - mtime > 10**9 else -1
        self._add_shards([p for p in found if p.name not in self._names])

    def _add_shards(self, paths: list[Path]) -> None:
        """Index the keys of new shards (one sort for all of them)."""
        parts = [self._index]
        for path in paths:
            self._names.add(path.name)
            layout = _read_layout(path, self.shape)
            if layout is None:  # not a shard of this shape, or gone already: never served
                continue
            data_start, keys = layout
            shard = len(self._shards)
            self._shards.append((path, data_start))
            halves = keys.view(np.uint64).reshape(-1, 2)
            where = (np.uint64(shard) << np.uint64(32)) | np.arange(len(keys), dtype=np.uint64)
            parts.append(np.column_stack([halves, where]))
        if len(parts) > 1:
            index = np.concatenate(parts)
            self._index = index[np.argsort(index[:, 0], kind="stable")]

    def _read_into(self, rows: list[Tensor | None], keys: list[bytes]) -> None:
        """Fill the empty places of ``rows`` with the stored rows of their keys."""
        wanted = [i for i, r in enumerate(rows) if r is None]
        if not wanted or not len(self._index):
            return
        halves = np.frombuffer(b"".join(keys[i] for i in wanted), np.uint64).reshape(-1, 2)
        at = np.searchsorted(self._index[:, 0], halves[:, 0])
        by_shard: dict[int, list[tuple[int, int]]] = {}
        for i, pos, (first, second) in zip(wanted, at, halves, strict=True):
            while pos < len(self._index) and self._index[pos, 0] == first:
                shard, row = divmod(int(self._index[pos, 2]), 1 << 32)
                if self._index[pos, 1] == second and shard not in self._gone:
                    by_shard.setdefault(shard, []).append((i, row))
                    break
                pos += 1
        row_bytes = 4 * int(np.prod(self.shape))
        for shard, wants in by_shard.items():
            path, start = self._shards[shard]
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:  # evicted (by this process or another): computed again
                self._gone.add(shard)
                continue
            try:
                for i, row in wants:
                    data = os.pread(fd, row_bytes, start + row * row_bytes)
                    if len(data) == row_bytes:
                        rows[i] = torch.frombuffer(bytearray(data), dtype=torch.float32).view(
                            self.shape
                        )
            finally:
                os.close(fd)

    # -- the bound ------------------------------------------------------------------------------
    def _evict(self, keep: Path) -> None:
        """Remove the oldest shards of the whole cache folder until it fits ``max_bytes``."""
        shards = []
        for path in self.root.glob(f"*/{SHARD_GLOB}"):
            try:
                stat = path.stat()
            except OSError:
                continue
            shards.append((stat.st_mtime_ns, path.name, path, stat.st_size))
        total = sum(s[3] for s in shards)
        for _, _, path, size in sorted(shards):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)  # another process may have removed it first
            total -= size
        live = {p.name for p in self.dir.glob(SHARD_GLOB)}
        for shard, (path, _) in enumerate(self._shards):
            if path.name not in live:
                self._gone.add(shard)

    def _remove_stale_tmp(self) -> None:
        now = time.time()
        for tmp in self.dir.glob(".tmp-*"):
            try:
                if now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                    tmp.unlink()
            except OSError:
                continue


def _read_layout(path: Path, shape: tuple[int, ...]) -> tuple[int, np.ndarray] | None:
    """A shard's keys (N, 16) and where its float32 features start; None when it cannot be
    read or does not hold features of ``shape`` (safetensors: an 8-byte header length, the JSON
    header, then the data)."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
            keys, features = header["keys"], header["features"]
            if keys["dtype"] != "U8" or features["dtype"] != "F32":
                return None
            rows = keys["shape"][0]
            if keys["shape"] != [rows, _KEY_BYTES] or features["shape"] != [rows, *shape]:
                return None
            start = 8 + size
            f.seek(start + keys["data_offsets"][0])
            raw = f.read(rows * _KEY_BYTES)
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    if len(raw) != rows * _KEY_BYTES:
        return None
    return start + features["data_offsets"][0], np.frombuffer(raw, np.uint8).reshape(rows, 16)
