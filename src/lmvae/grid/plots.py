"""The study's figures (PNG bytes): a heat map per metric over encoder x decoder, reconstruction
against disentanglement per cell, training curves overlaid, slot attention mass per decoder
layer, and a cell's CKA matrix.  Drawn like the probe report's (:mod:`lmvae.probes.plots`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmvae.probes.plots import PALETTE, _figure, _png

__all__ = ["cka_map", "heatmaps", "layer_lines", "scatter", "training_curves"]


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def heatmaps(rows: Sequence[dict], metric: str, encoders: list[str], decoders: list[str]) -> bytes:
    """One panel per (condition, latent size): ``metric`` over encoder x decoder, averaged over
    seeds; an empty square is a cell that failed or has not run."""
    panels = sorted({(r["condition"], r["latent_size"]) for r in rows}, key=str)
    cols = min(3, len(panels))
    n_rows = (len(panels) + cols - 1) // cols
    fig = _figure(
        max(3.2, 1.1 * len(decoders) + 2.2) * cols, max(2.6, 0.55 * len(encoders) + 1.8) * n_rows
    )
    fig.suptitle(metric)
    for k, (condition, latent) in enumerate(panels):
        grid = np.full((len(encoders), len(decoders)), np.nan)
        for i, enc in enumerate(encoders):
            for j, dec in enumerate(decoders):
                values = [
                    r[metric]
                    for r in rows
                    if (r["encoder"], r["decoder"], r["condition"], r["latent_size"])
                    == (enc, dec, condition, latent)
                    and isinstance(r.get(metric), int | float)
                ]
                if values:
                    grid[i, j] = float(np.mean(values))
        ax = fig.add_subplot(n_rows, cols, k + 1)
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8, color="w")
        ax.set_xticks(range(len(decoders)), decoders, fontsize=8, rotation=30, ha="right")
        ax.set_yticks(range(len(encoders)), encoders, fontsize=8)
        ax.set_title(f"{condition}, z={latent}", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


def scatter(rows: Sequence[dict], x: str, y: str) -> bytes:
    """One point per cell: ``x`` (reconstruction) against ``y`` (disentanglement), coloured by
    condition, each point named by its encoder/decoder/latent size."""
    fig = _figure(6.5, 4.6)
    ax = fig.add_subplot()
    conditions = sorted({r["condition"] for r in rows})
    for k, condition in enumerate(conditions):
        pts = [r for r in rows if r["condition"] == condition and _number(r, x) and _number(r, y)]
        ax.scatter([r[x] for r in pts], [r[y] for r in pts], c=_color(k), label=condition, s=30)
        for r in pts:
            name = f"{r['encoder']}/{r['decoder']}/z{r['latent_size']}"
            ax.annotate(name, (r[x], r[y]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{x} against {y}, per cell")
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def _number(row: dict, key: str) -> bool:
    return isinstance(row.get(key), int | float) and not isinstance(row.get(key), bool)


def training_curves(histories: dict[str, list[dict]], keys: Sequence[str]) -> bytes:
    """One panel per history key, one line per cell."""
    keys = [k for k in keys if any(k in h for hs in histories.values() for h in hs)]
    fig = _figure(4.2 * max(len(keys), 1), 3.4)
    fig.suptitle("training curves")
    for p, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), p + 1)
        for k, (name, history) in enumerate(histories.items()):
            pts = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, color=_color(k), label=name)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    if keys and len(histories) <= 12:
        fig.axes[0].legend(fontsize=6, frameon=False)
    return _png(fig)


def layer_lines(rows: Sequence[dict], title: str, ylabel: str) -> bytes:
    """Cells' ``values`` per decoder layer: a panel per decoder (their layer counts differ), a
    line per cell coloured by encoder and latent size, solid for the first condition and dashed
    or dotted for the others, named in each panel's legend (not on the lines, which overlap)."""
    decoders = list(dict.fromkeys(r["decoder"] for r in rows))
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    colors = list(dict.fromkeys((r["encoder"], r["latent_size"]) for r in rows))
    styles = ("-", "--", ":", "-.")
    fig = _figure(4.2 * len(decoders) + 0.4, 3.8)
    for i, decoder in enumerate(decoders):
        ax = fig.add_subplot(1, len(decoders), i + 1)
        for r in (r for r in rows if r["decoder"] == decoder):
            label = f"{r['encoder']}, {r['condition']}, z{r['latent_size']}"
            ax.plot(
                range(len(r["values"])),
                r["values"],
                color=_color(colors.index((r["encoder"], r["latent_size"]))),
                linestyle=styles[conditions.index(r["condition"]) % len(styles)],
                lw=1.2,
                label=label,
            )
        ax.set_title(f"decoder {decoder}", fontsize=9)
        ax.set_xlabel("decoder layer")
        ax.set_ylim(0, 1)
        if i == 0:
            ax.set_ylabel(ylabel)
        ax.legend(fontsize=6, frameon=False, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def cka_map(matrix: list[list[float]], title: str) -> bytes:
    """A cell's CKA matrix: encoder layers (rows) x decoder layers (columns)."""
    m = np.asarray(matrix, dtype=float)
    fig = _figure(max(3.5, 0.18 * m.shape[1] + 2.5), max(3.0, 0.18 * m.shape[0] + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(m, cmap="magma", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xlabel("decoder layer (0 = embeddings)", fontsize=8)
    ax.set_ylabel("encoder layer", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)
