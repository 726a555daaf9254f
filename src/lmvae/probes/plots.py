"""Static figures (PNG bytes) for probe results, drawn with matplotlib's object API.

Figures are built on a bare :class:`~matplotlib.figure.Figure` with the Agg canvas, never through
``pyplot``, so no GUI backend is touched and no global figure state leaks between calls.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["bar_chart", "category_colors", "line_chart", "scatter_map"]

# A 20-colour qualitative palette (Tableau 20) shared by the PNG and the interactive maps.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
OTHER_COLOR = "#d9d9d9"


def category_colors(labels: Sequence[Any]) -> dict[str, str]:
    """Label -> colour, most frequent labels first; beyond 20 labels the rest share grey."""
    order = [label for label, _ in Counter(str(v) for v in labels).most_common()]
    return {label: PALETTE[i] if i < len(PALETTE) else OTHER_COLOR for i, label in enumerate(order)}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def scatter_map(coords: np.ndarray, labels: Sequence[Any], title: str) -> bytes:
    """A 2-D map of points coloured by label, legend outside the axes."""
    coords = np.asarray(coords, dtype=float)
    names = [str(v) for v in labels]
    colors = category_colors(names)
    fig = _figure(8.0, 5.5)
    ax = fig.add_subplot()
    for label, color in colors.items():
        mask = np.array([n == label for n in names])
        ax.scatter(coords[mask, 0], coords[mask, 1], s=9, c=color, label=label, alpha=0.8, lw=0)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(colors) <= 24:
        ax.legend(
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize=7,
            frameon=False,
            markerscale=1.6,
        )
    return _png(fig)


def bar_chart(
    values: Mapping[str, float],
    title: str,
    ylabel: str = "",
    baseline: Mapping[str, float] | None = None,
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """Bars of named values, with optional baseline markers (e.g. a majority-class accuracy)."""
    names = list(values)
    fig = _figure(max(4.0, 0.45 * len(names) + 2.0), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    heights = [float(values[n]) if values[n] == values[n] else 0.0 for n in names]
    ax.bar(x, heights, color=PALETTE[0], width=0.7, label="score")
    if baseline:
        ax.scatter(
            x,
            [baseline.get(n, np.nan) for n in names],
            marker="_",
            s=300,
            c="#d62728",
            label="baseline",
            zorder=3,
        )
        ax.legend(fontsize=8, frameon=False)
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    return _png(fig)


def line_chart(
    x: Sequence[float], series: Mapping[str, Sequence[float]], title: str, xlabel: str
) -> bytes:
    """One small panel per series (they have different scales), shared x axis."""
    names = [n for n, ys in series.items() if any(y is not None for y in ys)]
    cols = min(3, max(1, len(names)))
    rows = (len(names) + cols - 1) // cols
    fig = _figure(3.4 * cols, 2.5 * rows)
    fig.suptitle(title)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        ys = [np.nan if y is None else float(y) for y in series[name]]
        ax.plot(list(x), ys, marker="o", ms=3, color=PALETTE[i % len(PALETTE)])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    return _png(fig)
