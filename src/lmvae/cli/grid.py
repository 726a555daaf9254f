"""``lmvae grid``: run a study file's grid of models (:mod:`lmvae.grid`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lmvae.cli.common import ThreadsOpt, check_writable, set_threads
from lmvae.errors import LmvaeError


def grid(
    study: Annotated[Path, typer.Argument(help="Study file (.toml, or .yaml with PyYAML).")],
    out: Annotated[
        Path, typer.Option(help="Study folder: cells/, comparison.*, plots/, index.html.")
    ],
    shard: Annotated[
        str,
        typer.Option(
            help="Run only cells i, i+n, ... (i/n), e.g. one process per GPU; each process "
            "rebuilds the table from every finished cell."
        ),
    ] = "0/1",
    cell: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only the cells whose id matches this shell pattern (repeatable), e.g. "
            "'mpnet__*'; the table still lists every cell."
        ),
    ] = None,
    retry_failed: Annotated[bool, typer.Option(help="Run cells that failed before again.")] = True,
    summary_only: Annotated[
        bool, typer.Option(help="Only rebuild the table, plots and index.html.")
    ] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Train and measure every cell of a study; write its table, plots and index.html.  Ends
    with an error (exit code 2) when a cell failed; each one's error is in the table."""
    from lmvae.grid import collect_results, load_study, run_grid, write_summary

    set_threads(threads)
    spec = load_study(study)
    check_writable(out)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if summary_only:
        print(write_summary(spec, collect_results(spec, out), out))
        return
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise LmvaeError(f"--shard {shard!r}: use i/n, e.g. 0/2") from None
    say(f"study {spec.name}: {len(spec.cells())} cells into {out}")
    results = run_grid(spec, out, say, (index, count), retry_failed, cell or ())
    counts = {s: sum(r["status"] == s for r in results) for s in ("done", "failed", "pending")}
    say(f"{counts['done']} done, {counts['failed']} failed, {counts['pending']} pending")
    print(out / "index.html")
    if counts["failed"]:  # the table is written; a script still learns that cells failed
        raise LmvaeError(
            f"{counts['failed']} cell(s) failed: their errors are in {out}/comparison.md"
        )
