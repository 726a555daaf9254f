"""Held-out reconstruction against sentence passes, from the saved issue-13 runs
(docs/benchmarks.md, session 16).

    .venv/bin/python benchmarks/pass_scaling.py --plot docs/figures/pass_scaling.png

Reads the per-epoch histories of the runs with today's defaults on the real models
(all-MiniLM-L6-v2 -> SmolLM2-135M, latent 128, WordNet) from benchmarks/results/quality/,
prints every point (sentence passes, training recon, evaluation recon) and fits a power law,
recon = a * passes ** -b, through the end-of-run points (the only ones whose learning rate has
decayed, so the only ones comparable across runs), then says how many passes that law would
need for a given recon.  Two to three points over one decade: a rough extrapolation, not a
prediction, and it says so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "quality"
#: Runs with the defaults of session 7 on (soft prompt of 16, layer mix, batch 16, lr 3e-3,
#: log-variance -4), evaluated on held-out sentences, and the capacity check on seen ones.
HELD_OUT = ("s12_pack_true", "s15_1000x3", "s16_10k", "target7")
SEEN = "s15_seen256"


def points(tag: str) -> list[dict]:
    """One row per epoch: passes so far, training recon (sampled z), evaluation recon (mean z)."""
    run = json.loads((RESULTS / f"{tag}.json").read_text())
    return [
        {
            "run": tag,
            "epoch": row["epoch"],
            "passes": row["epoch"] * run["train_sentences"],
            "train_recon": row["train_recon"],
            "eval_recon": row["eval_recon_nll"],
            "last": row["epoch"] == run["epochs"],
        }
        for row in run["history"]
    ]


def fit(rows: list[dict]) -> tuple[float, float]:
    """Least squares in log-log space: returns (a, b) of recon = a * passes ** -b."""
    passes = np.log([r["passes"] for r in rows])
    recon = np.log([r["eval_recon"] for r in rows])
    slope, intercept = np.polyfit(passes, recon, 1)
    return float(np.exp(intercept)), float(-slope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", default=None, help="write the figure here (PNG)")
    parser.add_argument("--targets", default="20,15,10,7", help="recon figures to extrapolate to")
    args = parser.parse_args()

    held = [p for tag in HELD_OUT for p in points(tag)]
    seen = points(SEEN)
    print("run            epoch  passes  train recon  eval recon")
    for p in held + seen:
        print(
            f"{p['run']:<14} {p['epoch']:>5} {p['passes']:>7} {p['train_recon']:>12.1f}"
            f" {p['eval_recon']:>11.1f}{'  (end)' if p['last'] else ''}"
        )
    ends = [p for p in held if p["last"]]
    a, b = fit(ends)
    print(f"\nend-of-run held-out fit: recon = {a:.1f} * passes ** -{b:.3f} ({len(ends)} points)")
    for target in (float(t) for t in args.targets.split(",")):
        print(f"  recon {target:>4.1f} nats: ~{(a / target) ** (1 / b):.2g} sentence passes")

    if args.plot:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for tag, marker in zip(HELD_OUT, "osD^", strict=True):
            rows = [p for p in held if p["run"] == tag]
            ax.plot(
                [p["passes"] for p in rows],
                [p["eval_recon"] for p in rows],
                marker=marker,
                label=f"{tag}: held-out",
            )
        ax.plot(
            [p["passes"] for p in seen],
            [p["eval_recon"] for p in seen],
            marker=".",
            color="grey",
            label=f"{SEEN}: the 256 training sentences",
        )
        span = [min(p["passes"] for p in held), 1e6]
        ax.plot(
            span,
            [a * x**-b for x in span],
            "k--",
            lw=1,
            label=f"end-of-run fit: {a:.0f} N^-{b:.2f}",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_yticks([7, 10, 15, 20, 30, 40])
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("sentence passes N (training sentences x epochs)")
        ax.set_ylabel("reconstruction NLL (nats / sentence)")
        ax.set_title("MiniLM -> SmolLM2-135M, latent 128, WordNet (CPU runs)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
