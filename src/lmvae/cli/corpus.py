"""``lmvae corpus``: build a real corpus to train and evaluate on."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from lmvae.cli.common import check_writable


def corpus(
    name: Annotated[str, typer.Argument(help="Which corpus: wordnet.")],
    out: Annotated[Path, typer.Option(help="Folder for train.txt, heldout.txt and meta.json.")],
    root: Annotated[
        Path, typer.Option(help="WordNet database folder (Debian's wordnet-base).")
    ] = Path("/usr/share/wordnet"),
    heldout_fraction: Annotated[float, typer.Option(help="Share of synsets held out.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the split by synset.")] = 0,
) -> None:
    """Build WordNet's glosses and examples as one sentence a line, split by synset."""
    from lmvae.errors import DataError
    from lmvae.wordnet import build_corpus

    if name != "wordnet":
        raise DataError(f"unknown corpus {name!r}: the one built in is wordnet")
    check_writable(out)
    built = build_corpus(root, heldout_fraction, seed)
    built.save(out)
    print(json.dumps(built.meta["sentences"]), file=sys.stderr)
