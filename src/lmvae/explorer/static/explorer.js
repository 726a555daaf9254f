// lmvae explorer: the page's controls, talking to the JSON API of lmvae.explorer.server.
// No build step and nothing fetched but this server's own API. Each control is a lane: at most
// one request in flight and one waiting (a newer one replaces it), so a dragged slider sends a
// handful of requests, the last for where it stopped. The server enforces the same per client.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const CLIENT = "page-" + Math.random().toString(36).slice(2, 12);
  const SVG = "http://www.w3.org/2000/svg";
  const W = 640, H = 460, PAD = 16;
  const shown = { model: null };  // what is on screen, for "Download JSON"
  let info = null;
  let map = null;  // {coords, texts, labels, colours, method, colour_by, sx, sy}
  const lanes = {};
  const busy = {};

  // -- requests ------------------------------------------------------------------------------
  function progress() {
    const names = Object.keys(busy);
    if (!names.length) { $("status").textContent = ""; return; }
    const now = performance.now();
    $("status").textContent = "working: " + names.map(
      (n) => n + " " + ((now - busy[n]) / 1000).toFixed(0) + " s").join(", ");
  }
  setInterval(progress, 500);

  function send(channel, path, body, done) {
    const lane = lanes[channel] || (lanes[channel] = { running: false, next: null });
    if (lane.running) { lane.next = [path, body, done]; return; }
    lane.running = true;
    busy[channel] = performance.now();
    progress();
    const error = $(channel + "-error");
    fetch(path, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-Explorer-Client": CLIENT },
    }).then((r) => r.json().then((j) => [r, j])).then(([r, j]) => {
      if (j.stale) return;
      if (!r.ok) { if (error) error.textContent = j.error || r.statusText; return; }
      if (error) error.textContent = "";
      done(j);
    }).catch((e) => { if (error) error.textContent = String(e); }).finally(() => {
      lane.running = false;
      delete busy[channel];
      progress();
      if (lane.next) { const n = lane.next; lane.next = null; send(channel, ...n); }
    });
  }

  function decoding() {
    return { strategy: $("strategy").value, seed: Math.max(0, parseInt($("seed").value, 10) || 0) };
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function fill(list, items) {
    list.replaceChildren(...items.map((t) => el("li", t)));
  }

  // The typed sentences; the first takes the word labels when the model reads them.
  function typed() {
    const lines = $("sentences").value.split("\n").map((s) => s.trim()).filter(Boolean);
    const labels = $("labels").value.trim();
    return lines.map((t, i) => (i === 0 && labels ? { text: t, labels: labels } : t));
  }

  // -- encode and decode ---------------------------------------------------------------------
  function encode() {
    const sentences = typed();
    if (!sentences.length) { $("reconstruct-error").textContent = "type a sentence first"; return; }
    const samples = parseInt($("samples").value, 10) || 0;
    send("reconstruct", "/api/reconstruct", { sentences, samples, ...decoding() }, (j) => {
      shown.reconstruct = j;
      const table = el("table");
      const head = el("tr");
      ["sentence", "reconstruction", "posterior samples", "mean σ"].forEach(
        (h) => head.append(el("th", h)));
      table.append(head);
      j.rows.forEach((row) => {
        const tr = el("tr");
        tr.append(el("td", row.text), el("td", row.reconstruction, "decoded recon-text"));
        const ul = el("ul", undefined, "decoded");
        row.samples.forEach((s) => ul.append(el("li", s)));
        const td = el("td"); td.append(ul); tr.append(td);
        tr.append(el("td", row.mean_sigma.toFixed(3), "num"));
        table.append(tr);
      });
      $("recon").replaceChildren(table);
      const first = j.rows[0].text;
      if (!$("traverse-sentence").value) { $("traverse-sentence").value = first; traverseStart(); }
      place(sentences);
    });
  }

  // -- the corpus map ------------------------------------------------------------------------
  function loadMap() {
    if (!info.maps.length) { $("map").textContent = "no corpus: start the explorer with --data"; return; }
    const body = { method: $("map-method").value, colour_by: $("colour-by").value };
    send("map", "/api/map", body, (j) => { map = j; shown.map = { ...j, placed: [] }; drawMap(); });
  }

  function drawMap() {
    const xs = map.coords.map((c) => c[0]), ys = map.coords.map((c) => c[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    map.sx = (x) => PAD + (x - x0) / ((x1 - x0) || 1) * (W - 2 * PAD);
    map.sy = (y) => H - PAD - (y - y0) / ((y1 - y0) || 1) * (H - 2 * PAD);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    map.coords.forEach((c, i) => {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", map.sx(c[0]).toFixed(1));
      dot.setAttribute("cy", map.sy(c[1]).toFixed(1));
      dot.setAttribute("r", 3);
      dot.setAttribute("fill", map.colours[map.labels[i]]);
      dot.setAttribute("fill-opacity", 0.75);
      dot.dataset.id = i;
      svg.append(dot);
    });
    svg.addEventListener("mousemove", hover);
    svg.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
    svg.addEventListener("click", pick);
    $("map").replaceChildren(svg);
    $("legend").replaceChildren(...Object.entries(map.colours).map(([label, colour]) => {
      const item = el("span"), dot = el("i");
      dot.style.background = colour;
      item.append(dot, label);
      return item;
    }));
  }

  function hover(event) {
    const id = event.target.dataset && event.target.dataset.id;
    const tip = $("tooltip");
    if (id === undefined) { tip.hidden = true; return; }
    tip.textContent = `${map.texts[id]} [${map.labels[id]}]`;
    const box = $("map-box").getBoundingClientRect();
    tip.style.left = (event.clientX - box.left + 12) + "px";
    tip.style.top = (event.clientY - box.top + 12) + "px";
    tip.hidden = false;
  }

  function pick(event) {
    const id = event.target.dataset && event.target.dataset.id;
    if (id === undefined) return;
    document.querySelectorAll("#map circle.selected").forEach((c) => c.classList.remove("selected"));
    event.target.classList.add("selected");
    const target = $("click-target").value;
    $(target).value = map.texts[id];
    shown.selected = { id: Number(id), text: map.texts[id], label: map.labels[id] };
    if (target === "sentences") $("labels").value = "";
    if (target === "traverse-sentence") traverseStart();
  }

  function place(sentences) {
    if (!map) return;
    send("place", "/api/place", { sentences, method: map.method }, (j) => {
      const svg = $("map").querySelector("svg");
      svg.querySelectorAll(".placed, .placed-label").forEach((n) => n.remove());
      j.coords.forEach((c, i) => {
        const star = document.createElementNS(SVG, "circle");
        star.setAttribute("cx", map.sx(c[0]).toFixed(1));
        star.setAttribute("cy", map.sy(c[1]).toFixed(1));
        star.setAttribute("r", 7);
        star.setAttribute("class", "placed");
        const label = document.createElementNS(SVG, "text");
        label.setAttribute("x", (map.sx(c[0]) + 9).toFixed(1));
        label.setAttribute("y", (map.sy(c[1]) + 4).toFixed(1));
        label.setAttribute("class", "placed-label");
        label.textContent = j.texts[i].length > 40 ? j.texts[i].slice(0, 40) + "…" : j.texts[i];
        svg.append(star, label);
      });
      shown.map.placed = j.texts.map((t, i) => ({ text: t, coords: j.coords[i] }));
    });
  }

  // -- traversal -----------------------------------------------------------------------------
  function traverseRequest(value) {
    const sentence = $("traverse-sentence").value.trim();
    if (!sentence) { $("traverse-error").textContent = "give a sentence (or click a point)"; return; }
    const body = { sentence, dim: parseInt($("traverse-dim").value, 10), ...decoding() };
    if (value !== undefined) body.value = value;
    send("traverse", "/api/traverse", body, (j) => {
      shown.traverse = j;
      $("traverse-text").textContent = j.decoded;
      $("traverse-value").textContent = `z${j.dim} = ${j.value.toFixed(2)}`;
      $("traverse-info").textContent =
        `posterior of z${j.dim}: mean ${j.mu.toFixed(2)}, σ ${j.sigma.toFixed(3)}`;
      if (value === undefined) $("traverse-slider").value = j.mu;
    });
  }
  function traverseStart() { traverseRequest(undefined); }

  // -- interpolation, arithmetic, prior ------------------------------------------------------
  function interpolateRun() {
    const body = { a: $("interp-a").value.trim(), b: $("interp-b").value.trim(),
      steps: parseInt($("interp-steps").value, 10) || 6, mode: $("interp-mode").value,
      ...decoding() };
    send("interpolate", "/api/interpolate", body, (j) => {
      shown.interpolate = j;
      fill($("interp-out"), j.texts);
      const s = j.smoothness === null ? "undefined" : j.smoothness.toFixed(3);
      $("interp-smooth").textContent = `smoothness ${s} (word mover's distance, end to end over ` +
        `path length; 1 = every step moves towards B)`;
    });
  }

  function arithmeticRun() {
    const body = { a: $("arith-a").value.trim(), b: $("arith-b").value.trim(),
      c: $("arith-c").value.trim(), k: 5, ...decoding() };
    send("arithmetic", "/api/arithmetic", body, (j) => {
      shown.arithmetic = j;
      $("arith-out").textContent = j.text;
      fill($("arith-neighbours"), j.neighbours.map((n) => `${n.text}  (${n.distance.toFixed(2)})`));
    });
  }

  function priorRun() {
    const body = { n: parseInt($("prior-n").value, 10) || 6, ...decoding() };
    if (info.needs.category) body.category = $("prior-category").value;
    send("prior", "/api/prior", body, (j) => { shown.prior = j; fill($("prior-out"), j.texts); });
  }

  function download() {
    const blob = new Blob([JSON.stringify(shown, null, 1)], { type: "application/json" });
    const a = el("a");
    a.href = URL.createObjectURL(blob);
    a.download = "lmvae-explorer.json";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  // -- set-up --------------------------------------------------------------------------------
  function options(select, values, label) {
    select.replaceChildren(...values.map((v) => {
      const o = el("option", label ? label(v) : String(v));
      o.value = typeof v === "object" ? v.dim : v;
      return o;
    }));
  }

  function describeNeeds(needs) {
    const parts = [];
    if (needs.word_labels) {
      parts.push("This model's encoder reads one word label per word (" + needs.labels.join(", ") +
        "): give the labels of a typed sentence, or pick corpus sentences on the map.");
      $("labels").hidden = false;
    }
    if (needs.decoder_labels) {
      parts.push(needs.label_dropout > 0
        ? "Its decoder can take labels; it was trained to generate without them too, as here."
        : "Its decoder was trained with labels only: decodings here, without labels, may suffer.");
    }
    if (needs.category) {
      parts.push(`Its prior is a mixture over ${needs.category}: sample one category at a time.`);
    }
    $("needs").textContent = parts.join(" ");
    $("needs").hidden = !parts.length;
  }

  function start(j) {
    info = j;
    shown.model = { name: j.model, latent_size: j.latent_size, corpus_size: j.corpus_size };
    $("model").textContent = `${j.model || "model"} · latent ${j.latent_size} · ` +
      (j.corpus_size ? `${j.corpus_size} corpus sentences` : "no corpus");
    options($("strategy"), j.strategies);
    options($("map-method"), j.maps);
    options($("colour-by"), j.colour_by);
    options($("traverse-dim"), j.dims,
      (d) => d.kl === null ? `z${d.dim}` : `z${d.dim} (KL ${d.kl.toFixed(2)})`);
    if (j.needs.category) {
      options($("prior-category"), j.needs.categories);
      $("prior-category-label").hidden = false;
    }
    describeNeeds(j.needs);
    $("encode").addEventListener("click", encode);
    $("map-method").addEventListener("change", loadMap);
    $("colour-by").addEventListener("change", loadMap);
    $("traverse-dim").addEventListener("change", traverseStart);
    $("traverse-sentence").addEventListener("change", traverseStart);
    $("traverse-slider").addEventListener("input",
      (e) => traverseRequest(parseFloat(e.target.value)));
    $("interpolate").addEventListener("click", interpolateRun);
    $("arithmetic").addEventListener("click", arithmeticRun);
    $("prior").addEventListener("click", priorRun);
    $("download").addEventListener("click", download);
    document.documentElement.dataset.ready = "1";
    loadMap();
  }

  fetch("/api/info", { credentials: "same-origin" }).then((r) => r.json()).then(start)
    .catch((e) => { $("needs").hidden = false; $("needs").textContent = "explorer: " + e; });
})();
