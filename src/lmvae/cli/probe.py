"""``lmvae probe``: probe a trained model's latent space and write an HTML + JSON report."""

from __future__ import annotations

import sys
from pathlib import Path
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
    check_writable,
    load_model,
    set_threads,
)


def probe(
    model: Annotated[str, typer.Argument(help="Trained model folder or hub id.")],
    data: Annotated[
        str,
        typer.Option(
            help="Probe sentences: .txt, .jsonl (text + per-word 'labels' + sentence labels), "
            ".csv/.tsv, or 'demo' for the bundled demo corpus."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Report folder (report.html, report.json, maps).")] = (
        Path("report")
    ),
    probes: Annotated[
        str,
        typer.Option(
            help="Comma-separated probes or 'all': reconstruction, traversal, interpolation, "
            "arithmetic, disentanglement, clusters, properties, sts."
        ),
    ] = "all",
    sts: Annotated[
        Path | None, typer.Option(help="Sentence pairs with gold scores (s1, s2, score).")
    ] = None,
    vectors: Annotated[
        Path | None,
        typer.Option(
            help="word2vec text file for interpolation smoothness (default: the "
            "decoder's token embeddings)."
        ),
    ] = None,
    color_by: Annotated[
        str | None, typer.Option(help="Sentence label that colours the cluster maps.")
    ] = None,
    maps: Annotated[str, typer.Option(help="Projections for the cluster maps.")] = "pca,tsne,umap",
    max_sentences: Annotated[int, typer.Option(help="Probe at most this many sentences.")] = 2000,
    text_field: TextFieldOpt = "text",
    labels_field: LabelsFieldOpt = "labels",
    seed: Annotated[int, typer.Option()] = 0,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
) -> None:
    """Probe a trained model's latent space and write an HTML + JSON report."""
    import time

    from lmvae.probes.records import load_probe_data
    from lmvae.probes.report import find_history, run_probes, write_report

    started = time.perf_counter()
    set_threads(threads)
    check_writable(out)
    check_device(device)
    chosen = [p.strip() for p in probes.split(",") if p.strip()]
    records = load_probe_data(data, text_field=text_field, roles_field=labels_field)
    vae = load_model(model, device, trust_remote_code, allow_pickle)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    results = run_probes(
        vae,
        records,
        chosen,
        max_sentences=max_sentences,
        methods=[m.strip() for m in maps.split(",") if m.strip()],
        color_by=color_by,
        sts=sts,
        vectors=vectors,
        history=find_history(model) if Path(model).is_dir() else None,
        seed=seed,
        meta={"model": model, "data": data},
        log=say,
    )
    report = write_report(results, out)
    say(f"report written to {report} in {time.perf_counter() - started:.0f} s")
    print(report)
