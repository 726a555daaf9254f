"""Self-contained HTML for probe results: the report page and interactive cluster maps.

Everything is inline (CSS, a few lines of JavaScript, PNGs as data URIs, maps as SVG), so a
report folder can be mailed or opened offline. On load, the page counts its figures that
rendered (images decoded with a non-zero size, maps with points) and writes the count to
``<html data-figures-rendered="..." data-figures-total="...">``; tests read it back from a
headless browser.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .plots import category_colors

__all__ = ["interactive_map", "map_page", "render_report"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
  background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px} .muted{color:#666} .note{color:#666;font-size:12px}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff;font-size:13px}
th,td{border:1px solid #e1e1e1;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
img.fig{max-width:100%;background:#fff;border:1px solid #e1e1e1;display:block;margin:6px 0}
.map{background:#fff;border:1px solid #e1e1e1;display:inline-block;margin:6px 0}
.map svg{display:block} .legend{display:flex;flex-wrap:wrap;gap:4px;padding:6px;max-width:900px}
.legend button{border:1px solid #ccc;background:#fff;border-radius:3px;font-size:11px;
  cursor:pointer;padding:1px 6px} .legend button.off{opacity:.35}
.legend i{display:inline-block;width:9px;height:9px;margin-right:4px;border-radius:50%}
nav a{margin-right:10px;font-size:13px}
"""

_JS = """
(function(){
  function toggle(btn){
    var map=btn.closest('.map'), label=btn.getAttribute('data-toggle');
    var off=btn.classList.toggle('off');
    map.querySelectorAll('circle').forEach(function(c){
      if(c.getAttribute('data-label')===label){c.style.display=off?'none':'';}
    });
  }
  document.querySelectorAll('.legend button').forEach(function(b){
    b.addEventListener('click',function(){toggle(b);});
  });
  function count(){
    var imgs=[].slice.call(document.querySelectorAll('img.fig'));
    var maps=[].slice.call(document.querySelectorAll('.map svg'));
    var ok=imgs.filter(function(i){return i.complete&&i.naturalWidth>0;}).length+
           maps.filter(function(s){return s.querySelectorAll('circle').length>0&&
                                  s.getBoundingClientRect().width>0;}).length;
    var root=document.documentElement;
    root.setAttribute('data-figures-rendered',String(ok));
    root.setAttribute('data-figures-total',String(imgs.length+maps.length));
  }
  if(document.readyState==='complete'){count();}else{window.addEventListener('load',count);}
})();
"""

