"""``lmvae demo``: the offline demo on tiny LMs and the bundled corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lmvae.cli.common import ThreadsOpt, check_writable, set_threads


def demo(
    out: Annotated[Path | None, typer.Option(help="Where to keep the trained demo model.")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="VAE training epochs (default: the demo's own).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    threads: ThreadsOpt = None,
) -> None:
    """Offline demo: build tiny LMs on the bundled corpus, train a VAE, show what it does."""
    from lmvae.demo.run import run_demo

    set_threads(threads)
    if out is not None:
        check_writable(out)
    run_demo(out_dir=out, epochs=epochs, seed=seed, progress=progress)
