"""Template families about what happens: conditions, causes, times, sources, manners of motion
and changes of state.

Each family returns every sentence it can make, as labelled phrases; :mod:`lmvae.demo.corpus`
draws the corpus from them.  The facts come from the lexicon of :mod:`lmvae.demo.grammar`.
"""

from __future__ import annotations

from .grammar import (
    _ANIMAL,
    _ANIMALS,
    _CAUSES,
    _CHANGES,
    _CONDITIONS,
    _GIFTS,
    _MADE_FROM,
    _MOTIONS,
    _PLURAL_CAUSES,
    _PRODUCERS,
    _TIME_FACTS,
    Family,
    Phrase,
    _a,
    _conj,
    _p,
    _s,
    _third,
)

__all__ = ["EVENT_FAMILIES"]


def _condition() -> list[Phrase]:
    out: list[Phrase] = []
    for clause, subjects, result in _CONDITIONS:
        for subj in subjects:
            words, res = clause.format(s=subj), _p(result)
            if subj == "wet clothes":  # plural subject
                words = words.replace(" is ", " are ")
                res = tuple((("they" if w == "it" else w), lab) for w, lab in res)
            out.append(_s("if " + words, "ADV") + _s("then", "DIS") + res)
            out.append(_s("if " + words, "ADV") + res)
            out.append(_s("when " + words, "TMP") + res)
    return out


def _cause() -> list[Phrase]:
    out: list[Phrase] = []
    for cause, effect, plural, clause in _CAUSES:
        c0, e1 = _s(cause, "A0"), _s(effect, "A1")
        many = cause in _PLURAL_CAUSES
        out.append(c0 + _s("cause" if many else "causes", "V") + e1)
        out.append(c0 + _s("can", "MOD") + _s("cause", "V") + e1)
        out.append(c0 + _s("often", "TMP") + _s("cause" if many else "causes", "V") + e1)
        if clause == "y":
            out.append(
                c0 + _s("make" if many else "makes", "V") + _s(effect.replace(" to ", " ", 1), "A1")
            )
            continue
        out.append(c0 + _s("lead" if many else "leads", "V") + _s("to " + effect, "A2"))
        out.append(
            e1
            + _s("are" if plural == "y" else "is", "O")
            + _s("caused", "V")
            + _s("by " + cause, "A0")
        )
        out.append(
            e1
            + _s("happen" if plural == "y" else "happens", "V")
            + _s("because of " + cause, "CAU")
        )
        out.append(_s("one cause of " + effect, "A1") + _s("is", "V") + _s(cause, "A2"))
        out.append(
            _s(cause, "A1")
            + _s("are" if many else "is", "V")
            + _s("a common cause of " + effect, "A2")
        )
    return out


def _time() -> list[Phrase]:
    out: list[Phrase] = []
    for sing, plural, vp, when in _TIME_FACTS:
        verb_phrase, tmp = _p(vp), _s(when, "TMP")
        subjects: list[tuple[Phrase, bool]] = []
        if sing != "-":
            subjects.append((_s(sing, "A0"), True))
        if plural != "-":
            subjects.append((_s(plural, "A0"), False))
            if not plural.startswith("the "):
                subjects.append((_s("most " + plural, "A0"), False))
                subjects.append((_s(plural, "A0") + _s("usually", "TMP"), False))
        animal = _ANIMAL.get(sing.split()[-1]) if sing != "-" else None
        for subj, singular in subjects:
            conj = _conj(verb_phrase, singular)
            if singular:  # "a tree loses its leaves"
                conj = tuple(("its" if w == "their" else w, lab) for w, lab in conj)
            out.append(subj + conj + tmp)
            out.append(tmp + subj + conj)
            if (
                animal is not None and "/LOC" not in vp and "/DIR" not in vp
            ):  # "owls hunt at night in the forest"
                out.append(subj + conj + tmp + _s(animal.home, "LOC"))
    return out


