"""A real corpus of explanatory sentences from WordNet's glosses and examples.

WordNet ships with Debian as ``wordnet-base`` (``/usr/share/wordnet/data.{noun,verb,adj,adv}``);
the LangVAE paper's training mix includes WordNet definitions.  One builder for every benchmark
and study, so that figures are comparable: each gloss is split on ';', each quoted example is
taken apart from its gloss, sentences of 3-32 words are kept, duplicates dropped (first
occurrence wins), and the train / held-out split is made by synset, so no synset has sentences
on both sides.  The split is seeded and recorded with the corpus.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lmvae.errors import DataError
from lmvae.textfiles import atomic_write

#: Where Debian's wordnet-base puts the database.
DEFAULT_ROOT = "/usr/share/wordnet"
PARTS = ("noun", "verb", "adj", "adv")
#: WordNet's lexicographer files by number (lexnames(5WN)): the coarse topic of a synset.
LEXFILES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)  # fmt: skip
MIN_WORDS, MAX_WORDS = 3, 32

_QUOTED = re.compile(r'"([^"]*)"')


@dataclass
class WordNetCorpus:
    """Train and held-out sentences, with what it takes to rebuild them."""

    train: list[str]
    heldout: list[str]
    #: How the corpus was made: source files and their hash, seed, sizes, limits.
    meta: dict = field(default_factory=dict)

    def save(self, out_dir: str | Path) -> None:
        """Write train.txt, heldout.txt (one sentence a line) and meta.json."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "train.txt": "".join(line + "\n" for line in self.train),
            "heldout.txt": "".join(line + "\n" for line in self.heldout),
            "meta.json": json.dumps(self.meta, indent=2) + "\n",
        }
        for name, text in files.items():
            atomic_write(out / name, lambda p, text=text: Path(p).write_text(text, "utf-8"))


def _clean(text: str) -> str:
    return " ".join(text.replace("`", "'").split()).strip(" ;:,")


def synset_sentences(gloss: str) -> list[str]:
    """One synset's gloss -> its definition parts and its quoted examples, cleaned."""
    examples = [_clean(m) for m in _QUOTED.findall(gloss)]
    definition = _QUOTED.sub(" ", gloss)
    parts = [_clean(p) for p in definition.split(";")]
    return [s for s in parts + examples if s]


def _synset_lines(root: Path) -> Iterator[tuple[str, list[str], str]]:
    """(part, the line's leading fields, gloss) of every synset of the four data files."""
    missing = [p for p in PARTS if not (root / f"data.{p}").is_file()]
    if missing:
        raise DataError(
            f"WordNet data files not found under {root} (missing data.{missing[0]}): install "
            "Debian's wordnet-base (apt-get install wordnet-base) or pass the folder holding them"
        )
    for part in PARTS:
        with open(root / f"data.{part}", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue  # the licence header
                head, gloss = line.split(" | ", 1)
                yield part, head.split(), gloss


def read_synsets(root: str | Path = DEFAULT_ROOT) -> list[tuple[str, list[str]]]:
    """(synset id, sentences) for every synset of the four data files, in file order."""
    return [
        (f"{part}:{fields[0]}", synset_sentences(gloss))
        for part, fields, gloss in _synset_lines(Path(root))
    ]


def sentence_factors(root: str | Path = DEFAULT_ROOT) -> dict[str, dict[str, str]]:
    """Lowercased sentence -> ``{"pos", "lexfile"}`` of the synset it comes from (the first
    one, as :func:`build_corpus` keeps it): sentence-level factors for the disentanglement
    metrics, known for every sentence of the corpus with no annotator."""
    factors: dict[str, dict[str, str]] = {}
    for part, fields, gloss in _synset_lines(Path(root)):
        number = int(fields[1])
        lexfile = LEXFILES[number] if number < len(LEXFILES) else f"lex{number:02d}"
        for sentence in synset_sentences(gloss):
            factors.setdefault(sentence.lower(), {"pos": part, "lexfile": lexfile})
    return factors


def _source_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for part in PARTS:
        digest.update((root / f"data.{part}").read_bytes())
    return digest.hexdigest()[:16]


def build_corpus(
    root: str | Path = DEFAULT_ROOT,
    heldout_fraction: float = 0.05,
    seed: int = 0,
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
) -> WordNetCorpus:
    """Build the deduplicated corpus, split by synset with ``seed``: a ``heldout_fraction`` of
    the synsets (shuffled) give the held-out side.  Sentence order within each side is the
    shuffled synset order, so any prefix of either list is a random sample."""
    if not 0 < heldout_fraction < 1:
        raise DataError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    synsets = read_synsets(root)
    seen: set[str] = set()
    kept: list[tuple[str, list[str]]] = []
    for synset, sentences in synsets:
        fresh = []
        for sentence in sentences:
            key = sentence.lower()
            if min_words <= len(sentence.split()) <= max_words and key not in seen:
                seen.add(key)
                fresh.append(sentence)
        if fresh:
            kept.append((synset, fresh))
    random.Random(seed).shuffle(kept)
    n_heldout = max(1, round(len(kept) * heldout_fraction))
    heldout = [s for _, sentences in kept[:n_heldout] for s in sentences]
    train = [s for _, sentences in kept[n_heldout:] for s in sentences]
    meta = {
        "source": "WordNet 3.0 (Debian wordnet-base): glosses split on ';' and quoted examples",
        "root": str(root),
        "source_sha256_16": _source_hash(Path(root)),
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "words": [min_words, max_words],
        "synsets": {"train": len(kept) - n_heldout, "heldout": n_heldout},
        "sentences": {"train": len(train), "heldout": len(heldout)},
    }
    return WordNetCorpus(train, heldout, meta)


__all__ = [
    "WordNetCorpus",
    "build_corpus",
    "read_synsets",
    "sentence_factors",
    "synset_sentences",
]
