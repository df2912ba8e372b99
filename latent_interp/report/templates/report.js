// The report's behaviour: sortable tables, paged triplet tables, galleries with error maps, the triplet panel and
// the interactive embeddings. Everything it shows comes from the JSON payload in #report-data (see
// latent_interp/report/__init__.py); nothing is fetched.
"use strict";

const DATA = JSON.parse(document.getElementById("report-data").textContent);
const TRIPLETS = DATA.triplets;
const KEY_INDEX = new Map(TRIPLETS.map((record, index) => [record.key, index]));
const PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
                 "#CCB974", "#64B5CD"];
const FIXED_COLOURS = {split: {train: "#4C72B0", val: "#DD8452", test: "#55A868"},
                       frame: {1: "#1b9e77", 2: "#d95f02", 3: "#7570b3"}};
// magma at 0, .25, .5, .75, 1: error maps run from black (no error) to pale yellow (half the range or more)
const MAGMA = [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]];
const ERROR_RANGE = 0.5;
const PAGE_ROWS = 25;

function fmt(value, digits) {
  return value === null || value === undefined || Number.isNaN(value) ? "n/a" : Number(value).toFixed(digits);
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// ---------- tables rendered by the server: sort on a header click, filter by text ----------
function sortValue(cell) {
  const raw = cell.dataset.sort ?? cell.textContent;
  const number = Number(raw);
  return raw !== "" && !Number.isNaN(number) ? number : raw.toLowerCase();
}

function compare(a, b) {
  if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
  return typeof a === "number" ? -1 : 1;  // numbers before text ("n/a" last)
}

function enhanceTable(table) {
  const body = table.tBodies[0];
  if (!body || body.rows.length < 2) return;
  if (body.rows.length > 8) {  // a filter box only where there is something to filter
    const filter = el("input", {class: "filter", type: "search", placeholder: "filter rows…",
                                "aria-label": "filter rows"});
    filter.addEventListener("input", () => {
      const needle = filter.value.toLowerCase();
      for (const row of body.rows) row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
    });
    table.parentElement.insertBefore(filter, table);
  }
  table.tHead.querySelectorAll("th").forEach((header, column) => {
    header.addEventListener("click", () => {
      const ascending = header.getAttribute("aria-sort") !== "ascending";
      table.tHead.querySelectorAll("th").forEach((other) => other.removeAttribute("aria-sort"));
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const rows = [...body.rows].sort((a, b) => compare(sortValue(a.cells[column]), sortValue(b.cells[column])));
      if (!ascending) rows.reverse();
      body.append(...rows);
    });
  });
}

// ---------- tables built here from payload.tables: sorted, filtered and paged; a row opens its triplet ----------
function dataTable(container) {
  const spec = DATA.tables[container.dataset.table];
  if (!spec) return;
  let rows = spec.rows, page = 0, sortColumn = -1, ascending = true;
  const filter = el("input", {class: "filter", type: "search", placeholder: "filter: name, split, origin…",
                              "aria-label": "filter triplets"});
  const status = el("span");
  const previous = el("button", {type: "button", text: "‹ previous"});
  const next = el("button", {type: "button", text: "next ›"});
  const table = el("table");
  const head = el("tr");
  spec.columns.forEach((label, column) => {
    const header = el("th", {text: label});
    header.addEventListener("click", () => {
      ascending = sortColumn === column ? !ascending : true;
      sortColumn = column;
      head.querySelectorAll("th").forEach((other) => other.removeAttribute("aria-sort"));
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      page = 0;
      draw();
    });
    head.append(header);
  });
  table.append(el("thead", {}, head));
  const body = el("tbody");
  table.append(body);
  function visible() {
    const needle = filter.value.toLowerCase();
    let shown = needle ? rows.filter((row) => row.slice(1, 5).join(" ").toLowerCase().includes(needle)) : rows;
    if (sortColumn >= 0) {
      const value = (row) => row[sortColumn + 1] ?? "";  // nulls ("") after the numbers
      shown = [...shown].sort((a, b) => compare(value(a), value(b)));
      if (!ascending) shown.reverse();
    }
    return shown;
  }
  function draw() {
    const shown = visible();
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_ROWS));
    page = Math.min(page, pages - 1);
    body.replaceChildren(...shown.slice(page * PAGE_ROWS, (page + 1) * PAGE_ROWS).map((row) => {
      const line = el("tr", {"data-key": row[0], title: "open this triplet"});
      row.slice(1).forEach((value) => line.append(el("td", {
        class: typeof value === "number" ? "num" : "text", text: value === null ? "n/a" : String(value)})));
      line.addEventListener("click", () => openTriplet(row[0]));
      return line;
    }));
    status.textContent = `${shown.length} of ${rows.length} rows · page ${page + 1} of ${pages}`;
    previous.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  filter.addEventListener("input", () => { page = 0; draw(); });
  previous.addEventListener("click", () => { page -= 1; draw(); });
  next.addEventListener("click", () => { page += 1; draw(); });
  container.append(el("div", {class: "controls"}, filter, previous, next, status),
                   el("div", {class: "table-wrap"}, table));
  draw();
}

