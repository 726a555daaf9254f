"""Template families about what things are and have: kinds, needs, abilities, homes, uses,
materials, looks, comparisons and food.

Each family returns every sentence it can make, as labelled phrases; :mod:`lmvae.demo.corpus`
draws the corpus from them.  The facts come from the lexicon of :mod:`lmvae.demo.grammar`.
"""

from __future__ import annotations

from collections.abc import Callable

from .grammar import (
    _ABILITIES,
    _ANIMAL,
    _ANIMAL_NEEDS,
    _ANIMALS,
    _CANNOT,
    _CLIMATE,
    _COLOURED,
    _COVER_PHRASES,
    _HEAT,
    _HUNTERS,
    _KIND_PARENTS,
    _MACHINE_NEEDS,
    _MARKINGS,
    _MATERIALS,
    _OTHER_KINDS,
    _PLANT_NEEDS,
    _PLANTS,
    _SPEED,
    _TOOLS,
    _WEIGHT,
    Family,
    Phrase,
    _a,
    _gerund,
    _kind_plural,
    _p,
    _rel,
    _s,
)

__all__ = ["FACT_FAMILIES"]


def _subjects(name: str, plural: str, tag: str) -> list[tuple[Phrase, bool]]:
    """Ways to name an animal as a subject: (phrase, is_singular)."""
    out: list[tuple[Phrase, bool]] = [(_s(_a(name), tag), True), (_s(plural, tag), False)]
    if plural != name:
        out.append((_s("many " + plural, tag), False))
    else:
        out.append((_s("most " + plural, tag), False))
    return out


def _taxonomy() -> list[Phrase]:
    out: list[Phrase] = []
    is_, are = _s("is", "V"), _s("are", "V")
    for a in _ANIMALS:  # "a robin is a kind of bird that lives in the garden"
        one = _s(_a(a.name), "A1")
        out.append(one + is_ + _s(f"a kind of {a.kind} that lives {a.home}", "A2"))
        out.append(one + is_ + _s(f"{_a(a.kind)} that lives {a.home}", "A2"))
        out.append(one + is_ + _s(f"a type of {a.kind}", "A2"))
        if a.plural != a.name:
            out.append(
                _s(a.plural, "A1") + are + _s(f"{_kind_plural(a.kind)} that live {a.home}", "A2")
            )
    for name, plural, kind, where, _colour in _PLANTS:
        one = _s(_a(name) if plural != name else name, "A1")
        out.append(one + is_ + _s(f"a kind of {kind} that grows {where}", "A2"))
        out.append(one + is_ + _s(f"a type of {kind}", "A2"))
        if plural != name:
            out.append(_s(plural, "A1") + are + _s(f"{_kind_plural(kind)} that grow {where}", "A2"))
    for name, plural, _colour, kind in _COLOURED:
        if kind in ("fruit", "vegetable"):
            out.append(_s(_a(name), "A1") + is_ + _s(f"a kind of {kind}", "A2"))
            out.append(_s(_a(name), "A1") + is_ + _s(f"a type of {kind}", "A2"))
            out.append(_s(plural, "A1") + are + _s(f"a kind of {kind}", "A2"))
    for name, kind, purpose, _where in _TOOLS:  # "a hammer is a kind of tool used to drive nails"
        out.append(_s(_a(name), "A1") + is_ + _s(f"a kind of {kind} used to {purpose}", "A2"))
        out.append(_s(_a(name), "A1") + is_ + _s(f"a type of {kind}", "A2"))
    for r in _MATERIALS + _OTHER_KINDS:
        out.append(_s(r[0], "A1") + is_ + _s(f"a kind of {r[1]}", "A2"))
        out.append(_s(r[0], "A1") + is_ + _s(f"a type of {r[1]}", "A2"))
    for kind, parent in _KIND_PARENTS.items():
        out.append(_s(_a(kind), "A1") + is_ + _s(f"a kind of {parent}", "A2"))
        if kind != "fish":
            out.append(_s(_kind_plural(kind), "A1") + are + _s(f"a kind of {parent}", "A2"))
    return out


