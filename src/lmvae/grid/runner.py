"""Run a study: every cell one after another (or one shard of them per process), skipping
finished cells, resuming a half-finished one, recording a failed one with its one-line error
and going on; the table, plots and index.html are rebuilt after each cell.  SIGTERM or Ctrl-C
during a cell's training stops the study (training saves a step checkpoint first), and the same
command run again resumes that cell from it."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from fnmatch import fnmatch
from pathlib import Path

from lmvae.errors import ConfigError, LmvaeError, TrainingInterrupted
from lmvae.grid.cell import cell_fields, read_result, run_cell, write_json
from lmvae.grid.data import GridData, load_data
from lmvae.grid.study import Cell, Study
from lmvae.grid.summary import write_summary

__all__ = ["cell_folder", "collect_results", "one_line", "run_grid"]


def cell_folder(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.id


def one_line(e: BaseException) -> str:
    """The first line of an error, with its type where the message alone says less."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, LmvaeError) and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def collect_results(study: Study, out: Path) -> list[dict]:
    """Every cell's result as it stands: done or failed, or pending when it has none yet."""
    results = []
    for cell in study.cells():
        result = read_result(cell_folder(out, cell))
        results.append(result or {**cell_fields(cell), "status": "pending", "error": None})
    return results


def _study_record(study: Study) -> dict:
    train = study.train.to_dict()
    return {
        "name": study.name,
        "encoders": study.encoders,
        "decoders": study.decoders,
        "conditions": {k: asdict(v) for k, v in study.conditions.items()},
        "latent_sizes": study.latent_sizes,
        "seeds": study.seeds,
        "data": asdict(study.data),
        "model": study.model,
        "train": train,
        "probes": asdict(study.probes),
        "only": study.only,
        "exclude": study.exclude,
    }


def run_grid(
    study: Study,
    out: str | Path,
    log: Callable[[str], None] | None = None,
    shard: tuple[int, int] = (0, 1),
    retry_failed: bool = True,
    only_cells: Sequence[str] = (),
) -> list[dict]:
    """Train and measure the study's cells into ``out``; returns every cell's result.

    ``shard=(i, n)`` runs only cells i, i + n, i + 2n, ... so that n processes (one per GPU,
    say ``CUDA_VISIBLE_DEVICES=i``) share a study; each rebuilds the summary from all
    finished cells.  A failed cell is tried again on a rerun unless ``retry_failed=False``.
    ``only_cells``: shell patterns of cell ids (``mpnet__*``); only cells that match one run
    now, and the others stay as they are (a study run in parts, over sessions or machines).
    """
    out = Path(out)
    say = log or (lambda _line: None)
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"shard {index}/{count}: use i/n with 0 <= i < n")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "study.json", _study_record(study))
    cells = study.cells()
    unmatched = [p for p in only_cells if not any(fnmatch(c.id, p) for c in cells)]
    if unmatched:
        raise ConfigError(f"--cell {unmatched[0]!r} matches no cell of the study")
    if only_cells:
        cells = [c for c in cells if any(fnmatch(c.id, p) for p in only_cells)]
    data: GridData | None = None
    for number, cell in enumerate(cells):
        if number % count != index:
            continue
        folder = cell_folder(out, cell)
        previous = read_result(folder)
        status = previous["status"] if previous else None
        if status == "done" or (status == "failed" and not retry_failed):
            say(f"[{number + 1}/{len(cells)}] {cell.id}: {status}, skipped")
            continue
        say(f"[{number + 1}/{len(cells)}] {cell.id}: running")
        started = time.perf_counter()
        try:
            if data is None:
                data = load_data(study)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "result.json").unlink(missing_ok=True)
            run_cell(study, cell, data, folder, lambda line, c=cell: say(f"  {c.id}: {line}"))
            say(f"[{number + 1}/{len(cells)}] {cell.id}: done")
        except TrainingInterrupted as e:  # asked to stop: not a failure, the cell resumes
            write_summary(study, collect_results(study, out), out)
            raise TrainingInterrupted(
                f"{signal.Signals(e.signum).name} stopped the study in cell {cell.id}, whose "
                f"training saved {e.checkpoint}: run the same lmvae grid command again to go on",
                e.signum,
                e.checkpoint,
            ) from None
        except Exception as e:  # one failed cell never stops the others
            error = one_line(e)
            seconds = round(time.perf_counter() - started, 1)
            record = {**cell_fields(cell), "status": "failed", "error": error, "seconds": seconds}
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / "result.json", record)
            say(f"[{number + 1}/{len(cells)}] {cell.id}: failed: {error}")
        write_summary(study, collect_results(study, out), out)
    results = collect_results(study, out)
    write_summary(study, results, out)
    return results