// ---------- error maps: mean |a - b| over RGB, drawn in the browser from the two embedded images ----------
function loadImage(uri) {
  const image = new Image();
  image.src = uri;
  return image.decode().then(() => image);
}

function magma(value) {
  const position = Math.min(1, Math.max(0, value)) * (MAGMA.length - 1);
  const low = Math.floor(Math.min(position, MAGMA.length - 2));
  const share = position - low;
  return MAGMA[low].map((channel, i) => Math.round(channel + share * (MAGMA[low + 1][i] - channel)));
}

function errorCanvas(uri, truthUri) {
  const canvas = el("canvas", {class: "error-map", title: "mean |image − truth| over RGB"});
  Promise.all([loadImage(uri), loadImage(truthUri)]).then(([image, truth]) => {
    const width = truth.naturalWidth, height = truth.naturalHeight;
    canvas.width = width;
    canvas.height = height;
    const scratch = document.createElement("canvas").getContext("2d");
    scratch.canvas.width = width;
    scratch.canvas.height = height;
    scratch.drawImage(truth, 0, 0, width, height);
    const expected = scratch.getImageData(0, 0, width, height).data;
    scratch.drawImage(image, 0, 0, width, height);
    const got = scratch.getImageData(0, 0, width, height).data;
    const context = canvas.getContext("2d");
    const out = context.createImageData(width, height);
    for (let i = 0; i < got.length; i += 4) {
      const error = (Math.abs(got[i] - expected[i]) + Math.abs(got[i + 1] - expected[i + 1]) +
                     Math.abs(got[i + 2] - expected[i + 2])) / (3 * 255);
      const [r, g, b] = magma(error / ERROR_RANGE);
      out.data.set([r, g, b, 255], i);
    }
    context.putImageData(out, 0, 0);
    canvas.dataset.ready = "1";
  });
  return canvas;
}

function tile(uri, label, truthUri = null, extraClass = "") {
  if (!uri) return el("div", {class: "tile missing"}, el("div", {class: "label", text: `${label}: not kept`}));
  return el("div", {class: `tile ${extraClass}`}, el("img", {src: uri, alt: label}),
            truthUri ? errorCanvas(uri, truthUri) : null, el("div", {class: "label", text: label}));
}

// ---------- previews: each in-between played between its ends, frame 1 → in-between → frame 3 → back ----------
// One clock for the page, so every preview shows the same phase and a row reads as one motion; the frames are the
// images the page already holds, so playing costs no bytes. Playing unless the reader asked for reduced motion.
const PREVIEW_PHASES = [0, 1, 2, 1];  // frame 1, the in-between, frame 3, the in-between
const PREVIEW_NAMES = ["frame 1", "in-between", "frame 3"];
const player = {phase: 1, playing: !window.matchMedia("(prefers-reduced-motion: reduce)").matches, timer: null};

function previewTile(first, middle, third, label, truthUri) {
  const node = tile(middle, label, truthUri, "preview");
  const image = node.querySelector("img");
  if (!image || !first || !third) return node;
  image.previewFrames = [first, middle, third];
  image.classList.add("previewing");
  node.append(el("div", {class: "phase"}));
  showPhase(image);
  return node;
}