def _needs() -> list[Phrase]:
    out: list[Phrase] = []
    for a in _ANIMALS:
        for adj in ("", "young ", "wild "):
            goal = "to grow" if adj == "young " else "to survive"
            subjects = [(_s(_a(adj + a.name), "A0"), True), (_s(adj + a.plural, "A0"), False)]
            if not adj:
                subjects.append((_s("every " + a.name, "A0"), True))
            for subj, sing in subjects:
                for need in _ANIMAL_NEEDS:
                    head = subj + _s("needs" if sing else "need", "V") + _s(need, "A1")
                    out.append(head + _s(goal, "PRP"))
                    out.append(head + _s(f"{goal} {a.home}", "PRP"))
    for r in _PLANTS:
        for adj in ("", "young ", "small "):
            if r[1] == r[0]:  # mass noun: "wheat needs water to grow"
                subjects = [(_s(r[0], "A0"), True)] if not adj else []
            else:
                subjects = [(_s(_a(adj + r[0]), "A0"), True), (_s(adj + r[1], "A0"), False)]
            for subj, sing in subjects:
                for need in _PLANT_NEEDS:
                    head = subj + _s("needs" if sing else "need", "V") + _s(need, "A1")
                    out.append(head + _s("to grow", "PRP"))
                    out.append(head + _s(f"to grow {r[3]}", "PRP"))
    for subj, need, goal in _MACHINE_NEEDS:
        out.append(_s(subj, "A0") + _s("needs", "V") + _s(need, "A1") + _s(goal, "PRP"))
    return out


def _ability() -> list[Phrase]:
    out: list[Phrase] = []
    for a in _ANIMALS:
        for subj, _sing in _subjects(a.name, a.plural, "A0"):
            for vp in _ABILITIES[a.name]:
                out.append(subj + _s("can", "MOD") + _p(vp))
            for vp in _CANNOT.get(a.name, []):
                out.append(subj + _s("can", "MOD") + _s("not", "NEG") + _p(vp))
        for vp in _ABILITIES[a.name]:
            out.append(_s("every " + a.name, "A0") + _s("can", "MOD") + _p(vp))
    return out


def _habitat() -> list[Phrase]:
    out: list[Phrase] = []
    for a in _ANIMALS:
        home = _s(a.home, "LOC")
        for subj, sing in _subjects(a.name, a.plural, "A0"):
            out.append(subj + _s("lives" if sing else "live", "V") + home)
        out.append(_s("you", "A0") + _s("can", "MOD") + _s("find", "V") + _s(a.plural, "A1") + home)
        out.append(_s(_a(a.name), "A0") + _s("makes", "V") + _s("its home", "A1") + home)
    for r in _PLANTS:
        place = _s(r[3], "LOC")
        out.append(_s(_a(r[0]) if r[1] != r[0] else r[0], "A1") + _s("grows", "V") + place)
        if r[1] != r[0]:
            out.append(_s(r[1], "A1") + _s("grow", "V") + place)
        out.append(_s("you", "A0") + _s("can", "MOD") + _s("find", "V") + _s(r[1], "A1") + place)
    for r in _TOOLS:
        where = _s(r[3], "LOC")
        out.append(_s(_a(r[0]), "A1") + _s("is", "O") + _s("kept", "V") + where)
        out.append(_s("people", "A0") + _s("keep", "V") + _s(_a(r[0]), "A1") + where)
    return out


