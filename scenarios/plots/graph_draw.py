"""Drawing feature graphs: a layered PNG (matplotlib) and a self-contained interactive page."""

from __future__ import annotations

import html
import json
from pathlib import Path

import networkx as nx
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from layers.files import write_atomic

GATE_COLORS = {"INPUT": "#7f7f7f", "AND": "#1f77b4", "OR": "#ff7f0e", "BUF": "#2ca02c", "NOT": "#9467bd", "": "#333333"}
EDGE_STYLE = {  # colour, alpha, width
    "intended": ("#17324d", 0.9, 1.6),
    "crosstalk": ("#d62728", 0.35, 0.7),
    "interference": ("#aaaaaa", 0.6, 0.8),
}


def strongest_paths(g: nx.DiGraph, budget: int, per_node: int = 2) -> nx.DiGraph:
    """The strongest paths into the strongest outputs, in at most about ``budget`` nodes: outputs
    (last-layer features) ranked by their total incoming |attribution| (|weight| without an
    input), then, walking back, each kept node's ``per_node`` strongest incoming edges."""
    def score(d: dict) -> float:
        a = d.get("attribution")
        return abs(a if a is not None else d["weight"])

    last = max(d["layer"] for _, d in g.nodes(data=True))
    outputs = sorted((n for n, d in g.nodes(data=True) if d["layer"] == last and d["kind"] == "feature"),
                     key=lambda n: -sum(score(d) for *_, d in g.in_edges(n, data=True)))
    kept = nx.DiGraph(**g.graph)
    for out in outputs:
        if kept.number_of_nodes() >= budget:
            break
        stack = [out]
        kept.add_node(out, **g.nodes[out])
        while stack:
            node = stack.pop()
            best = sorted(g.in_edges(node, data=True), key=lambda e: -score(e[2]))[:per_node]
            for u, v, d in best:
                if u not in kept:
                    kept.add_node(u, **g.nodes[u])
                    stack.append(u)
                kept.add_edge(u, v, **d)
    return kept


