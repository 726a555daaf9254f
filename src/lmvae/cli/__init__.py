"""The ``lmvae`` command line: thin wrappers that parse, call the library and print.

Every command that prints results takes ``--format text|jsonl|json``.  Whatever goes wrong ends
with exit code 2 and no traceback: a usage error with click's usage block and the problem on
stderr, anything else with one ``error: ...`` line.  ``lmvae train`` stopped by SIGTERM or
Ctrl-C saves a step checkpoint and exits with code 75 (EX_TEMPFAIL: run it again with
``--resume``) after one line saying where; a second Ctrl-C aborts at once (code 130).
``--debug`` (anywhere on the command line) or ``LMVAE_DEBUG=1`` prints the traceback as well.

One module per group of commands; the commands are registered here, in the order
``lmvae --help`` lists them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback

import typer

from lmvae.cli import corpus, demo, evaluate, explore, grid, inference, probe, train
from lmvae.errors import LmvaeError, TrainingInterrupted

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Variational autoencoders made from frozen pretrained language models.  Add --debug "
    "(or set LMVAE_DEBUG=1) to see the traceback of an error.",
)
for command in (
    train.train,
    inference.encode,
    inference.reconstruct,
    inference.generate,
    inference.interpolate,
    demo.demo,
    probe.probe,
    explore.explore,
    evaluate.evaluate,
    corpus.corpus,
    grid.grid,
):
    app.command()(command)

USAGE_EXIT = 2  # click's code for usage errors; lmvae uses it for every error a user can fix


def _click_exceptions() -> list:
    """click's exception modules: typer's bundled copy and, where installed, click itself
    (older typers raise those)."""
    found = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        with contextlib.suppress(ImportError):
            found.append(importlib.import_module(name))
    return found


def _one_line(e: BaseException) -> str:
    """The first line of an exception's message, prefixed by its type when that says more."""
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, LmvaeError):
        return text
    if isinstance(e, MemoryError) or "out of memory" in text or "can't allocate" in text:
        return f"out of memory: {text or type(e).__name__}"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; every failure becomes a message on stderr and exit code 2."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("LMVAE_DEBUG", "") not in ("", "0") or "--debug" in args
    args = [a for a in args if a != "--debug"]
    modules = _click_exceptions()
    usage_errors = tuple(m.UsageError for m in modules)
    click_errors = tuple(m.ClickException for m in modules)
    exits = tuple({typer.Exit, *(getattr(m, "Exit", typer.Exit) for m in modules)})
    aborts = tuple({typer.Abort, *(getattr(m, "Abort", typer.Abort) for m in modules)})
    if not args:
        args = ["--help"]  # no arguments: the help, on standard output
    try:
        app(args=args, standalone_mode=False)
    except usage_errors as e:
        e.show()
        return USAGE_EXIT
    except click_errors as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        return USAGE_EXIT
    except exits as e:
        return e.exit_code
    except TrainingInterrupted as e:
        from lmvae.distributed import is_main_process

        if is_main_process():  # every process of a launched run stops with it
            print(str(e), file=sys.stderr)
        return e.exit_code
    except (KeyboardInterrupt, *aborts):
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return USAGE_EXIT
    return 0
