"""Per-request latency of the latent-space explorer (``lmvae explore``), through its HTTP app.

    .venv/bin/python benchmarks/explorer_latency.py demo --threads 2
    .venv/bin/python benchmarks/explorer_latency.py run/best --data heldout.txt --threads 2

``demo`` is the model ``lmvae demo`` trains (trained first if it is not cached) with the
bundled corpus. The app runs in-process behind Starlette's test client, so the figures are
the server's: request checking, the model work and JSON, without a network. Each operation is
timed ``--repeats`` times after one warm-up call, and one map per projection is fitted once
(the first UMAP includes numba's compilation). Last, a slider drag: 100 traversal events sent
at once, the number of decodes that ran and the time until the final position's text came
back. Prints a Markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import httpx
import torch
from starlette.testclient import TestClient

from lmvae.explorer import Explorer, create_app
from lmvae.model import LanguageVAE
from lmvae.probes.records import load_probe_data

BASE = "http://127.0.0.1:8765"


def _requests(corpus_size: int) -> dict[str, dict]:
    typed = "a hungry fox walks through the quiet forest at night"
    other = {"id": 1} if corpus_size > 1 else "the river flows into the sea"
    return {
        "reconstruct (1 sentence, 4 posterior samples)": {
            "op": "reconstruct", "body": {"sentences": [typed], "samples": 4}},
        "traverse (one slider position)": {
            "op": "traverse", "body": {"sentence": typed, "dim": 0, "value": 1.5}},
        "interpolate (6 steps, linear)": {
            "op": "interpolate", "body": {"a": typed, "b": other, "steps": 6}},
        "arithmetic (a - b + c, 5 neighbours)": {
            "op": "arithmetic", "body": {"a": typed, "b": other, "c": {"id": 2}, "k": 5}},
        "prior (6 samples)": {"op": "prior", "body": {"n": 6}},
        "place (1 sentence on the PCA map)": {
            "op": "place", "body": {"sentences": [typed], "method": "pca"}},
    }  # fmt: skip


def _drag(app) -> dict:
    """100 slider events at once, as a fast drag sends them."""

    async def run() -> tuple[int, float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            start = time.perf_counter()
            tasks = []
            for i in range(100):
                body = {"sentence": {"id": 0}, "dim": 0, "value": -2.5 + 0.05 * i}
                tasks.append(asyncio.create_task(client.post("/api/traverse", json=body)))
                await asyncio.sleep(0)
            responses = await asyncio.gather(*tasks)
            return sum(r.status_code == 200 for r in responses), time.perf_counter() - start

    before = app.state.lanes.started
    ok, seconds = asyncio.run(run())
    return {"decodes": app.state.lanes.started - before, "answered": ok, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="model folder or 'demo'")
    parser.add_argument("--data", default=None, help="corpus (default: demo for the demo)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--max-sentences", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, data = args.model, args.data
    if model == "demo":
        from lmvae.cli.explore import _demo_model

        model, data = _demo_model(), data or "demo"
    vae = LanguageVAE.from_pretrained(model)
    start = time.perf_counter()
    corpus = None if data is None else load_probe_data(data)
    explorer = Explorer(vae, corpus, max_corpus=args.max_sentences, name=args.model)
    startup = time.perf_counter() - start
    app = create_app(explorer)
    client = TestClient(app, base_url=BASE)

    rows = [("start-up: encode the corpus", explorer.corpus_size, startup * 1000, None)]
    if explorer.corpus is not None:
        for method in ("pca", "tsne", "umap"):
            start = time.perf_counter()
            r = client.post("/api/map", json={"method": method})
            assert r.status_code == 200, r.text
            rows.append((f"map {method} (first: fit)", explorer.corpus_size,
                         (time.perf_counter() - start) * 1000, None))  # fmt: skip
    for name, spec in _requests(explorer.corpus_size).items():
        if spec["op"] in ("arithmetic", "place") and explorer.corpus is None:
            continue
        times = []
        for i in range(args.repeats + 1):
            start = time.perf_counter()
            r = client.post(f"/api/{spec['op']}", json=spec["body"])
            assert r.status_code == 200, r.text
            if i:  # the first call warms caches up
                times.append((time.perf_counter() - start) * 1000)
        times.sort()
        p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
        rows.append((name, args.repeats, statistics.median(times), p90))
    drag = _drag(app) if explorer.corpus is not None else None

    print(f"| request ({args.model}, {torch.get_num_threads()} threads) | n | median ms | p90 ms |")
    print("|---|---|---|---|")
    for name, n, median, p90 in rows:
        print(f"| {name} | {n} | {median:.0f} | {'' if p90 is None else f'{p90:.0f}'} |")
    if drag:
        print(f"\nslider drag: 100 events -> {drag['decodes']} decodes, final text after "
              f"{drag['seconds'] * 1000:.0f} ms")  # fmt: skip
    record = {"model": args.model, "threads": torch.get_num_threads(), "drag": drag,
              "rows": [{"request": r[0], "n": r[1], "median_ms": r[2], "p90_ms": r[3]}
                       for r in rows]}  # fmt: skip
    print(json.dumps(record))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
