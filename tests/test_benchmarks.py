"""benchmarks/side_by_side.py in its smoke mode: it runs, prints the table and one JSON line.

Timings are not asserted (the machine is shared).  The reference is left out (--no-reference)
so the test stays quick (about 10 s on 1 thread) whether or not its venv is installed; without
the reference's models and corpus the script falls back to stand-ins built from configs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str, *args: str, timeout: int) -> tuple[str, list[str]]:
    """Run a benchmark script on 1 thread; its stdout and stdout lines (it must succeed)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(BENCHMARKS / script), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stdout.strip().splitlines()


def test_side_by_side_quick_prints_the_table_and_a_json_line():
    args = ("--quick", "--threads", "1", "--no-reference")
    stdout, lines = _run("side_by_side.py", *args, timeout=90)
    table = [line for line in lines if line.startswith("| ")]
    assert table[0].startswith("| figure | langvae 0.6.13")
    assert any(line.startswith("| training sentences/s") for line in table)
    assert any(line.startswith("| peak RSS (MB)") for line in table)
    assert "QUICK SMOKE RUN" in stdout and "reference skipped" in stdout
    result = json.loads(lines[-1])
    assert result["quick"] is True and result["reference"] is False
    for key in ("lmvae/own", "lmvae/50257"):
        figures = result["figures"][key]
        assert figures["train_sents_per_s"] > 0 and figures["decode_sents_per_s"] > 0
        assert figures["peak_rss_mb"] > 0 and figures["trainable_params"] > 0
        assert 0.0 <= figures["bleu4"] <= 1.0
    assert all(ratio is None for ratio in result["ratios"].values())


def test_gpu_mfu_smoke_runs_on_any_device_and_reports_each_size():
    stdout, lines = _run("gpu_mfu.py", "--smoke", timeout=120)
    assert "SMOKE RUN" in stdout
    assert [line.split(" | ")[0] for line in lines if line.startswith("| ") and "tiny" in line] == [
        "| gpt2-tiny",
        "| llama-tiny",
    ]
    result = json.loads(lines[-1])
    for row in result["rows"]:
        assert row["tokens_per_s"] > 0 and 0 < row["mfu"] < 1
        # 6 words and EOS a sentence, 8 sentences a step (one token a word here).
        assert row["tokens_per_step"] == 56
        assert row["decoder_non_embedding_params"] > 0


def test_real_models_benchmark_runs_each_part_in_a_subprocess(tmp_path):
    """benchmarks/real_models.py on a handful of sentences: lmvae, a ceiling and decoding."""
    from lmvae.demo.real import real_backbones
    from lmvae.errors import LoadError

    try:
        real_backbones()
    except LoadError as e:
        if os.environ.get("LMVAE_REQUIRE_REAL_MODELS") == "1":
            raise
        import pytest

        pytest.skip(str(e))
    args = ("--threads", "1", "--sentences", "16", "--decode-sentences", "4", "--batch-size", "8")
    parts = ("--parts", "lmvae,ceiling_a_prompt,decode,decoder_nll", "--heldout", "8")
    parts += ("--tag", "smoke")
    _run("real_models.py", *args, *parts, "--results", str(tmp_path), timeout=300)
    record = json.loads((tmp_path / "smoke.json").read_text())
    assert record["lmvae"]["sents_per_s"] > 0 and record["lmvae"]["peak_rss_mb"] > 0
    assert record["ceiling_a_prompt"]["tokens_per_s"] > 0
    assert (
        record["decode"]["lmvae_sents_per_s"] > 0 and record["decode"]["generate_sents_per_s"] > 0
    )
    nll = record["decoder_nll"]  # a real LM: far below uniform over 49,152 tokens (~10.8 a token)
    assert 0 < nll["nll_per_sentence"] < 10.8 * 20 and nll["weights_mb"] > 100


def test_pass_scaling_fits_the_saved_runs_and_draws_them(tmp_path):
    plot = tmp_path / "scaling.png"
    stdout, lines = _run("pass_scaling.py", "--plot", str(plot), "--targets", "20", timeout=120)
    fit = next(line for line in lines if line.startswith("end-of-run held-out fit"))
    # recon = a * passes ** -b: falling with passes, from above the decoder's own ~73 nats.
    a, b = (float(x) for x in fit.split("= ")[1].split(" (")[0].split(" * passes ** -"))
    assert a > 73 and 0 < b < 1
    needed = next(line for line in lines if line.strip().startswith("recon 20.0"))
    assert float(needed.split("~")[1].split()[0]) > 30000  # beyond the longest saved run
    assert plot.stat().st_size > 10_000 and f"wrote {plot}" in stdout
