"""Reconstruction quality of decoded text against references."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def reconstruction_metrics(
    hypotheses: Sequence[str], references: Sequence[str]
) -> dict[str, float]:
    """Corpus BLEU-4 (sacrebleu, scaled to 0..1), exact match, and position-wise word accuracy."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        return {"bleu": 0.0, "exact_match": 0.0, "word_accuracy": 0.0}
    import sacrebleu  # here, not at import: it and its imports add ~6 MB to every process

    bleu = sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score / 100.0
    exact = sum(h.split() == r.split() for h, r in zip(hypotheses, references, strict=True))
    hits = total = 0
    for h, r in zip(hypotheses, references, strict=True):
        hw, rw = h.split(), r.split()
        hits += sum(a == b for a, b in zip(hw, rw, strict=False))
        total += max(len(hw), len(rw))
    return {
        "bleu": bleu,
        "exact_match": exact / len(references),
        "word_accuracy": hits / max(total, 1),
    }


def loops(text: str) -> bool:
    """Whether an output loops: a word repeated three times in a row, or a word 3-gram that
    occurs twice."""
    words = text.split()
    if any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2)):
        return True
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(set(trigrams)) < len(trigrams)


def loop_rate(texts: Sequence[str]) -> float:
    """Fraction of texts that loop (see :func:`loops`)."""
    return sum(map(loops, texts)) / max(len(texts), 1)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams over all n-grams of the texts (Li et al., 2016)."""
    grams = [tuple(w[i : i + n]) for t in texts for w in [t.split()] for i in range(len(w) - n + 1)]
    return len(set(grams)) / max(len(grams), 1)


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Dimensions whose posterior mean varies across inputs: Cov_x(E[z|x]) > threshold
    (Burda et al., 2016).  mu is (N, D)."""
    if mu.shape[0] < 2:
        return 0
    return int((mu.var(0, unbiased=True) > threshold).sum())