def _purpose() -> list[Phrase]:
    out: list[Phrase] = []
    for r in _TOOLS:
        name, purpose = r[0], r[2]
        verb, *rest = purpose.split()
        ger = " ".join([_gerund(verb), *rest])
        for det_name in (_a(name), "the " + name):
            obj = _s(det_name, "A1")
            out.append(obj + _s("is", "O") + _s("used", "V") + _s("to " + purpose, "A2"))
            out.append(obj + _s("is", "O") + _s("used", "V") + _s("for " + ger, "A2"))
        out.append(
            _s("people", "A0") + _s("use", "V") + _s(_a(name), "A1") + _s("to " + purpose, "A2")
        )
        out.append(_s("we", "A0") + _s("use", "V") + _s(_a(name), "A1") + _s("to " + purpose, "A2"))
        out.append(
            _s("you", "A0")
            + _s("can", "MOD")
            + _s("use", "V")
            + _s(_a(name), "A1")
            + _s("to " + purpose, "A2")
        )
    return out


def _material() -> list[Phrase]:
    out: list[Phrase] = []
    props = [("electricity", 2), ("heat", 3)]
    for r in _MATERIALS:
        name, objects = r[0], r[6]
        subjects = [_s(name, "A0")] + [_s(_a(o) + " made of " + name, "A0") for o in objects]
        for subj in subjects:
            for what, col in props:
                if r[col] == "y":
                    out.append(subj + _s("conducts", "V") + _s(what, "A1"))
                else:
                    out.append(
                        subj
                        + _s("does", "O")
                        + _s("not", "NEG")
                        + _s("conduct", "V")
                        + _s(what, "A1")
                    )
            if r[5] == "y":
                out.append(_rel(subj, "A1") + _s("floats", "V") + _s("on water", "LOC"))
            else:
                out.append(_rel(subj, "A1") + _s("sinks", "V") + _s("in water", "LOC"))
        quality = "good" if r[2] == "y" else "poor"
        for what, _col in props:
            out.append(
                _s(name, "A1") + _s("is", "V") + _s(f"{_a(quality)} conductor of {what}", "A2")
            )
        magnet = _s("a magnet", "A0")
        for obj in [_s(name, "A1")] + [_s(_a(o) + " made of " + name, "A1") for o in objects]:
            if r[4] == "y":
                out.append(magnet + _s("attracts", "V") + obj)
                out.append(magnet + _s("can", "MOD") + _s("pick", "V") + _s("up", "V") + obj)
            else:
                out.append(magnet + _s("does", "O") + _s("not", "NEG") + _s("attract", "V") + obj)
    return out


def _appearance() -> list[Phrase]:
    out: list[Phrase] = []
    for name, plural, colour, kind in _COLOURED:
        col = _s(colour, "A2")
        if plural == "-":
            out.append(_s(name, "A1") + _s("is", "V") + _s("usually", "TMP") + col)
            out.append(_s("the colour of " + name, "A1") + _s("is", "V") + col)
            continue
        out.append(_s(_a(name), "A1") + _s("is", "V") + _s("usually", "TMP") + col)
        out.append(_s("most " + plural, "A1") + _s("are", "V") + _s(colour + " in colour", "A2"))
        out.append(_s("the colour of " + _a(name), "A1") + _s("is", "V") + col)
        if kind == "fruit":
            out.append(_s(_a("ripe " + name), "A1") + _s("is", "V") + col)
            out.append(
                _s("most " + plural, "A1") + _s("are", "V") + col + _s("when they are ripe", "TMP")
            )
    for r in _PLANTS:
        if r[2] == "flower":
            out.append(_s(_a(r[0]), "A1") + _s("is", "V") + _s(_a(r[4]) + " flower", "A2"))
            out.append(_s("many " + r[1], "A1") + _s("are", "V") + _s(r[4] + " in colour", "A2"))
    for a in _ANIMALS:
        cover = _COVER_PHRASES.get(a.cover, a.cover)
        if a.name in ("frog", "toad"):
            cover = "smooth wet skin" if a.name == "frog" else "dry bumpy skin"
        cover_pl = "hard shells" if cover == "a hard shell" else cover
        out.append(_s(_a(a.name), "A0") + _s("has", "V") + _s(cover, "A1"))
        out.append(_s(a.plural, "A0") + _s("have", "V") + _s(cover_pl, "A1"))
        out.append(
            _s("the body of " + _a(a.name), "A1")
            + _s("is", "O")
            + _s("covered", "V")
            + _s("with " + cover, "A2")
        )
    for subj, obj in _MARKINGS:
        out.append(_s(subj, "A0") + _s("has", "V") + _s(obj, "A1"))
    return out