function showPhase(image) {
  const frame = PREVIEW_PHASES[player.phase];
  image.src = image.previewFrames[frame];
  image.dataset.frame = String(frame);
  image.parentElement.querySelector(".phase").textContent = PREVIEW_NAMES[frame];
}

function stepPreviews() {
  player.phase = (player.phase + 1) % PREVIEW_PHASES.length;
  document.querySelectorAll("img.previewing").forEach(showPhase);
}

function setPlaying(playing) {
  player.playing = playing;
  clearInterval(player.timer);
  player.timer = playing ? setInterval(stepPreviews, 450) : null;
  document.querySelectorAll(".preview-play").forEach((button) => {
    button.textContent = playing ? "⏸ pause previews" : "▶ play previews";
  });
}

function previewControls() {
  return el("div", {class: "preview-controls"},
            el("button", {class: "preview-play", type: "button", onclick: () => setPlaying(!player.playing),
                          text: player.playing ? "⏸ pause previews" : "▶ play previews"}),
            el("button", {class: "preview-step", type: "button", text: "step ⏭",
                          onclick: () => { setPlaying(false); stepPreviews(); }}));
}

// In-betweens the payload does not store twice: repeat is frame 1, vae_ceiling the reconstruction of frame 2, and
// an image equal to an earlier model's ({as: that model}: the pixel-space methods) is that model's.
function inBetween(images, model, method) {
  if (method === "repeat") return images.frames[0];
  if (method === "vae_ceiling") return images.recon[model] ? images.recon[model][1] : null;
  const stored = images.interp[model] ? images.interp[model][method] : null;
  return stored && stored.as ? images.interp[stored.as][method] : stored;
}

// Methods that see frame 2 (the oracles and the ceiling) are marked wherever they are named.
function methodName(method) {
  return (DATA.oracles || []).includes(method) ? `${method} †` : method;
}

function interpLabel(record, model, method) {
  const scores = record.interp[model] && record.interp[model][DATA.methods.indexOf(method)];
  return scores ? `${methodName(method)} ${fmt(scores[0], 2)} dB` : methodName(method);
}

// ---------- worst-first galleries ----------
function gallery(container) {
  const keys = container.dataset.keys ? container.dataset.keys.split(",") : [];
  if (container.dataset.kind === "interp" && keys.length) container.append(previewControls());
  for (const key of keys) {
    const record = TRIPLETS[KEY_INDEX.get(key)], images = DATA.images[key];
    if (!record || !images) continue;
    const name = el("div", {class: "name"}, el("a", {text: key, onclick: () => openTriplet(key)}));
    const row = el("div", {class: "row", "data-key": key}, name);
    if (container.dataset.kind === "recon") {
      images.frames.forEach((uri, frame) => row.append(tile(uri, `frame ${frame + 1}`)));
      for (const model of DATA.models) {
        (images.recon[model] || []).forEach((uri, frame) => {
          const scores = record.recon[model] ? record.recon[model][frame] : [null, null];
          row.append(tile(uri, `${model} ${frame + 1}: ${fmt(scores[0], 2)} dB`, images.frames[frame]));
        });
      }
    } else {
      const model = container.dataset.model;
      row.append(tile(images.frames[0], "frame 1"), tile(images.frames[1], "frame 2 (truth)", null, "truth"),
                 tile(images.frames[2], "frame 3"));
      for (const method of DATA.methods) {
        row.append(previewTile(images.frames[0], inBetween(images, model, method), images.frames[2],
                               interpLabel(record, model, method), images.frames[1]));
      }
    }
    container.append(row);
  }
}

// ---------- the triplet panel ----------
function scoreTable(headers, rows) {
  return el("div", {class: "table-wrap"}, el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {text: h})))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...row.map((v, i) => el("td", {
      class: i === 0 ? "text" : "num", text: v ?? "n/a"})))))));
}

