"""The training sentences of a run, by index, and their decoder token rows.

A corpus in memory is tokenised once and its rows kept; a streamed corpus
(:class:`lmvae.streaming.LineCorpus`) is read and tokenised batch by batch in the training
process (one tokenizer call per batch: on the demo's batches it costs far less than the step),
so nothing of the corpus's size is held but its line index.  Both give the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from lmvae.codec import TextCodec
from lmvae.errors import DataError
from lmvae.streaming import LineCorpus


class TrainingSentences:
    """Texts and decoder rows of the training sentences by index."""

    def __init__(self, texts: Sequence[str], codec: TextCodec) -> None:
        self.texts, self.codec = texts, codec
        self.streamed = isinstance(texts, LineCorpus)
        self._rows: list[list[int]] | None = None
        if not self.streamed:
            self._rows = codec.decoder_rows(texts)
            empty = [texts[i] for i, r in enumerate(self._rows) if not r]
            if empty:
                raise DataError(
                    f"{len(empty)} sentence(s) give no decoder tokens, e.g. {empty[0]!r}"
                )

    def __len__(self) -> int:
        return len(self.texts)

    def text_batch(self, indices: Sequence[int]) -> list[str]:
        if isinstance(self.texts, LineCorpus):
            return self.texts.texts(indices)
        return [self.texts[i] for i in indices]

    def rows(self, indices: Sequence[int]) -> list[list[int]]:
        """Decoder token rows of the sentences at ``indices``."""
        if self._rows is not None:
            return [self._rows[i] for i in indices]
        texts = self.text_batch(indices)
        rows = self.codec.decoder_rows(texts)
        for text, row in zip(texts, rows, strict=True):
            if not row:
                raise DataError(f"the sentence {text!r} gives no decoder tokens")
        return rows

    def lengths(self) -> list[int] | None:
        """Token lengths for length bucketing; None for a stream (never tokenised whole)."""
        return None if self._rows is None else [len(r) for r in self._rows]
