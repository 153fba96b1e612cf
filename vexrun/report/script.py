"""The report page's script, inlined: it reads the page's data (JSON in a ``<script type="application/json">``)
and draws every section with DOM calls and inline SVG. Record text only ever reaches the page through
``textContent`` and ``setAttribute``: never through ``innerHTML``, so a record cannot inject markup or script."""

from __future__ import annotations

__all__ = ["JS"]

JS = r"""
(function () {
"use strict";
var SVGNS = "http://www.w3.org/2000/svg";
var PALETTE = ["#3b6fd8", "#e0802b", "#2f9e6b", "#d64545", "#8a5cc7", "#8c6d46", "#d665a8", "#6b7685",
  "#b5b82b", "#27a9b8", "#1f4e9c", "#9c3d1f"];
var main = document.getElementById("main");

function el(tag, attrs, text) {
  var e = document.createElement(tag);
  if (attrs) { for (var k in attrs) { if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]); } }
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function sv(tag, attrs, text) {
  var e = document.createElementNS(SVGNS, tag);
  if (attrs) { for (var k in attrs) e.setAttribute(k, attrs[k]); }
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function add(parent) { for (var i = 1; i < arguments.length; i++) parent.appendChild(arguments[i]); return parent; }
function fmt(v) {
  if (v === null || v === undefined) return "\u2013";
  if (typeof v !== "number") return String(v);
  if (Math.round(v) === v) return String(v).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return Math.abs(v) >= 100 ? fmt(Math.round(v)) : v.toFixed(Math.abs(v) >= 10 ? 1 : 2);
}
function usd(v) { return v === null || v === undefined ? "\u2013" : "$" + v.toFixed(v >= 1 ? 2 : 4); }
function secs(s) {
  if (s < 90) return String(Math.round(s * 10) / 10) + " s";
  if (s < 5400) return String(Math.round(s / 6) / 10) + " min";
  return String(Math.round(s / 360) / 10) + " h";
}
function section(id, title, note) {
  var s = add(el("section", {id: id}), el("h2", null, title));
  if (note) s.appendChild(el("p", {"class": "note"}, note));
  main.appendChild(s);
  return s;
}
function td(text, key, cls) { return el("td", {"data-k": key || null, "class": cls || null}, text); }
function head(cols) {
  var tr = el("tr");
  cols.forEach(function (c) { tr.appendChild(el("th", {"class": c[1] ? "n" : null}, c[0])); });
  return add(el("thead"), tr);
}

function header(D) {
  document.getElementById("title").textContent = D.title;
  var meta = document.getElementById("meta");
  (D.meta || []).forEach(function (m) {
    meta.appendChild(add(el("span", {"data-k": "meta:" + m[0]}), el("b", null, m[0] + " "),
      document.createTextNode(fmt(m[1]))));
  });
  var cards = el("div", {"class": "cards", id: "summary"});
  (D.cards || []).forEach(function (c) {
    add(cards, add(el("div", {"class": "card"}), el("div", {"class": "v", "data-k": "card:" + c.key},
      c.money ? usd(c.value) : fmt(c.value) + (c.unit ? " " + c.unit : "")), el("div", {"class": "l"}, c.label)));
  });
  main.appendChild(cards);
}

function funnel(rows, note) {
  var s = section("funnel", "Stages: what each read, wrote, skipped and rejected", note);
  var max = 1;
  rows.forEach(function (r) { max = Math.max(max, r["in"], r.out + r.skipped + r.rejected); });
  var t = add(el("table"), head([["stage"], ["read", 1], ["written", 1], ["skipped", 1], ["rejected", 1],
    ["retried", 1], [""], ["figures"]]));
  var body = el("tbody");
  rows.forEach(function (r) {
    var k = "funnel:" + r.title + ":";
    var bar = el("div", {"class": "bar", style: null});
    bar.style.width = Math.max(1, 100 * Math.max(r["in"], r.out + r.skipped + r.rejected) / max) + "%";
    var whole = Math.max(1, r.out + r.skipped + r.rejected);
    [["ok", r.out], ["skip", r.skipped], ["bad", r.rejected]].forEach(function (p) {
      var i = el("i", {"class": p[0], title: p[0] === "ok" ? "written" : p[0] === "skip" ? "skipped" : "rejected"});
      i.style.width = (100 * p[1] / whole) + "%";
      bar.appendChild(i);
    });
    var barCell = el("td"); barCell.style.width = "28%"; barCell.appendChild(bar);
    add(body, add(el("tr", {"data-stage": r.stage}), td(r.title, k + "title"), td(fmt(r["in"]), k + "in", "n"),
      td(fmt(r.out), k + "out", "n"), td(fmt(r.skipped), k + "skipped", "n"), td(fmt(r.rejected), k + "rejected", "n"),
      td(fmt(r.retried), k + "retried", "n"), barCell, td(r.figures || "", k + "figures")));
  });
  s.appendChild(add(t, body));
  s.appendChild(add(el("div", {"class": "legend"}),
    add(el("span"), el("span", {"class": "sw ok"}), document.createTextNode("written")),
    add(el("span"), el("span", {"class": "sw skip"}), document.createTextNode("skipped")),
    add(el("span"), el("span", {"class": "sw bad"}), document.createTextNode("rejected"))));
}

function throughput(T) {
  var s = section("throughput", "Throughput over time", T.note);
  var pts = T.points || [];
  if (!pts.length) return;
  var W = 1200, H = 240, L = 64, R = 16, TOP = 14, B = 32;
  var span = Math.max(T.bin_s, pts[pts.length - 1][0] + T.bin_s);
  var peak = 1;
  pts.forEach(function (p) { peak = Math.max(peak, p[1] / T.bin_s); });
  var g = sv("svg", {viewBox: "0 0 " + W + " " + H, "class": "chart", id: "throughput-svg",
    "data-bins": String(pts.length), "data-records": String(T.total)});
  var x = function (t) { return L + (W - L - R) * t / span; };
  var y = function (v) { return H - B - (H - B - TOP) * v / peak; };
  add(g, sv("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#c9d1da"}),
    sv("text", {x: L - 6, y: TOP + 4, "text-anchor": "end"}, fmt(Math.round(peak))),
    sv("text", {x: L - 6, y: TOP + 18, "text-anchor": "end"}, "rec/s"),
    sv("text", {x: L - 6, y: H - B, "text-anchor": "end"}, "0"));
  for (var i = 0; i <= 4; i++) {
    var t = span * i / 4;
    g.appendChild(sv("text", {x: x(t), y: H - 10, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle"},
      secs(t)));
  }
  var bw = Math.max(1, (W - L - R) * T.bin_s / span - 1);
  pts.forEach(function (p) {
    var rate = p[1] / T.bin_s;
    var r = sv("rect", {x: x(p[0]), y: y(rate), width: bw, height: Math.max(0.5, H - B - y(rate)), fill: "#3b6fd8"});
    r.appendChild(sv("title", null, secs(p[0]) + ": " + fmt(p[1]) + " records (" + fmt(Math.round(rate)) + "/s)"));
    g.appendChild(r);
  });
  (T.markers || []).forEach(function (m) {
    add(g, sv("line", {x1: x(m[0]), y1: TOP, x2: x(m[0]), y2: H - B, stroke: "#d64545", "stroke-dasharray": "3 3"}),
      sv("text", {x: x(m[0]) + 3, y: TOP + 10}, m[1]));
  });
  s.appendChild(g);
  s.appendChild(el("p", {"class": "note", id: "throughput-figures"}, fmt(T.total) + " records in " +
    fmt(pts.length) + " bins of " + secs(T.bin_s) + "; peak " + fmt(Math.round(peak)) + " records/s"));
}

function rejects(J) {
  var s = section("rejects", "Rejected records by reason", J.note);
  if (!J.groups || !J.groups.length) {
    s.appendChild(el("p", {"data-k": "rejects:none"}, "No record was rejected."));
    return;
  }
  var max = 1;
  J.groups.forEach(function (g) { max = Math.max(max, g.count); });
  var t = add(el("table"), head([["stage"], ["reason"], ["records", 1], [""]]));
  var body = el("tbody");
  J.groups.forEach(function (g) {
    var k = "reject:" + g.stage + ":" + g.kind;
    var cell = add(el("td"), el("div", null, g.kind));
    var many = g.examples.length === 1 ? "" : "s";
    var d = add(el("details"), el("summary", null, g.examples.length + " example" + many));
    g.examples.forEach(function (x) {
      d.appendChild(el("div", {"class": "ex", "data-k": "example:" + x.id},
        "id " + x.id + (x.line ? " (line " + x.line + ")" : "") + "\n" + x.reason +
        (x.text ? "\n\u00bb " + x.text : "")));
    });
    cell.appendChild(d);
    var bar = add(el("div", {"class": "bar"}), el("i", {"class": "bad"}));
    bar.style.width = Math.max(1, 100 * g.count / max) + "%";
    bar.firstChild.style.width = "100%";
    var bc = el("td"); bc.style.width = "24%"; bc.appendChild(bar);
    add(body, add(el("tr"), td(g.stage, k + ":stage"), cell, td(fmt(g.count), k, "n"), bc));
  });
  s.appendChild(add(t, body));
}

var USAGE = [["calls", "calls"], ["cached", "cached"], ["input_tokens", "input tokens"],
  ["output_tokens", "output tokens"], ["retries", "retries"], ["rate_limited", "429s"], ["errors", "errors"]];
function llm(U) {
  var s = section("llm", "LLM calls, tokens and cost per provider and key", U.note);
  var cols = [["provider / key"], ["model"], ["status"]];
  USAGE.forEach(function (u) { cols.push([u[1], 1]); });
  cols.push(["cost", 1]);
  var t = add(el("table"), head(cols));
  var body = el("tbody");
  function row(label, model, status, u, k, sub) {
    var tr = add(el("tr", {"class": sub ? "sub" : null}), td(label, k + ":label"), td(model || ""), td(status || ""));
    USAGE.forEach(function (c) { tr.appendChild(td(fmt(u[c[0]] || 0), k + ":" + c[0], "n")); });
    tr.appendChild(td("cost_usd" in u ? usd(u.cost_usd) : "\u2013", k + ":cost", "n"));
    body.appendChild(tr);
  }
  U.providers.forEach(function (p) {
    row(p.label, p.model, p.status, p, "llm:" + p.label, false);
    p.keys.forEach(function (kk) { row(kk.name, "", kk.status, kk, "llm:" + p.label + ":" + kk.name, true); });
  });
  if (U.total) row("total", "", "", U.total, "llm:total", false);
  s.appendChild(add(t, body));
}

function counts(title, items, key) {
  var wrap = add(el("div"), el("h3", {style: null}, title));
  wrap.firstChild.style.fontSize = "13px";
  var t = add(el("table"), head([["value"], ["records", 1]]));
  var body = el("tbody");
  items.forEach(function (it) { add(body, add(el("tr"), td(it.value === null ? "(none)" : it.value),
    td(fmt(it.count), key + ":" + it.value, "n"))); });
  return add(wrap, add(t, body));
}
function stats(S) {
  var s = section("stats", "What the file holds", S.note);
  var grid = el("div");
  grid.style.display = "grid";
  grid.style.gridTemplateColumns = "repeat(auto-fit, minmax(260px, 1fr))";
  grid.style.gap = "12px";
  [["namespaces", "ns"], ["dims", "dims"], ["models", "model"], ["source_stores", "store"], ["modalities", "modality"]]
    .forEach(function (p) {
      if (S[p[0]] && S[p[0]].length) grid.appendChild(counts(p[0].replace("_", " "), S[p[0]], p[1]));
    });
  s.appendChild(grid);
  if (S.metadata && S.metadata.length) {
    s.appendChild(el("h3", null, "Metadata keys"));
    var t = add(el("table"), head([["key"], ["types"], ["records", 1], ["fill rate", 1], [""]]));
    var body = el("tbody");
    S.metadata.forEach(function (m) {
      var types = Object.keys(m.types).map(function (k) { return k + " " + fmt(m.types[k]); }).join(", ");
      var bar = add(el("div", {"class": "bar"}), el("i", {"class": "ok"}));
      bar.firstChild.style.width = (100 * m.fill_rate) + "%";
      var bc = el("td"); bc.style.width = "24%"; bc.appendChild(bar);
      add(body, add(el("tr"), td(m.key), td(types), td(fmt(m.count), "meta:" + m.key + ":count", "n"),
        td((100 * m.fill_rate).toFixed(1) + "%", "meta:" + m.key + ":fill", "n"), bc));
    });
    s.appendChild(add(t, body));
  }
}

function memmap(M) {
  var s = section("map", "Map of the memories", M.note);
  if (!M.x || !M.x.length) return;
  var shown = M.namespaces.map(function () { return true; });
  var legend = el("div", {"class": "legend"});
  var W = 1200, H = 640, P = 14;
  var box = el("div", {"class": "mapbox"});
  var g = sv("svg", {viewBox: "0 0 " + W + " " + H, "class": "chart", id: "map-svg",
    "data-points": String(M.x.length)});
  g.appendChild(sv("rect", {x: 0, y: 0, width: W, height: H, fill: "#fbfcfd"}));
  var tip = el("div", {id: "tip"});
  var circles = [];
  var pinned = -1;
  function show(i, evt) {
    tip.textContent = "";
    add(tip, el("div", {"class": "ns"}, M.namespaces[M.n[i]] === "" ? "(no namespace)" : M.namespaces[M.n[i]]),
      el("div", {"class": "id"}, M.id[i]), el("div", {"class": "tx"}, M.t[i] === null ? "(no text)" : M.t[i]));
    tip.setAttribute("data-point", String(i));
    var r = g.getBoundingClientRect(), bx = box.getBoundingClientRect();
    var px = evt ? evt.clientX - bx.left : (P + (W - 2 * P) * M.x[i] / 1000) * r.width / W;
    var py = evt ? evt.clientY - bx.top : (P + (H - 2 * P) * (1 - M.y[i] / 1000)) * r.height / H;
    tip.style.left = Math.min(px + 12, Math.max(0, r.width - 430)) + "px";
    tip.style.top = (py + 12) + "px";
    tip.style.display = "block";
  }
  function hide() { if (pinned < 0) tip.style.display = "none"; }
  function pin(i) {
    if (pinned >= 0) circles[pinned].setAttribute("class", "");
    pinned = i;
    if (i >= 0) { circles[i].setAttribute("class", "pinned"); show(i, null); } else { tip.style.display = "none"; }
  }
  for (var i = 0; i < M.x.length; i++) {
    var c = sv("circle", {cx: (P + (W - 2 * P) * M.x[i] / 1000).toFixed(1),
      cy: (P + (H - 2 * P) * (1 - M.y[i] / 1000)).toFixed(1), r: 3.2,
      fill: PALETTE[M.n[i] % PALETTE.length], "data-i": String(i)});
    c.addEventListener("mousemove", (function (j) { return function (e) { if (pinned < 0) show(j, e); }; })(i));
    c.addEventListener("mouseleave", hide);
    c.addEventListener("click", (function (j) { return function () { pin(pinned === j ? -1 : j); }; })(i));
    circles.push(c);
    g.appendChild(c);
  }
  M.namespaces.forEach(function (name, k) {
    var b = add(el("button", {type: "button", "data-k": "map-ns:" + name}),
      el("span", {"class": "sw"}),
      document.createTextNode((name === "" ? "(no namespace)" : name) + " " + fmt(M.counts[k])));
    b.firstChild.style.background = PALETTE[k % PALETTE.length];
    b.addEventListener("click", function () {
      shown[k] = !shown[k];
      b.setAttribute("class", shown[k] ? "" : "off");
      circles.forEach(function (c, j) { if (M.n[j] === k) c.style.display = shown[k] ? "" : "none"; });
    });
    legend.appendChild(b);
  });
  s.appendChild(legend);
  add(box, g, tip);
  s.appendChild(box);
  var m = /^#pt=(\d+)$/.exec(location.hash || "");
  if (m && +m[1] < circles.length) pin(+m[1]);
}

function render(D) {
  header(D);
  if (D.stages) funnel(D.stages, D.notes && D.notes.stages);
  if (D.throughput) throughput(D.throughput);
  if (D.rejects) rejects(D.rejects);
  if (D.llm) llm(D.llm);
  if (D.stats) stats(D.stats);
  if (D.map) memmap(D.map);
  var f = document.getElementById("footer");
  f.textContent = "vexrun " + D.version + " \u00b7 written " + D.generated;
}

try {
  render(JSON.parse(document.getElementById("vexrun-data").textContent));
  document.body.setAttribute("data-rendered", "1");
} catch (err) {
  document.body.setAttribute("data-rendered", "error");
  document.getElementById("errors").textContent = "This page could not be drawn: " + err;
}
})();
"""
