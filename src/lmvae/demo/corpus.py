"""A small, synthetic corpus of short explanatory English sentences with semantic-role labels.

Why it exists: the offline demo (and the test suite) must train and probe a language-model VAE
without downloading any data set or hub model.  :mod:`lmvae.demo.backbones` pretrains two tiny
frozen backbones on these sentences, the demo trains a VAE on top of them, and the probes use the
per-word role labels (PropBank style: ``ARG0``, ``V``, ``ARGM-LOC`` ...) and the template family
of each sentence to measure what the latent space encodes (roles, constructions).

Everything is generated from templates and word lists written for this package, so the corpus
is free to redistribute.  Facts are kept consistent (an eagle always lives in the mountains and
eats fish, copper always conducts electricity), which keeps the language learnable by a tiny
model.  Sentences are lowercase, 4 to 12 words, without punctuation; every word has exactly one
label.

Layout: the word lists and facts are data (``data/grammar.json``), read once by
:mod:`lmvae.demo.grammar`, which also holds the labelled-phrase helpers; the template families
are in :mod:`lmvae.demo.families_facts` and :mod:`lmvae.demo.families_events`; this module
draws the corpus from them, and reads and writes it.

Regenerate the shipped file (byte-identical for the same arguments)::

    python -m lmvae.demo.corpus --out src/lmvae/demo/data/corpus.jsonl --n 3000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .families_events import EVENT_FAMILIES
from .families_facts import FACT_FAMILIES
from .grammar import ROLE_LABELS, Family

__all__ = [
    "ROLE_LABELS",
    "TEMPLATE_FAMILIES",
    "AnnotatedSentence",
    "family_sizes",
    "generate_corpus",
    "load_demo_corpus",
    "read_jsonl",
    "write_jsonl",
]

_DATA_FILE = "corpus.jsonl"


@dataclass(frozen=True)
class AnnotatedSentence:
    """One sentence, one role label per whitespace word, and the template family it came from."""

    text: str
    labels: tuple[str, ...]
    template: str

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.text.split()):
            raise ValueError(f"{len(self.labels)} labels for {len(self.text.split())} words")

    @property
    def words(self) -> list[str]:
        """The whitespace tokens of :attr:`text` (aligned with :attr:`labels`)."""
        return self.text.split()


# --------------------------------------------------------------------------------------------
# Template families, in generation order (the order decides which family keeps a sentence two
# families can make, and the draws of the random generator).

_ORDER = (
    "taxonomy",
    "need",
    "ability",
    "habitat",
    "purpose",
    "material",
    "condition",
    "cause",
    "time",
    "source",
    "appearance",
    "manner",
    "state_change",
    "comparison",
    "diet",
)
_ALL = {**FACT_FAMILIES, **EVENT_FAMILIES}
if set(_ALL) != set(_ORDER):  # pragma: no cover - a family added in one place only
    raise RuntimeError(f"template families out of step: {sorted(set(_ALL) ^ set(_ORDER))}")
_FAMILIES: dict[str, Family] = {name: _ALL[name] for name in _ORDER}

#: The template families, in generation order.
TEMPLATE_FAMILIES: tuple[str, ...] = tuple(_FAMILIES)

MIN_WORDS, MAX_WORDS = 4, 12


def _family_sentences(name: str) -> list[AnnotatedSentence]:
    """Every distinct sentence of one family (first occurrence kept), in a fixed order."""
    seen: set[str] = set()
    out = []
    for phrase in _FAMILIES[name]():
        text = " ".join(w for w, _ in phrase)
        if text in seen or not MIN_WORDS <= len(phrase) <= MAX_WORDS:
            continue
        seen.add(text)
        out.append(AnnotatedSentence(text, tuple(lab for _, lab in phrase), name))
    return out


def family_sizes() -> dict[str, int]:
    """How many distinct sentences each template family can make."""
    return {name: len(_family_sentences(name)) for name in TEMPLATE_FAMILIES}


def generate_corpus(n: int = 3000, seed: int = 0) -> list[AnnotatedSentence]:
    """Draw ``n`` distinct sentences, about ``n / 15`` from each template family, shuffled.

    Deterministic for a given ``(n, seed)`` (uses its own ``random.Random``).  A family that
    cannot fill its share gives the rest to the others.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    pools = {name: _family_sentences(name) for name in TEMPLATE_FAMILIES}
    taken: set[str] = set()
    for name in TEMPLATE_FAMILIES:  # a text made by two families belongs to the first
        pools[name] = [s for s in pools[name] if s.text not in taken]
        taken.update(s.text for s in pools[name])
    total = sum(len(p) for p in pools.values())
    if n > total:
        raise ValueError(f"the templates make only {total} distinct sentences, asked for {n}")
    quota = dict.fromkeys(TEMPLATE_FAMILIES, 0)
    left = n
    open_families = list(TEMPLATE_FAMILIES)
    while left:
        share, extra = divmod(left, len(open_families))
        lucky = set(rng.sample(open_families, extra))
        for name in open_families:
            quota[name] += share + (name in lucky)
        left = 0
        for name in list(open_families):
            over = quota[name] - len(pools[name])
            if over >= 0:
                quota[name] -= over
                left += over
                open_families.remove(name)
    out: list[AnnotatedSentence] = []
    for name in TEMPLATE_FAMILIES:
        out.extend(rng.sample(pools[name], quota[name]))
    rng.shuffle(out)
    return out


def write_jsonl(records: Iterable[AnnotatedSentence], path: str | Path) -> None:
    """Write one ``{"text", "labels", "template"}`` JSON object per line (UTF-8, ``\\n``)."""
    lines = [
        json.dumps({"text": r.text, "labels": list(r.labels), "template": r.template})
        for r in records
    ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))


def _parse_lines(lines: Iterable[str]) -> list[AnnotatedSentence]:
    out = []
    for line in lines:
        if line.strip():
            obj = json.loads(line)
            out.append(AnnotatedSentence(obj["text"], tuple(obj["labels"]), obj["template"]))
    return out


def read_jsonl(path: str | Path) -> list[AnnotatedSentence]:
    """Read a file written by :func:`write_jsonl`."""
    with open(path, encoding="utf-8") as f:
        return _parse_lines(f)


def load_demo_corpus() -> list[AnnotatedSentence]:
    """The corpus shipped with the package (``generate_corpus(3000, seed=0)``)."""
    text = (
        resources.files("lmvae.demo")
        .joinpath("data")
        .joinpath(_DATA_FILE)
        .read_text(encoding="utf-8")
    )
    return _parse_lines(text.splitlines())


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write the corpus as JSON lines."""
    ap = argparse.ArgumentParser(
        prog="python -m lmvae.demo.corpus", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--out", required=True, help="output .jsonl file")
    ap.add_argument("--n", type=int, default=3000, help="number of sentences (default 3000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = ap.parse_args(argv)
    write_jsonl(generate_corpus(args.n, args.seed), args.out)


if __name__ == "__main__":
    main()