def _source() -> list[Phrase]:
    out: list[Phrase] = []
    for sing, plural, verb, product in _PRODUCERS:
        prod = _s(product, "A1")
        out.append(_s(sing, "A0") + _s(_third(verb), "V") + prod)
        out.append(_s(plural, "A0") + _s(verb, "V") + prod)
        out.append(_s("we", "A0") + _s("get", "V") + prod + _s("from " + plural, "A2"))
        come = "come" if product.endswith("s") else "comes"
        out.append(prod + _s(come, "V") + _s("from " + plural, "A3"))
        animal = _ANIMAL.get(sing.split()[-1])
        if animal is not None:  # "we get milk from cows on the farm"
            where = _s(animal.home, "LOC")
            out.append(_s("we", "A0") + _s("get", "V") + prod + _s("from " + plural, "A2") + where)
            out.append(_s(plural, "A0") + _s(verb, "V") + prod + where)
        if verb == "give":
            out.append(_s(sing, "A0") + _s("gives", "V") + _s("us", "A2") + prod)
    for giver, gift, recipient in _GIFTS:
        out.append(
            _s(giver, "A0") + _s("gives", "V") + _s(gift, "A1") + _s("to " + recipient, "A2")
        )
        out.append(_s(giver, "A0") + _s("gives", "V") + _s(recipient, "A2") + _s(gift, "A1"))
    for product, source in _MADE_FROM:
        plural = product.endswith("s")
        prod = _s(product, "A1")
        out.append(
            prod + _s("are" if plural else "is", "O") + _s("made", "V") + _s("from " + source, "A2")
        )
        out.append(_s("people", "A0") + _s("make", "V") + prod + _s("from " + source, "A2"))
        out.append(_s("we", "A0") + _s("get", "V") + prod + _s("from " + source, "A2"))
        out.append(
            _s(source, "A1") + _s("is", "O") + _s("used", "V") + _s("to make " + product, "A2")
        )
    return out


def _manner() -> list[Phrase]:
    out: list[Phrase] = []
    for a in _ANIMALS:
        for manner in a.manners:
            mnr, home = _s(manner, "MNR"), _s(a.home, "LOC")
            for subj, sing in [(_s(_a(a.name), "A0"), True), (_s(a.plural, "A0"), False)]:
                verb = _s(_third(a.move) if sing else a.move, "V")
                out.append(subj + verb + mnr + home)
                out.append(subj + _s("can", "MOD") + _s(a.move, "V") + mnr + home)
    for subj, vp in _MOTIONS:
        out.append(_s(subj, "A0" if subj in ("the wind",) else "A1") + _p(vp))
    return out


def _state_change() -> list[Phrase]:
    out: list[Phrase] = []
    for frm, to, process in _CHANGES:
        plural = frm.split()[-1].endswith("s") and not frm.startswith(("a ", "an "))
        a1, a2 = _s(frm, "A1"), _s(to, "A2")
        if process == "-":
            grows = "grow" if plural else "grows"
            out.append(a1 + _s(grows, "V") + _s("into " + to, "A2"))
            out.append(a1 + _s("slowly", "MNR") + _s(grows, "V") + _s("into " + to, "A2"))
            out.append(a1 + _s("becomes", "V") + a2)
            out.append(a1 + _s("turns", "V") + _s("into " + to, "A2"))
            out.append(_s("over time", "TMP") + a1 + _s("becomes", "V") + a2)
            continue
        turns = "turn" if plural else "turns"
        changes = "change" if plural else "changes"
        pron = "they" if plural else "it"
        proc = process
        if plural:  # "they dry", "they rot"
            proc = {"is": "are"}.get(process.split()[0], process.split()[0]) + process[
                len(process.split()[0]) :
            ]
        out.append(a1 + _s(turns, "V") + _s("into " + to, "A2"))
        out.append(a1 + _s(changes, "V") + _s("into " + to, "A2"))
        out.append(
            a1 + _s(turns, "V") + _s("into " + to, "A2") + _s("when " + pron + " " + proc, "TMP")
        )
        out.append(
            _s("when " + frm + " " + proc, "TMP")
            + _s(pron, "A1")
            + _s(turns, "V")
            + _s("into " + to, "A2")
        )
        out.append(a1 + _s("can", "MOD") + _s("turn", "V") + _s("into " + to, "A2"))
    return out


# Comparisons are made against a few well-known reference points on each scale.


EVENT_FAMILIES: dict[str, Family] = {
    "condition": _condition,
    "cause": _cause,
    "time": _time,
    "source": _source,
    "manner": _manner,
    "state_change": _state_change,
}
