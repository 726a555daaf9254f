"""Memory of ``lmvae train --stream`` on a corpus file about ten times the run's peak RSS
(issue 17, part 3)::

    nice -n 19 .venv/bin/python benchmarks/streaming_rss.py --corpus-gb 10 --steps 1000 --every 50

Writes a text corpus under /tmp: each line a numbered run of ``--sentences-per-line`` sentences
of the bundled demo corpus (no two lines alike; the number is one unknown word to the demo
tokenizers).  Trains the demo backbones (lmvae.demo, the tiny preset, latent 32) on it with
``lmvae train --stream --max-steps STEPS --feature-cache-mb 0`` in a child process on one
thread, which records its own VmRSS and VmHWM (/proc/self/status) every ``--every`` optimizer
steps.  The corpus is deleted at the end.  Prints a Markdown table and one JSON line, also
written to benchmarks/results/streaming_rss/TAG.json.

The in-memory feature cache is off: over a stream larger than memory an LRU of sentences never
hits within an epoch.  What stays in memory that grows with the corpus is the line index: an
int64 offset per line and the epoch's int32 permutation, 12 bytes a line together.  Lines of
a paragraph (20 demo sentences, ~700 bytes; the tokenizers cut them at 64 tokens) keep it a
small part of the RSS: with one 34-byte demo sentence a line the index alone would be a third
of the file's size, and no file could reach ten times the RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "streaming_rss"

# Runs `lmvae train` and appends {"step", "rss_mb", "hwm_mb", "seconds"} to a JSONL file at
# every EVERY-th optimizer step (as the batch after it begins: the trainer asks for that
# step's beta once per batch).
CHILD = """
import json, sys, time
import torch
torch.set_num_threads(1)
import lmvae.training.loop as loop
from lmvae.cli import main

samples, every = sys.argv[1], int(sys.argv[2])
original, seen, started = loop.cyclical_beta, set(), time.perf_counter()

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}

def beta(step, *args):
    if step % every == 0 and step not in seen:
        seen.add(step)
        s = status()
        record = {"step": step, "rss_mb": s["VmRSS"], "hwm_mb": s["VmHWM"],
                  "seconds": time.perf_counter() - started}
        with open(samples, "a") as f:
            f.write(json.dumps(record) + "\\n")
    return original(step, *args)

loop.cyclical_beta = beta
code = main(sys.argv[3:])
s = status()
with open(samples, "a") as f:
    f.write(json.dumps({"step": "end", "rss_mb": s["VmRSS"], "hwm_mb": s["VmHWM"],
                        "seconds": time.perf_counter() - started}) + "\\n")
sys.exit(code)
"""


def write_corpus(path: Path, gigabytes: float, per_line: int) -> tuple[int, int]:
    """Numbered lines of demo sentences up to ``gigabytes``; (lines, bytes) written."""
    from lmvae.demo.corpus import load_demo_corpus

    texts = [r.text for r in load_demo_corpus()]
    target, n = int(gigabytes * 2**30), len(texts)
    lines = written = 0
    with open(path, "w", encoding="utf-8", buffering=1 << 22) as f:
        while written < target:
            block = [
                " ".join(texts[(k * 7 + j * 131) % n] for j in range(per_line)) + f" {k}\n"
                for k in range(lines, lines + 10_000)
            ]
            chunk = "".join(block)
            f.write(chunk)
            written += len(chunk.encode("utf-8"))
            lines += len(block)
    return lines, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-gb", type=float, default=10.0)
    parser.add_argument("--sentences-per-line", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=100, help="steps before RSS is judged")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tmp", default=tempfile.gettempdir())
    parser.add_argument("--tag", default="cpu1")
    args = parser.parse_args()

    from lmvae.demo.backbones import cached_demo_backbones
    from lmvae.demo.corpus import load_demo_corpus

    encoder, decoder = cached_demo_backbones([r.text for r in load_demo_corpus()])
    work = Path(tempfile.mkdtemp(prefix="lmvae-streaming-rss-", dir=args.tmp))
    try:
        started = time.perf_counter()
        lines, size = write_corpus(work / "corpus.txt", args.corpus_gb, args.sentences_per_line)
        took = time.perf_counter() - started
        print(f"wrote {lines:,} lines, {size / 2**30:.2f} GiB in {took:.0f} s", flush=True)
        samples = work / "samples.jsonl"
        argv = [
            *("train", "--encoder", str(encoder), "--decoder", str(decoder)),
            *("--data", str(work / "corpus.txt"), "--out", str(work / "run"), "--stream"),
            *("--max-steps", str(args.steps), "--preset", "tiny", "--latent-size", "32"),
            *("--encoder-layer", "0", "--batch-size", str(args.batch_size)),
            *("--feature-cache-mb", "0", "--threads", "1", "--no-progress"),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        cmd = [sys.executable, "-c", CHILD, str(samples), str(args.every), *argv]
        child = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if child.returncode != 0:
            sys.exit(f"lmvae train failed:\n{child.stderr[-3000:]}")
        log = child.stderr
        records = [json.loads(x) for x in samples.read_text().splitlines()]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    steps = [r for r in records if r["step"] != "end"]
    judged = [r for r in steps if r["step"] >= args.warmup]
    low, high = min(r["rss_mb"] for r in judged), max(r["rss_mb"] for r in judged)
    peak = records[-1]["hwm_mb"]
    # Least-squares slope of RSS over steps after warm-up: a leak shows as a trend, while
    # the range also holds the heap's ups and downs between trims.
    xs, ys = [r["step"] for r in judged], [r["rss_mb"] for r in judged]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / max(
        sum((x - mx) ** 2 for x in xs), 1e-9
    )
    index = next((line for line in log.splitlines() if "indexed" in line), "")
    result = {
        "command": " ".join(sys.argv),
        "lines": lines,
        "corpus_gib": size / 2**30,
        "peak_rss_mb": peak,
        "corpus_over_peak_rss": size / 2**20 / peak,
        "rss_after_warmup_mb": [low, high],
        "drift_mb": high - low,
        "drift_fraction": (high - low) / low,
        "trend_mb_per_1000_steps": 1000 * slope,
        "steps_per_s": (steps[-1]["step"] - steps[0]["step"])
        / (steps[-1]["seconds"] - steps[0]["seconds"]),
        "index_line": index.strip(),
        "samples": records,
    }
    print(f"\n{index.strip()}")
    print("\n| step | RSS (MB) | peak so far (MB) | seconds |\n|---:|---:|---:|---:|")
    for r in records:
        print(f"| {r['step']} | {r['rss_mb']:.0f} | {r['hwm_mb']:.0f} | {r['seconds']:.0f} |")
    print(
        f"\ncorpus {size / 2**30:.2f} GiB = {result['corpus_over_peak_rss']:.1f} x the peak RSS "
        f"({peak:.0f} MB); RSS from step {args.warmup} to {steps[-1]['step']}: {low:.0f}-"
        f"{high:.0f} MB (range {high - low:.1f} MB, {100 * result['drift_fraction']:.2f} %; "
        f"trend {1000 * slope:+.1f} MB per 1000 steps); {result['steps_per_s']:.2f} steps/s"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))


if __name__ == "__main__":
    main()