def layout(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """x = layer (neurons half-way between streams), y = rank within the layer, top to bottom;
    each layer's interference node sits above it."""
    by_layer: dict[float, list] = {}
    for node, d in g.nodes(data=True):
        if d["kind"] != "interference":
            by_layer.setdefault(d["layer"], []).append((d.get("index", 0), node))
    pos = {}
    for x, members in by_layer.items():
        members.sort()
        for rank, (_, node) in enumerate(members):
            pos[node] = (float(x), 1.0 - (rank + 0.5) / len(members))
    for node, d in g.nodes(data=True):
        if d["kind"] == "interference":
            pos[node] = (float(d["layer"]) - 0.25, 1.06)
    return pos


def draw_png(g: nx.DiGraph, path: str | Path, title: str = "") -> Path:
    pos = layout(g)
    layers = sorted({d["layer"] for _, d in g.nodes(data=True)})
    per_layer = max(sum(1 for _, d in g.nodes(data=True) if d["layer"] == x) for x in layers)
    fig = Figure(figsize=(max(6.0, 2.2 * len(layers)), min(14.0, max(4.5, 0.28 * per_layer))))
    ax = fig.add_subplot()
    top = max((abs(d["weight"]) for *_, d in g.edges(data=True)), default=1.0) or 1.0
    thin = max(0.12, min(1.0, 24 / per_layer))  # big layers: thinner, lighter lines
    for kind in ("interference", "crosstalk", "intended"):
        edges = [(u, v, d) for u, v, d in g.edges(data=True) if d["kind"] == kind]
        if not edges:
            continue
        color, alpha, width = EDGE_STYLE[kind]
        segs = [(pos[u], pos[v]) for u, v, _ in edges]
        widths = [thin * width * (0.3 + abs(d["weight"]) / top) for *_, d in edges]
        ax.add_collection(LineCollection(segs, colors=color, alpha=alpha * max(thin, 0.3), linewidths=widths,
                                         linestyles="dashed" if kind == "crosstalk" else "solid",
                                         label=kind, zorder=1 if kind != "intended" else 2))
    for kind, marker, size in (("feature", "o", 60), ("neuron", ".", 18), ("interference", "s", 50)):
        nodes = [(n, d) for n, d in g.nodes(data=True) if d["kind"] == kind]
        if nodes:
            ax.scatter([pos[n][0] for n, _ in nodes], [pos[n][1] for n, _ in nodes], s=size, marker=marker,
                       c=[GATE_COLORS.get(d.get("gate", ""), "#333") if kind == "feature" else
                          ("#d62728" if kind == "interference" else "#111") for _, d in nodes],
                       zorder=3, edgecolors="white", linewidths=0.5)
    if per_layer <= 24:
        for n, d in g.nodes(data=True):
            if d["kind"] == "feature":
                ax.annotate(d.get("label", n), pos[n], xytext=(5, 3), textcoords="offset points", fontsize=7)
    for gate, color in GATE_COLORS.items():
        if gate and any(d.get("gate") == gate for _, d in g.nodes(data=True)):
            ax.scatter([], [], c=color, s=40, label=gate)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_xticks([x for x in layers if float(x).is_integer()])
    ax.set_xlabel("layer")
    ax.set_yticks([])
    ax.set_xlim(min(layers) - 0.4, max(layers) + 0.4)
    ax.set_ylim(-0.03, 1.12)
    ax.set_title(title or "feature graph: intended wiring (solid) and crosstalk (dashed red)", fontsize=10)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png"))


def render_html(g: nx.DiGraph, title: str = "superposim feature graph") -> str:
    """One HTML file with everything inline: click a feature to highlight every path through it,
    hover an edge or node to read its weight or value; click the background to clear."""
    pos = layout(g)
    ids = {node: k for k, node in enumerate(g.nodes)}
    nodes = [{"id": node, "x": pos[node][0], "y": pos[node][1], "label": d.get("label", node),
              "kind": d["kind"], "gate": d.get("gate", ""), "value": d.get("value")}
             for node, d in g.nodes(data=True)]
    edges = [{"s": ids[u], "t": ids[v], "w": d["weight"], "kind": d["kind"], "a": d.get("attribution")}
             for u, v, d in g.edges(data=True)]
    data = json.dumps({"nodes": nodes, "edges": edges, "colors": GATE_COLORS}).replace("</", "<\\/")
    gates = " ".join(f'<span style="color:{c}">&#9679; {k}</span>' for k, c in GATE_COLORS.items() if k)
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__GATES__", gates).replace("__DATA__", data)


def write_html(g: nx.DiGraph, path: str | Path, title: str = "superposim feature graph") -> Path:
    path = Path(path)
    write_atomic(path, render_html(g, title).encode())
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
 body { font: 13px system-ui, sans-serif; margin: 0; background: #fff; color: #222; }
 header { padding: 8px 14px; border-bottom: 1px solid #ddd; }
 svg#graph { display: block; width: 100vw; height: calc(100vh - 64px); }
 #legend { display: block; margin-top: 4px; color: #555; font-size: 12px; }
 #legend svg { vertical-align: middle; }
 line.intended { stroke: #17324d; stroke-opacity: .85; }
 line.crosstalk { stroke: #d62728; stroke-opacity: .35; stroke-dasharray: 4 3; }
 line.interference { stroke: #999; stroke-opacity: .6; }
 circle.node, rect.node { stroke: #fff; stroke-width: 1; cursor: pointer; }
 .dim { opacity: .08; }
 line.hl { stroke-opacity: 1; stroke-width: 3px; }
 .node.hl { stroke: #000; stroke-width: 2; }
 .node.selected { stroke: #f0c000; stroke-width: 3; }
 .node.found { stroke: #f0c000; stroke-width: 2.5; }
 text { font-size: 10px; pointer-events: none; fill: #333; }
 #tip { position: fixed; pointer-events: none; background: #222; color: #fff; padding: 3px 6px;
        border-radius: 3px; font-size: 12px; display: none; }
</style></head>
<body>
<header><b>__TITLE__</b> &nbsp; click a feature to highlight its paths, hover for weights;
 <input id="find" placeholder="find a feature (label), Enter selects" size="28">
 <span id="status"></span>
 <span id="legend"><svg width="30" height="10"><line x1="0" y1="5" x2="30" y2="5" class="intended"
 stroke-width="2"/></svg>
 intended <svg width="30" height="10"><line x1="0" y1="5" x2="30" y2="5" class="crosstalk" stroke-width="2"/></svg>
 crosstalk <svg width="30" height="10"><line x1="0" y1="5" x2="30" y2="5" class="interference" stroke-width="2"/></svg>
 folded crosstalk <svg width="10" height="10"><rect width="10" height="10" fill="#d62728"/></svg>
 interference node (pruned crosstalk into a layer) <svg width="10" height="10"><circle cx="5" cy="5" r="2.5"
 fill="#111"/></svg> neuron; features coloured by gate: __GATES__</span></header>
<svg id="graph" xmlns="http://www.w3.org/2000/svg"></svg>
<div id="tip"></div>
<script>
const DATA = __DATA__;
const NS = "http://www.w3.org/2000/svg";
const svg = document.getElementById("graph"), tip = document.getElementById("tip");
const status = document.getElementById("status");
const W = svg.clientWidth || 1200, H = svg.clientHeight || 700, pad = 40;
const xs = DATA.nodes.map(n => n.x), x0 = Math.min(...xs), x1 = Math.max(...xs);
const sx = x => pad + (x - x0) / Math.max(x1 - x0, 1e-9) * (W - 2 * pad - 70);
const sy = y => pad + (1.12 - y) / 1.15 * (H - 2 * pad);
const maxW = Math.max(1e-12, ...DATA.edges.map(e => Math.abs(e.w)));
const out = DATA.nodes.map(() => []), inc = DATA.nodes.map(() => []);
const edgeEls = [], nodeEls = [];
function show(ev, text) { tip.style.display = "block"; tip.textContent = text;
  tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px"; }
function hide() { tip.style.display = "none"; }
DATA.edges.forEach((e, k) => {
  const a = DATA.nodes[e.s], b = DATA.nodes[e.t], el = document.createElementNS(NS, "line");
  el.setAttribute("x1", sx(a.x)); el.setAttribute("y1", sy(a.y));
  el.setAttribute("x2", sx(b.x)); el.setAttribute("y2", sy(b.y));
  el.setAttribute("class", "edge " + e.kind);
  el.setAttribute("stroke-width", (0.4 + 2.2 * Math.abs(e.w) / maxW).toFixed(2));
  const text = a.label + " \\u2192 " + b.label + ": weight " + e.w.toPrecision(4) + " (" + e.kind + ")"
    + (e.a === null || e.a === undefined ? "" : ", attribution " + e.a.toPrecision(4));
  el.addEventListener("mousemove", ev => show(ev, text)); el.addEventListener("mouseleave", hide);
  svg.appendChild(el); edgeEls.push(el); out[e.s].push(k); inc[e.t].push(k);
});
DATA.nodes.forEach((n, k) => {
  let el;
  if (n.kind === "interference") { el = document.createElementNS(NS, "rect");
    el.setAttribute("x", sx(n.x) - 5); el.setAttribute("y", sy(n.y) - 5);
    el.setAttribute("width", 10); el.setAttribute("height", 10); el.setAttribute("fill", "#d62728"); }
  else { el = document.createElementNS(NS, "circle");
    el.setAttribute("cx", sx(n.x)); el.setAttribute("cy", sy(n.y));
    el.setAttribute("r", n.kind === "neuron" ? 2.5 : 5.5);
    el.setAttribute("fill", n.kind === "neuron" ? "#111" : (DATA.colors[n.gate] || "#333")); }
  el.setAttribute("class", "node " + n.kind); el.dataset.id = n.id;
  const text = n.label + (n.value === null || n.value === undefined ? "" : " = " + n.value);
  el.addEventListener("mousemove", ev => show(ev, text)); el.addEventListener("mouseleave", hide);
  el.addEventListener("click", ev => { ev.stopPropagation(); select(k); });
  svg.appendChild(el); nodeEls.push(el);
  if (DATA.nodes.length <= 160 && n.kind === "feature") {
    const t = document.createElementNS(NS, "text"); t.setAttribute("x", sx(n.x) + 7);
    t.setAttribute("y", sy(n.y) - 6); t.textContent = n.label; svg.appendChild(t); }
});
function reach(start, adj, end) {  // every edge on a path from start, following adj
  const seenN = new Set([start]), seenE = new Set(), stack = [start];
  while (stack.length) { const k = stack.pop();
    for (const e of adj[k]) { seenE.add(e); const m = DATA.edges[e][end];
      if (!seenN.has(m)) { seenN.add(m); stack.push(m); } } }
  return [seenN, seenE];
}
function select(k) {
  const [upN, upE] = reach(k, inc, "s"), [dnN, dnE] = reach(k, out, "t");
  const nodes = new Set([...upN, ...dnN]), edges = new Set([...upE, ...dnE]);
  edgeEls.forEach((el, e) => { el.classList.toggle("hl", edges.has(e)); el.classList.toggle("dim", !edges.has(e)); });
  nodeEls.forEach((el, n) => { el.classList.toggle("hl", nodes.has(n)); el.classList.toggle("dim", !nodes.has(n));
    el.classList.toggle("selected", n === k); });
  status.textContent = DATA.nodes[k].label + ": " + edges.size + " edges on its paths";
}
svg.addEventListener("click", () => {
  edgeEls.concat(nodeEls).forEach(el => el.classList.remove("hl", "dim", "selected"));
  status.textContent = ""; });
status.textContent = DATA.nodes.length + " nodes, " + DATA.edges.length + " edges";
const find = document.getElementById("find");
function matches() { const q = find.value.trim().toLowerCase();
  return q ? DATA.nodes.map((n, k) => [n, k]).filter(([n]) => n.kind === "feature"
    && String(n.label).toLowerCase().includes(q)).map(([, k]) => k) : []; }
find.addEventListener("input", () => { const hits = matches();
  nodeEls.forEach((el, k) => el.classList.toggle("found", hits.includes(k)));
  status.textContent = find.value.trim() ? hits.length + " features match" : ""; });
find.addEventListener("keydown", ev => { if (ev.key === "Enter") { const hits = matches();
  if (hits.length) select(hits[0]); else status.textContent = "no feature matches"; } });
</script></body></html>
"""