# Comparisons are made against a few well-known reference points on each scale.
_SIZE_REFS = (("ant", "mouse", "rabbit"), ("horse", "elephant", "whale"))
_SPEED_REFS = (("snail", "turtle"), ("horse", "cheetah"))
_WEIGHT_REFS = (("cork", "wood"), ("iron", "gold"))
_HEAT_REFS = (("ice", "snow"), ("the sun", "a fire"))
_CLIMATE_REFS = (("the arctic", "winter"), ("the desert", "summer"))


def _comparison() -> list[Phrase]:
    out: list[Phrase] = []

    def compare(
        scale: dict[str, int],
        refs: tuple[tuple[str, ...], tuple[str, ...]],
        more: str,
        less: str,
        name: Callable[[str], str],
        plural: Callable[[str], str] | None = None,
        runs: bool = False,
    ) -> None:
        low, high = refs
        for x, vx in scale.items():
            for ref, word, sign in [(r, more, 1) for r in low] + [(r, less, -1) for r in high]:
                if x == ref or sign * (vx - scale[ref]) < 3:
                    continue
                out.append(_s(name(x), "A1") + _s("is", "V") + _s(f"{word} than {name(ref)}", "A2"))
                if plural is not None:
                    out.append(
                        _s(plural(x), "A1")
                        + _s("are", "V")
                        + _s(f"{word} than {plural(ref)}", "A2")
                    )
                if runs and word == "faster":
                    out.append(
                        _s(name(x), "A0") + _s("runs", "V") + _s(f"faster than {name(ref)}", "MNR")
                    )

    sizes = {a.name: a.size for a in _ANIMALS}

    def animal(x: str) -> str:
        return _a(x)

    def animals(x: str) -> str:
        return _ANIMAL[x].plural

    def same(x: str) -> str:
        return x

    compare(sizes, _SIZE_REFS, "bigger", "smaller", animal, animals)
    compare(_SPEED, _SPEED_REFS, "faster", "slower", animal, animals, runs=True)
    compare(_WEIGHT, _WEIGHT_REFS, "heavier", "lighter", same)
    compare(_HEAT, _HEAT_REFS, "hotter", "colder", same)
    compare(_CLIMATE, _CLIMATE_REFS, "hotter", "colder", same)
    return out


def _diet() -> list[Phrase]:
    out: list[Phrase] = []
    for a in _ANIMALS:
        home = _s(a.home, "LOC")
        for food in a.foods:
            f1 = _s(food, "A1")
            for subj, sing in [(_s(_a(a.name), "A0"), True), (_s(a.plural, "A0"), False)]:
                out.append(subj + _s("eats" if sing else "eat", "V") + f1 + home)
                out.append(
                    subj + _s("feeds" if sing else "feed", "V") + _s("on " + food, "A1") + home
                )
                if a.name in _HUNTERS:
                    out.append(subj + _s("hunts" if sing else "hunt", "V") + f1 + home)
            out.append(_s("the food of " + _a(a.name), "A1") + _s("is", "V") + _s(food, "A2"))
    return out


FACT_FAMILIES: dict[str, Family] = {
    "taxonomy": _taxonomy,
    "need": _needs,
    "ability": _ability,
    "habitat": _habitat,
    "purpose": _purpose,
    "material": _material,
    "appearance": _appearance,
    "comparison": _comparison,
    "diet": _diet,
}