function openTriplet(key) {
  const index = KEY_INDEX.get(key);
  if (index === undefined) return false;
  const record = TRIPLETS[index], images = DATA.images[key];
  const body = document.getElementById("panel-body");
  const facts = [record.split, record.origin];
  if (record.level !== null) facts.push(`level ${record.level}`, record.motion);
  if (record.motion_px !== null && record.motion_px !== undefined) facts.push(`mean motion ${fmt(record.motion_px, 2)} px`);
  body.replaceChildren(el("h2", {text: record.name}), el("p", {text: facts.join(" · ")}));
  if (images) {
    body.append(el("h3", {text: "Frames"}),
                el("div", {class: "row"}, ...images.frames.map((uri, f) => tile(uri, `frame ${f + 1}`))));
    if (images.flow) {
      body.append(el("h3", {text: "Motion: the estimated flow 1 → 3"}), el("div", {class: "row"},
        tile(images.flow[0], `flow 1→3 (hue: direction, saturation: up to ${fmt(images.flow[2], 1)} px)`),
        tile(images.flow[1], "red: occluded (fails the forward-backward check); grey: still, blended")));
    }
    body.append(el("h3", {text: "Reconstructions and error maps"}));
    for (const model of DATA.models) {
      if (!images.recon[model]) continue;
      body.append(el("h4", {text: model}), el("div", {class: "row"}, ...images.recon[model].map((uri, f) => {
        const scores = record.recon[model][f];
        return tile(uri, `frame ${f + 1}: ${fmt(scores[0], 2)} dB, SSIM ${fmt(scores[1], 3)}`, images.frames[f]);
      })));
    }
  } else {
    body.append(el("p", {class: "caption", text: "Images are embedded for the worst and a sample of the triplets " +
      "of each split (interp.gallery_triplets, interp.sample_triplets, report.gallery_rows); this triplet's " +
      "scores:"}));
  }
  body.append(el("h3", {text: "Reconstruction scores"}), scoreTable(
    ["model", "frame 1 dB", "frame 2 dB", "frame 3 dB", "SSIM 1", "SSIM 2", "SSIM 3"],
    DATA.models.filter((m) => record.recon[m]).map((m) => [m, ...record.recon[m].map((s) => fmt(s[0], 2)),
                                                            ...record.recon[m].map((s) => fmt(s[1], 4))])));
  const interpolated = DATA.models.filter((m) => record.interp[m]);
  if (interpolated.length) {
    body.append(el("h3", {text: "In-betweens: frame 2 from frames 1 and 3"}));
    if (images) body.append(previewControls());
    for (const model of interpolated) {
      if (images && images.interp[model]) {
        body.append(el("h4", {text: model}), el("div", {class: "row"},
          tile(images.frames[1], "frame 2 (truth)", null, "truth"),
          ...(DATA.panel_methods || DATA.methods).map((method) => previewTile(
            images.frames[0], inBetween(images, model, method), images.frames[2],
            interpLabel(record, model, method), images.frames[1]))));
      }
      body.append(scoreTable([`${model}: method`, "PSNR dB ↑", "SSIM ↑", "chamfer ×10³ ↓", "latent MSE ↓", "LPIPS ↓"],
        DATA.methods.map((method, k) => {
          const [psnr, ssim, chamfer, latent, lpips] = record.interp[model][k];
          return [methodName(method), fmt(psnr, 2), fmt(ssim, 4), fmt(chamfer === null ? null : chamfer * 1e3, 3),
                  fmt(latent, 4), fmt(lpips, 4)];
        })));
    }
  } else if (record.split === "train") {
    body.append(el("p", {class: "caption", text: "Train triplets fit the predictors; they are not interpolated."}));
  }
  const panel = document.getElementById("triplet-panel");
  panel.hidden = false;
  panel.scrollTop = 0;
  panel.dataset.key = key;
  selectedTriplet = index;
  redrawEmbeddings();
  return true;
}

function closePanel() {
  document.getElementById("triplet-panel").hidden = true;
  selectedTriplet = null;
  redrawEmbeddings();
}

// ---------- embeddings ----------
let selectedTriplet = null;
const plots = [];