_W, _H, _PAD = 640.0, 440.0, 14.0
_METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _esc("-" if value is None else value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return _esc(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; numbers are right-aligned and rounded to 4 significant digits."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for v in row:
            numeric = isinstance(v, int | float | np.number) and not isinstance(v, bool)
            cells.append(f'<td class="num">{_fmt(v)}</td>' if numeric else f"<td>{_fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def image(png: bytes, alt: str) -> str:
    """A PNG embedded as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="fig" alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def interactive_map(
    coords: np.ndarray, labels: Sequence[Any], texts: Sequence[str], title: str
) -> str:
    """An SVG scatter map: hover a point for its sentence and label; click a legend entry to
    hide or show that label's points."""
    xy = np.asarray(coords, dtype=float)
    names = [str(v) for v in labels]
    colors = category_colors(names)
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    px = _PAD + (xy[:, 0] - lo[0]) / span[0] * (_W - 2 * _PAD)
    py = _H - _PAD - (xy[:, 1] - lo[1]) / span[1] * (_H - 2 * _PAD)
    points = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colors[n]}" data-label="{_esc(n)}">'
        f"<title>{_esc(t)} [{_esc(n)}]</title></circle>"
        for x, y, n, t in zip(px, py, names, texts, strict=True)
    )
    legend = "".join(
        f'<button type="button" data-toggle="{_esc(n)}"><i style="background:{c}"></i>'
        f"{_esc(n)}</button>"
        for n, c in colors.items()
    )
    return (
        f'<div class="map"><div class="legend"><b>{_esc(title)}</b>&nbsp;{legend}</div>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W:.0f}" height="{_H:.0f}" '
        f'viewBox="0 0 {_W:.0f} {_H:.0f}" role="img" aria-label="{_esc(title)}">'
        f'<rect width="100%" height="100%" fill="#fff"/>'
        f'<g fill-opacity="0.8">{points}</g></svg></div>'
    )


def page(title: str, body: str) -> str:
    """A complete HTML document around ``body``."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main><script>{_JS}</script></body></html>"
    )


def map_page(coords: np.ndarray, labels: Sequence[Any], texts: Sequence[str], title: str) -> str:
    """A standalone page holding one interactive map."""
    return page(title, f"<h1>{_esc(title)}</h1>" + interactive_map(coords, labels, texts, title))


# ------------------------------------------------------------------------------------------
# The report page.


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{body}</section>'


def _summary(results: Mapping[str, Any]) -> str:
    rows: list[tuple[str, Any]] = []
    rec = results.get("reconstruction") or {}
    usage = results.get("latent_usage") or {}
    names = {
        "bleu": "BLEU-4 (greedy, z = posterior mean)",
        "exact_match": "exact match",
        "word_accuracy": "word accuracy",
        "token_accuracy": "token accuracy (teacher-forced)",
        "perplexity": "perplexity",
        "recon_nll": "reconstruction NLL per sentence (nats)",
        "kl": "KL(q(z|x) || p(z)) per sentence (nats)",
        "neg_elbo": "negative ELBO per sentence (nats)",
    }
    rows += [(label, rec[key]) for key, label in names.items() if key in rec]
    if usage:
        rows.append(("mutual information I(x; z) (nats)", usage["mutual_information"]))
        rows.append(("  upper bound log N", usage["mi_upper_bound"]))
        rows.append(("active units", f"{usage['active_units']} / {usage['latent_size']}"))
    return table(["metric", "value"], rows) if rows else ""


def _training(results: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    history = results.get("training") or []
    if not history:
        return '<p class="muted">No training history (history.jsonl) next to the model.</p>'
    out = image(figures["training"], "training curves") if "training" in figures else ""
    keys = [
        k
        for k in ("train_loss", "eval_recon_nll", "eval_kl", "eval_bleu", "beta")
        if k in history[0]
    ]
    rows = [[h.get("epoch")] + [h.get(k) for k in keys] for h in history]
    return out + table(["epoch", *keys], rows)


def _traversal(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    out, steps = [], sorted({r["step"] for r in rows})
    for seed in dict.fromkeys(r["seed"] for r in rows):
        out.append(f"<h3>seed: {_esc(seed)}</h3>")
        body = []
        for dim in dict.fromkeys(r["dim"] for r in rows if r["seed"] == seed):
            cells = [r for r in rows if r["seed"] == seed and r["dim"] == dim]
            cells.sort(key=lambda r: r["step"])
            body.append(
                [f"z{dim}" if isinstance(dim, int) else dim]
                + [f"{c['text']}  ({c['value']:+.2f})" for c in cells]
            )
        out.append(table(["dim", *[f"step {s}" for s in steps]], body))
    return "".join(out)


def _interpolation(items: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for item in items:
        out.append(
            f"<h3>{_esc(item['start'])} &rarr; {_esc(item['end'])}</h3>"
            f"<p>{_esc(item['mode'])}, smoothness {_fmt(item['smoothness'])} "
            f"(endpoint WMD {_fmt(item['endpoint_distance'])} / path "
            f"{_fmt(item['path_length'])})</p>"
        )
        steps = len(item["texts"])
        rows = [
            [f"{i / (steps - 1):.2f}", t, "" if i == 0 else item["distances"][i - 1]]
            for i, t in enumerate(item["texts"])
        ]
        out.append(table(["t", "decoded", "WMD to previous"], rows))
    return "".join(out)


def render_report(results: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    """The report page for ``results`` (as :func:`lmvae.probes.report.run_probes` returns them)
    with the PNG ``figures`` it drew."""
    meta = results.get("meta", {})
    parts = [
        "<h1>lmvae probe report</h1>",
        f'<p class="muted">model <code>{_esc(meta.get("model", "?"))}</code> &middot; data '
        f"<code>{_esc(meta.get('data', '?'))}</code> &middot; {_fmt(meta.get('n_sentences'))} "
        f"sentences &middot; latent size {_fmt(meta.get('latent_size'))} &middot; seed "
        f"{_fmt(meta.get('seed'))} &middot; lmvae {_esc(meta.get('lmvae_version', '?'))}</p>",
    ]
    sections: list[str] = []
    if "reconstruction" in results or "latent_usage" in results:
        body = _summary(results)
        if "kl_per_dim" in figures:
            body += image(figures["kl_per_dim"], "KL per latent dimension")
        sections.append(_section("metrics", "Reconstruction and latent usage", body))
    if "training" in results:
        sections.append(_section("training", "Training curves", _training(results, figures)))
    if results.get("traversal"):
        t = results["traversal"]
        note = (
            f'<p class="note">Each row walks one dimension over the {t["span"]} quantiles '
            f"{t['quantiles'][0]:.2f}..{t['quantiles'][1]:.2f}, the rest of z fixed at the "
            "seed's posterior mean; dimensions with the largest KL first.</p>"
        )
        sections.append(_section("traversal", "Traversals", note + _traversal(t["rows"])))
    if results.get("interpolation"):
        sections.append(
            _section("interpolation", "Interpolations", _interpolation(results["interpolation"]))
        )
    if results.get("arithmetic"):
        rows = [[r["a"], r["op"], r["b"], r["text"]] for r in results["arithmetic"]["rows"]]
        sections.append(
            _section("arithmetic", "Latent arithmetic", table(["a", "op", "b", "decoded"], rows))
        )
    if results.get("disentanglement"):
        d = results["disentanglement"]
        body = (
            image(figures["disentanglement"], "disentanglement")
            if "disentanglement" in figures
            else ""
        )
        body += table(["metric", "score"], list(d["scores"].items()))
        body += f'<p class="note">factors: {_esc(", ".join(d["factors"]))}</p>'
        sections.append(_section("disentanglement", "Disentanglement", body))
    if results.get("clusters"):
        c = results["clusters"]
        body = (
            f'<p class="note">coloured by <b>{_esc(c["color_by"])}</b>; hover a point for its '
            "sentence, click a legend entry to hide it.</p>"
        )
        for method, coords in c["coords"].items():
            title = f"{_METHOD_NAMES.get(method, method)} of z, coloured by {c['color_by']}"
            body += interactive_map(np.asarray(coords), c["labels"], c["texts"], title)
        rows = [
            [
                name,
                s.get("silhouette"),
                s.get("knn_accuracy"),
                s.get("majority_baseline"),
                s.get("n_classes"),
            ]
            for name, s in c["scores"].items()
        ]
        body += "<h3>Separation in latent space</h3>" + table(
            ["label", "silhouette", "5-NN accuracy", "majority baseline", "classes"], rows
        )
        sections.append(_section("clusters", "Cluster maps", body))
    if results.get("properties"):
        p = results["properties"]
        body = image(figures["properties"], "probe accuracy") if "properties" in figures else ""
        rows = [
            [
                name,
                r.get("accuracy"),
                r.get("majority_baseline"),
                r.get("n_classes"),
                r.get("skipped", ""),
            ]
            for name, r in p.items()
        ]
        body += table(["property", "CV accuracy", "majority baseline", "classes", "note"], rows)
        sections.append(_section("properties", "Linguistic properties", body))
    if results.get("sts"):
        s = results["sts"]
        body = table(["pairs", "Spearman", "Pearson"], [[s["n"], s["spearman"], s["pearson"]]])
        sections.append(_section("sts", "Semantic similarity (STS)", body))
    timings = results.get("timings") or {}
    if timings:
        rows = [[k, v] for k, v in timings.items()]
        sections.append(_section("timings", "Timings (s)", table(["probe", "seconds"], rows)))
    nav = "".join(
        f'<a href="#{a}">{_esc(t)}</a>'
        for a, t in [
            ("metrics", "metrics"),
            ("training", "training"),
            ("traversal", "traversal"),
            ("interpolation", "interpolation"),
            ("arithmetic", "arithmetic"),
            ("disentanglement", "disentanglement"),
            ("clusters", "clusters"),
            ("properties", "properties"),
            ("sts", "STS"),
        ]
        if f'id="{a}"' in "".join(sections)
    )
    return page("lmvae probe report", "".join(parts) + f"<nav>{nav}</nav>" + "".join(sections))
