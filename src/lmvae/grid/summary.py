"""What a study leaves at the top of its folder, rebuilt from the cells' result.json files after
every cell (so a study stopped part-way still has its table)::

    comparison.md / .csv / .json   one row per cell: its settings, status, error and figures
    plots/                         heat maps, reconstruction vs disentanglement, curves, layers
    index.html                     the table with a link to each cell's probe report, and plots
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmvae.grid.cell import EVAL_KEYS, write_json
from lmvae.grid.study import Study
from lmvae.textfiles import atomic_write

__all__ = ["FIELDS", "comparison_rows", "write_summary"]

FIELDS = ("cell", "encoder", "decoder", "condition", "latent_size", "seed", "status", "epochs")
#: Metrics drawn as heat maps (those present), reconstruction first.
HEATMAP_METRICS = (
    "bleu",
    "exact_match",
    "loop_rate",
    "neg_elbo",
    "kl",
    "active_units",
    "mutual_information",
    "mig",
    "disentanglement",
    "cka_max",
    "slot_mass",
)
#: Pairs (reconstruction, disentanglement) for the scatter plot, first one present wins.
SCATTER_Y = ("mig", "disentanglement", "sap", "modularity")
CURVE_KEYS = ("train_loss", "eval_recon_nll", "eval_kl", "eval_bleu")


def comparison_rows(results: Sequence[dict]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and flat rows of the comparison table (metrics in a fixed order, then others)."""
    seen: list[str] = []
    for r in results:
        for key in r.get("metrics", {}):
            if key not in seen:
                seen.append(key)
    ordered = [k for k in EVAL_KEYS if k in seen] + [k for k in seen if k not in EVAL_KEYS]
    columns = [*FIELDS, *ordered, "train_seconds", "error"]
    rows = []
    for r in results:
        row = {k: r.get(k) for k in (*FIELDS, "train_seconds", "error")}
        row.update({k: r.get("metrics", {}).get(k) for k in ordered})
        rows.append(row)
    return columns, rows


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown(columns: list[str], rows: list[dict], study: Study) -> str:
    lines = [
        f"# Study {study.name}: {len(rows)} cells",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(_cell_text(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _csv(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda p: Path(p).write_bytes(data))


def _plots(study: Study, results: Sequence[dict], rows: list[dict], out: Path) -> list[str]:
    """Draw every figure into out/plots; returns their names relative to ``out``."""
    from lmvae.grid import plots

    done = [r for r in rows if r["status"] == "done"]
    full = [r for r in results if r.get("status") == "done"]
    if not done:
        return []
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, bytes] = {}
    encoders, decoders = list(study.encoders), list(study.decoders)
    for metric in HEATMAP_METRICS:
        if any(isinstance(r.get(metric), int | float) for r in done):
            figures[f"heatmap_{metric}.png"] = plots.heatmaps(done, metric, encoders, decoders)
    y = next((k for k in SCATTER_Y if any(r.get(k) is not None for r in done)), None)
    if y is not None:
        figures["reconstruction_vs_disentanglement.png"] = plots.scatter(done, "bleu", y)
    histories = {r["cell"]: r.get("history", []) for r in full}
    figures["training_curves.png"] = plots.training_curves(histories, CURVE_KEYS)
    mass = [
        {**r, "values": r["slot_attention"]["per_layer"]} for r in full if r.get("slot_attention")
    ]
    if mass:
        figures["slot_attention_per_layer.png"] = plots.layer_lines(
            mass, "attention mass on the injected slots, per decoder layer", "mass"
        )
    for r in full:
        if r.get("cka"):
            name = f"cka_{r['cell']}.png"
            figures[name] = plots.cka_map(r["cka"]["matrix"], f"CKA: {r['cell']}")
    for name, data in figures.items():
        _write_bytes(folder / name, data)
    return [f"plots/{name}" for name in figures]


def _index(study: Study, columns: list[str], rows: list[dict], images: list[str]) -> str:
    from lmvae.probes.html import _esc, _fmt, page

    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            value = r.get(c)
            if c == "cell" and r["status"] == "done":
                link = f"cells/{value}/report/report.html"
                cells.append(f'<td><a href="{_esc(link)}">{_esc(value)}</a></td>')
            elif isinstance(value, int | float) and not isinstance(value, bool):
                cells.append(f'<td class="num">{_fmt(value)}</td>')
            else:
                cells.append(f"<td>{_fmt(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><tr>{head}</tr>{''.join(body)}</table>"
    done = sum(r["status"] == "done" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    summary = (
        f"<p>{done} of {len(rows)} cells done, {failed} failed. Each cell name links to its "
        "probe report; the table is also in comparison.md, .csv and .json.</p>"
    )
    figs = "".join(
        f'<figure><img class="fig" src="{_esc(src)}" alt="{_esc(src)}">'
        f"<figcaption>{_esc(src)}</figcaption></figure>"
        for src in images
        if not src.startswith("plots/cka_")
    )
    cka = "".join(
        f'<img class="fig" src="{_esc(src)}" alt="{_esc(src)}">'
        for src in images
        if src.startswith("plots/cka_")
    )
    html = (
        f"<h1>Study {_esc(study.name)}</h1>{summary}<h2>Comparison</h2>{table}"
        f"<h2>Figures</h2>{figs}" + (f"<h2>Encoder-decoder CKA, per cell</h2>{cka}" if cka else "")
    )
    return page(f"lmvae study {study.name}", html)


def write_summary(study: Study, results: Sequence[dict], out: Path) -> Path:
    """Write the comparison table, the plots and index.html for ``results``; returns index.html."""
    columns, rows = comparison_rows(results)
    _write_text(out / "comparison.md", _markdown(columns, rows, study))
    _write_text(out / "comparison.csv", _csv(columns, rows))
    detail = [
        {**row, "cka": r.get("cka"), "slot_attention": r.get("slot_attention")}
        for row, r in zip(rows, results, strict=True)
    ]
    write_json(out / "comparison.json", {"study": study.name, "columns": columns, "rows": detail})
    images = _plots(study, results, rows, out)
    index = out / "index.html"
    _write_text(index, _index(study, columns, rows, images))
    return index