function pointValue(plot, point, colouring) {
  const record = TRIPLETS[plot.triplet[point]];
  const frame = plot.frame[point];
  if (colouring === "frame") return frame;
  if (colouring === "cluster") return plot.cluster[point];
  if (colouring.startsWith("psnr:")) {
    const scores = record.recon[colouring.slice(5)];
    return scores ? scores[frame - 1][0] : null;
  }
  return record[colouring];
}

function hoverText(plot, point) {
  const record = TRIPLETS[plot.triplet[point]], frame = plot.frame[point];
  const scores = DATA.models.filter((m) => record.recon[m]).map(
    (m) => `${m}: ${fmt(record.recon[m][frame - 1][0], 2)} dB, SSIM ${fmt(record.recon[m][frame - 1][1], 3)}`);
  return [`<b>${record.name}</b>`, `frame ${frame} · ${record.split} · ${record.origin}` +
          (record.level !== null ? ` · level ${record.level}` : ""), ...scores].join("<br>");
}

function pointTraces(plot, colouring) {
  const count = plot.x.length;
  const base = (indices) => ({type: "scatter", mode: "markers", x: indices.map((i) => plot.x[i]),
    y: indices.map((i) => plot.y[i]), customdata: indices, text: indices.map((i) => hoverText(plot, i)),
    hovertemplate: "%{text}<extra></extra>"});
  if (colouring.startsWith("psnr:")) {
    const indices = [...Array(count).keys()];
    return [{...base(indices), name: "PSNR dB", showlegend: false, marker: {size: 6, opacity: 0.85,
      color: indices.map((i) => pointValue(plot, i, colouring)), colorscale: "Viridis",
      colorbar: {title: {text: "PSNR dB"}, thickness: 12}}}];
  }
  const groups = new Map();
  for (let i = 0; i < count; i += 1) {
    const value = pointValue(plot, i, colouring);
    const label = value === null || value === undefined ? "n/a" : String(value);
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(i);
  }
  const labels = [...groups.keys()].sort((a, b) => compare(Number.isNaN(Number(a)) ? a : Number(a),
                                                          Number.isNaN(Number(b)) ? b : Number(b)));
  return labels.map((label, position) => ({...base(groups.get(label)), name: `${colouring} ${label}`,
    marker: {size: 6, opacity: 0.8,
             color: (FIXED_COLOURS[colouring] || {})[label] || PALETTE[position % PALETTE.length]}}));
}

function trajectoryTrace(plot, tripletIndex, colour, width, name) {
  const points = [];
  plot.triplet.forEach((t, i) => { if (t === tripletIndex) points.push(i); });
  points.sort((a, b) => plot.frame[a] - plot.frame[b]);
  if (points.length < 2) return null;
  return {type: "scatter", mode: "lines+markers", x: points.map((i) => plot.x[i]), y: points.map((i) => plot.y[i]),
          name, showlegend: false, hoverinfo: "skip", line: {color: colour, width},
          marker: {color: colour, size: points.map((i) => (plot.frame[i] === 2 ? 11 : 7)),
                   symbol: points.map((i) => (plot.frame[i] === 3 ? "arrow" : "circle")), angleref: "previous"}};
}

function drawEmbedding(entry) {
  const {plot, node} = entry;
  const colouring = document.getElementById("colour-by").value;
  const traces = pointTraces(plot, colouring);
  if (document.getElementById("show-trajectories").checked) {
    plot.trajectories.forEach((t) => {
      const trace = trajectoryTrace(plot, t, "rgba(60,60,60,0.55)", 1.2, TRIPLETS[t].key);
      if (trace) traces.push(trace);
    });
  }
  if (selectedTriplet !== null) {
    const trace = trajectoryTrace(plot, selectedTriplet, "#d62728", 3, `chosen: ${TRIPLETS[selectedTriplet].key}`);
    if (trace) traces.push(trace);
  }
  return Plotly.react(node, traces, {
    margin: {l: 30, r: 10, t: 10, b: 30}, hovermode: "closest", legend: {font: {size: 10}},
    xaxis: {zeroline: false, showticklabels: false}, yaxis: {zeroline: false, showticklabels: false},
  }, {responsive: true, displayModeBar: false});  // drag to zoom, double-click to reset
}

