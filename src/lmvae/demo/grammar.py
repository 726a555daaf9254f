"""The demo corpus's grammar: role labels, labelled-phrase helpers and the lexicon.

Internal to :mod:`lmvae.demo`: :mod:`lmvae.demo.families` builds the template families from these
helpers, and :mod:`lmvae.demo.corpus` draws the corpus from the families.  The word lists and
facts (animals, plants, tools, materials, causes ...) live in ``data/grammar.json``, loaded once
at import; its ``_about`` entry names the columns of each table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

#: Every label a word can carry: PropBank core arguments, the predicate, modifiers, and ``O``
#: for words outside any argument (auxiliaries such as the "is" of a passive).
ROLE_LABELS: tuple[str, ...] = (
    "ARG0",
    "ARG1",
    "ARG2",
    "ARG3",
    "ARG4",
    "V",
    "ARGM-LOC",
    "ARGM-TMP",
    "ARGM-MNR",
    "ARGM-PRP",
    "ARGM-CAU",
    "ARGM-MOD",
    "ARGM-NEG",
    "ARGM-ADV",
    "ARGM-DIR",
    "ARGM-DIS",
    "O",
)

_ALIASES = {
    "A0": "ARG0",
    "A1": "ARG1",
    "A2": "ARG2",
    "A3": "ARG3",
    "A4": "ARG4",
    "V": "V",
    "LOC": "ARGM-LOC",
    "TMP": "ARGM-TMP",
    "MNR": "ARGM-MNR",
    "PRP": "ARGM-PRP",
    "CAU": "ARGM-CAU",
    "MOD": "ARGM-MOD",
    "NEG": "ARGM-NEG",
    "ADV": "ARGM-ADV",
    "DIR": "ARGM-DIR",
    "DIS": "ARGM-DIS",
    "O": "O",
}

_GRAMMAR_FILE = "grammar.json"


# --------------------------------------------------------------------------------------------
# Small helpers: labelled phrases, articles, verb forms.

Phrase = tuple[tuple[str, str], ...]  # ((word, label), ...)
Family = Callable[[], list[Phrase]]  # a template family: every sentence it can make


def _p(markup: str) -> Phrase:
    """Parse ``"fly/V over the mountains/DIR"``: each word takes the label of the next tag."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    for tok in markup.split():
        if "/" in tok:
            word, tag = tok.split("/")
            pending.append(word)
            out.extend((w, _ALIASES[tag]) for w in pending)
            pending = []
        else:
            pending.append(tok)
    if pending:
        raise ValueError(f"untagged words at the end of {markup!r}")
    return tuple(out)


def _s(text: str, tag: str) -> Phrase:
    """All words of ``text`` with the one label ``tag`` (an alias such as ``"A0"``)."""
    return tuple((w, _ALIASES[tag]) for w in text.split())


def _rel(phrase: Phrase, tag: str) -> Phrase:
    """Relabel every word of a phrase."""
    return tuple((w, _ALIASES[tag]) for w, _ in phrase)


def _a(noun: str) -> str:
    """The noun phrase with its indefinite article ("an owl", "a unicorn")."""
    first = noun.split()[0]
    vowel = first[0] in "aeiou" and not first.startswith(("uni", "use", "euro"))
    return ("an " if vowel else "a ") + noun


def _third(verb: str) -> str:
    """Third person singular present of a base verb."""
    irregular = {"have": "has", "be": "is", "do": "does", "go": "goes"}
    if verb in irregular:
        return irregular[verb]
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in ("a", "e", "i", "o", "u"):
        return verb[:-1] + "ies"
    return verb + "s"


_DOUBLE = {"cut", "dig", "stir", "put", "get", "run", "swim", "hit", "chop", "mop", "trim", "wrap"}


def _gerund(verb: str) -> str:
    """The -ing form of a base verb."""
    if verb in _DOUBLE:
        return verb + verb[-1] + "ing"
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    return verb + "ing"


def _conj(vp: Phrase, singular: bool) -> Phrase:
    """Conjugate the first word of a verb phrase for a singular or plural subject."""
    if not singular:
        return vp
    (w, lab), rest = vp[0], vp[1:]
    return ((_third(w), lab), *rest)


def _kind_plural(kind: str) -> str:
    return _PLURAL_KIND.get(kind, kind + "s")


# --------------------------------------------------------------------------------------------
# Lexicon.  Animals carry the facts used by several families (habitat, food, movement ...).


def _load_grammar() -> dict:
    text = (
        resources.files("lmvae.demo")
        .joinpath("data")
        .joinpath(_GRAMMAR_FILE)
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


_DATA = _load_grammar()


@dataclass(frozen=True)
class _Animal:
    name: str
    plural: str
    kind: str
    home: str  # a locative phrase: "in the mountains"
    move: str  # base verb of locomotion
    manners: tuple[str, ...]
    foods: tuple[str, ...]
    size: int  # 1 (tiny) .. 10 (huge)
    cover: str  # what its body is covered with


_ANIMALS: tuple[_Animal, ...] = tuple(
    _Animal(
        name=r[0],
        plural=r[1],
        kind=r[2],
        home=r[3],
        move=r[4],
        manners=tuple(r[5]),
        foods=tuple(r[6]),
        size=int(r[7]),
        cover=r[8],
    )
    for r in _DATA["animals"]
)
_ANIMAL = {a.name: a for a in _ANIMALS}

# What each animal can do (base form verb phrases in markup), and what it cannot.
_ABILITIES: dict[str, list[str]] = _DATA["abilities"]
_CANNOT: dict[str, list[str]] = _DATA["cannot"]

# Rows of strings (see ``_about`` in the data file for the columns).
_PLANTS: list[list[str]] = _DATA["plants"]
_PLANT_NEEDS: list[str] = _DATA["plant_needs"]
_ANIMAL_NEEDS: list[str] = _DATA["animal_needs"]
_COLOURED: list[list[str]] = _DATA["coloured"]
_TOOLS: list[list[str]] = _DATA["tools"]
_MATERIALS: list[list] = _DATA["materials"]  # the last column is a list of objects
_OTHER_KINDS: list[list[str]] = _DATA["other_kinds"]
_KIND_PARENTS: dict[str, str] = _DATA["kind_parents"]
_PLURAL_KIND: dict[str, str] = _DATA["plural_kind"]
_MACHINE_NEEDS: list[list[str]] = _DATA["machine_needs"]
_CONDITIONS: list[list] = _DATA["conditions"]  # clause, [subjects], result
_CAUSES: list[list[str]] = _DATA["causes"]
_PLURAL_CAUSES: frozenset[str] = frozenset(_DATA["plural_causes"])
_TIME_FACTS: list[list[str]] = _DATA["time_facts"]
_PRODUCERS: list[list[str]] = _DATA["producers"]
_GIFTS: list[list[str]] = _DATA["gifts"]
_MADE_FROM: list[list[str]] = _DATA["made_from"]
_COVER_PHRASES: dict[str, str] = _DATA["cover_phrases"]
_MARKINGS: list[list[str]] = _DATA["markings"]
_MOTIONS: list[list[str]] = _DATA["motions"]
_CHANGES: list[list[str]] = _DATA["changes"]
_HUNTERS: frozenset[str] = frozenset(_DATA["hunters"])

# Scales for comparisons (the key order is the order of the sentences).
_SPEED: dict[str, int] = _DATA["speed"]
_WEIGHT: dict[str, int] = _DATA["weight"]
_HEAT: dict[str, int] = _DATA["heat"]
_CLIMATE: dict[str, int] = _DATA["climate"]
