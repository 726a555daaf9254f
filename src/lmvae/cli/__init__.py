"""The ``lmvae`` command line: thin wrappers that parse, call the library and print.

Every command that prints results takes ``--format text|jsonl|json``.  Bad input ends with a
one-line ``error: ...`` on stderr and exit code 2, never a traceback from inside torch.

One module per group of commands; the commands are registered here, in the order
``lmvae --help`` lists them.
"""

from __future__ import annotations

import os
import sys

import typer

from lmvae.cli import corpus, demo, evaluate, inference, probe, train
from lmvae.errors import LmvaeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Variational autoencoders made from frozen pretrained language models.",
)
for command in (
    train.train,
    inference.encode,
    inference.reconstruct,
    inference.generate,
    inference.interpolate,
    demo.demo,
    probe.probe,
    evaluate.evaluate,
    corpus.corpus,
):
    app.command()(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning lmvae's own errors into one line on stderr."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(args=argv, standalone_mode=False)
    except LmvaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:  # click's usage errors carry their own formatting
        import click

        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            return 1
        raise
    return 0