function redrawEmbeddings() {
  plots.forEach((entry) => { if (entry.drawn) drawEmbedding(entry); });
}

function showThumbnail(entry, event) {
  const point = event.points[0];
  if (point.customdata === undefined) return;
  const plot = entry.plot, index = point.customdata;
  const record = TRIPLETS[plot.triplet[index]];
  const thumb = DATA.thumbs[`${record.key}/${plot.frame[index]}`];
  const box = document.getElementById("hover-thumb");
  if (!thumb) { box.hidden = true; return; }
  box.querySelector("img").src = thumb;
  box.querySelector(".label").textContent = `${record.key} · frame ${plot.frame[index]}`;
  const mouse = event.event;
  const bounds = entry.node.getBoundingClientRect();
  const x = mouse && mouse.clientX !== undefined ? mouse.clientX : bounds.left + bounds.width / 2;
  const y = mouse && mouse.clientY !== undefined ? mouse.clientY : bounds.top + bounds.height / 2;
  // above and to the right of the pointer, clear of plotly's own label (drawn beside the point)
  box.style.left = `${Math.min(window.innerWidth - 140, x + 24)}px`;
  box.style.top = `${Math.max(0, y - 175)}px`;
  box.dataset.key = `${record.key}/${plot.frame[index]}`;
  box.hidden = false;
}

function setUpEmbeddings() {
  document.querySelectorAll(".embedding-plot").forEach((node) => {
    const entry = {plot: DATA.embeddings[Number(node.dataset.embedding)], node, drawn: false};
    plots.push(entry);
    drawEmbedding(entry).then(() => {
      entry.drawn = true;
      node.dataset.rendered = "1";
      node.on("plotly_hover", (event) => showThumbnail(entry, event));
      node.on("plotly_unhover", () => { document.getElementById("hover-thumb").hidden = true; });
      node.on("plotly_click", (event) => {
        const point = event.points[0];
        document.getElementById("hover-thumb").hidden = true;
        if (point.customdata !== undefined) openTriplet(TRIPLETS[entry.plot.triplet[point.customdata]].key);
      });
    });
  });
  const colour = document.getElementById("colour-by");
  if (colour) colour.addEventListener("change", redrawEmbeddings);
  const trajectories = document.getElementById("show-trajectories");
  if (trajectories) trajectories.addEventListener("change", redrawEmbeddings);
}

// ---------- the VAE switcher: embeddings and galleries of one VAE, or of all ----------
function showVae(name) {
  document.querySelectorAll(".vae-switch").forEach((select) => { select.value = name; });
  document.querySelectorAll("[data-vae]").forEach((node) => {
    node.hidden = name !== "" && !node.dataset.vae.split(" ").includes(name);
  });
  // a plot drawn while hidden has no width: redraw the ones now shown
  plots.forEach((entry) => { if (entry.drawn && !entry.node.closest("[hidden]")) Plotly.Plots.resize(entry.node); });
}

function setUpVaeSwitch() {
  document.querySelectorAll(".vae-switch").forEach((select) => {
    select.addEventListener("change", () => showVae(select.value));
  });
}

// ---------- search, keyboard, start ----------
function setUpSearch() {
  const input = document.getElementById("triplet-search");
  const names = document.getElementById("triplet-names");
  names.append(...TRIPLETS.map((record) => el("option", {value: record.key})));
  const open = () => {
    const wanted = input.value.trim();
    const key = KEY_INDEX.has(wanted) ? wanted : (TRIPLETS.find((r) => r.name === wanted) || {}).key;
    input.classList.toggle("bad", wanted !== "" && !key);
    if (key) openTriplet(key);
  };
  input.addEventListener("change", open);
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
}

document.getElementById("panel-close").addEventListener("click", closePanel);
document.addEventListener("keydown", (event) => { if (event.key === "Escape") closePanel(); });
document.querySelectorAll("table.sortable").forEach(enhanceTable);
document.querySelectorAll(".data-table").forEach(dataTable);
document.querySelectorAll(".gallery").forEach(gallery);
setPlaying(player.playing);
setUpSearch();
setUpEmbeddings();
setUpVaeSwitch();
