"""``lmvae explore``: the latent-space explorer, a local web page (lmvae.explorer)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lmvae.cli.common import (
    DeviceOpt,
    LabelsFieldOpt,
    PickleOpt,
    TextFieldOpt,
    ThreadsOpt,
    TrustOpt,
    check_device,
    load_model,
    set_threads,
)
from lmvae.errors import ConfigError


def explore(
    model: Annotated[
        str, typer.Argument(help="Trained model folder, hub id, or 'demo' (trained if needed).")
    ],
    data: Annotated[
        str | None,
        typer.Option(
            help="Corpus to map: .txt, .jsonl (text + per-word 'labels' + sentence labels), "
            ".csv/.tsv, or 'demo' (the default for the demo model)."
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a non-loopback --host; the page then needs the printed access token.",
        ),
    ] = False,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="Another Host-header name the page may be reached by (repeatable)."),
    ] = None,
    max_sentences: Annotated[int, typer.Option(help="Map at most this many sentences.")] = 2000,
    text_field: TextFieldOpt = "text",
    labels_field: LabelsFieldOpt = "labels",
    seed: Annotated[int, typer.Option()] = 0,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
) -> None:
    """Explore a model's latent space in the browser: encode, decode, traverse, interpolate,
    do arithmetic and map a corpus."""
    import secrets

    from lmvae.explorer import Explorer, allowed_hosts, create_app, is_loopback
    from lmvae.probes.records import load_probe_data

    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    token = None
    if not is_loopback(host):
        if not allow_remote:
            raise ConfigError(
                f"--host {host} would let other machines reach the explorer: add --allow-remote "
                "(the page then needs an access token), or keep the loopback default"
            )
        token = secrets.token_urlsafe(24)
    set_threads(threads)
    check_device(device)
    name = model
    if model == "demo":
        model, data = _demo_model(), data or "demo"
    corpus = None
    if data is not None:
        corpus = load_probe_data(data, text_field=text_field, roles_field=labels_field)
    say(f"loading {model} ...")
    vae = load_model(model, device, trust_remote_code, allow_pickle)
    say(f"encoding {0 if corpus is None else min(len(corpus), max_sentences)} corpus sentences ...")
    explorer = Explorer(vae, corpus, max_corpus=max_sentences, seed=seed, name=name)
    app = create_app(explorer, hosts=allowed_hosts(host, allowed_host or ()), token=token)
    shown = "localhost" if host in ("127.0.0.1", "localhost") else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    say(f"lmvae explorer: open {url}  (Ctrl-C stops it)")
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")


def _demo_model() -> str:
    """The demo model's folder, trained first (as ``lmvae demo`` does) if it is not cached."""
    from lmvae.demo.run import demo_run_dir, run_demo

    best = demo_run_dir() / "best"
    if not (best / "config.json").is_file():
        print("the demo model is not trained yet: training it (a few minutes) ...", file=sys.stderr)
        best = run_demo()
    return str(best)
