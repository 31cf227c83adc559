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


# sigma.js (WebGL) and graphology, vendored from the npm registry with their licences
# (vendor/README.md): the page is one file that works offline.
VENDOR = Path(__file__).with_name("vendor")
VENDORED = ("graphology.umd.min.js", "sigma.min.js")
def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


EDGE_COLORS = {kind: _rgba(color, alpha) for kind, (color, alpha, _) in EDGE_STYLE.items()}


def _vendored_script(name: str) -> str:
    code = (VENDOR / name).read_text(encoding="utf-8")
    return "\n".join(line for line in code.splitlines() if not line.startswith("//# sourceMappingURL"))


def render_html(g: nx.DiGraph, title: str = "superposim feature graph") -> str:
    """One HTML file with everything inline, drawn by sigma.js in WebGL (pans and zooms at 10,000
    nodes and 50,000 edges): search by label, filter edges by kind and |weight|, click a feature
    to highlight every path through it and list its strongest edges; click the background to clear."""
    pos = layout(g)
    ids = {node: k for k, node in enumerate(g.nodes)}
    nodes = [[node, str(d.get("label", node)), pos[node][0], pos[node][1], d["kind"], d.get("gate", ""),
              d.get("value")] for node, d in g.nodes(data=True)]
    edges = [[ids[u], ids[v], d["weight"], d["kind"], d.get("attribution")] for u, v, d in g.edges(data=True)]
    data = json.dumps({"nodes": nodes, "edges": edges, "gateColors": GATE_COLORS,
                       "edgeColors": EDGE_COLORS}).replace("</", "<\\/")
    gates = " ".join(f'<span style="color:{c}">&#9679; {k}</span>' for k, c in GATE_COLORS.items() if k)
    licences = "\n".join(f"{name}:\n" + (VENDOR / name).read_text(encoding="utf-8")
                         for name in ("LICENSE-sigma.txt", "LICENSE-graphology.txt"))
    scripts = "\n".join(f"<script>\n{_vendored_script(name)}\n</script>" for name in VENDORED)
    page = _PAGE.replace("__TITLE__", html.escape(title)).replace("__GATES__", gates)
    return (page.replace("__LICENCES__", html.escape(licences).replace("--", "- -"))
            .replace("__SCRIPTS__", scripts).replace("__DATA__", data))


def write_html(g: nx.DiGraph, path: str | Path, title: str = "superposim feature graph") -> Path:
    path = Path(path)
    write_atomic(path, render_html(g, title).encode())
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<!-- vendored libraries, their licences:
__LICENCES__
-->
<style>
 body { font: 13px system-ui, sans-serif; margin: 0; background: #fff; color: #222; overflow: hidden; }
 header { padding: 6px 12px; border-bottom: 1px solid #ddd; }
 header label { margin-right: 8px; white-space: nowrap; }
 #graph { position: absolute; top: 74px; left: 0; right: 300px; bottom: 0; }
 #panel { position: absolute; top: 74px; right: 0; width: 290px; bottom: 0; overflow: auto; padding: 6px 8px;
          border-left: 1px solid #ddd; font-size: 12px; }
 #panel table { border-collapse: collapse; width: 100%; }
 #panel td { padding: 1px 3px; border-bottom: 1px solid #f0f0f0; }
 #legend { color: #555; font-size: 12px; margin-top: 3px; }
 .swatch { display: inline-block; width: 22px; height: 3px; vertical-align: middle; margin: 0 3px 0 8px; }
</style></head>
<body>
<header><b>__TITLE__</b> &nbsp;
 <input id="find" placeholder="find a feature (label), Enter selects" size="30">
 <label><input type="checkbox" class="kind" value="intended" checked> intended</label>
 <label><input type="checkbox" class="kind" value="crosstalk" checked> crosstalk</label>
 <label><input type="checkbox" class="kind" value="interference" checked> interference</label>
 <label>|weight| &ge; <input id="minw" type="range" min="0" max="1000" value="0" style="width:120px">
 <span id="minw-value">0</span></label>
 <span id="status"></span>
 <div id="legend"><span class="swatch" style="background:#17324d"></span>intended wiring
 <span class="swatch" style="background:#d62728"></span>crosstalk
 <span class="swatch" style="background:#aaaaaa"></span>folded crosstalk from a layer's interference node (red square);
 small black dots: neurons; features coloured by gate: __GATES__; scroll to zoom, drag to pan</div></header>
<div id="graph"></div>
<div id="panel">Click a feature to highlight every path through it.</div>
__SCRIPTS__
<script>
const DATA = __DATA__;
const status = document.getElementById("status"), panel = document.getElementById("panel");
const graph = new graphology.Graph({type: "directed", multi: false, allowSelfLoops: false});
const n = DATA.nodes.length, big = n > 2000;
const layers = [...new Set(DATA.nodes.map(d => d[2]))].sort((a, b) => a - b);
const span = Math.max(1, layers[layers.length - 1] - layers[0]);
const maxW = Math.max(1e-12, ...DATA.edges.map(e => Math.abs(e[2])));
DATA.nodes.forEach(([id, label, x, y, kind, gate, value]) => {
  graph.addNode(id, {label, kind, gate, value, x: x / span * 2, y: y,
    size: kind === "neuron" ? 1.5 : (kind === "interference" ? 4 : (big ? 2.5 : 5)),
    color: kind === "neuron" ? "#111111"
      : (kind === "interference" ? "#d62728" : (DATA.gateColors[gate] || "#333333"))});
});
const ids = DATA.nodes.map(d => d[0]);
DATA.edges.forEach(([s, t, w, kind, a], k) => {
  graph.addEdgeWithKey(String(k), ids[s], ids[t], {weight: w, kind, attribution: a,
    size: 0.3 + 2.2 * Math.abs(w) / maxW, color: DATA.edgeColors[kind] || "#aaaaaa"});
});
const state = {kinds: new Set(["intended", "crosstalk", "interference"]), minWeight: 0,
               selected: null, nodes: null, edges: null, found: new Set()};
function visible(edge, attrs) {
  return state.kinds.has(attrs.kind) && Math.abs(attrs.weight) >= state.minWeight;
}
const renderer = new Sigma(graph, document.getElementById("graph"), {
  labelRenderedSizeThreshold: big ? 6 : 3, zIndex: true, hideEdgesOnMove: big,
  nodeReducer: (node, attrs) => {
    const out = {...attrs};
    if (state.nodes && !state.nodes.has(node)) { out.color = "#e6e6e6"; out.label = ""; out.zIndex = 0; }
    else if (state.nodes) { out.zIndex = 1; out.forceLabel = state.nodes.size < 60; }
    if (node === state.selected || state.found.has(node)) {
      out.highlighted = true; out.forceLabel = true; out.zIndex = 2;
    }
    return out;
  },
  edgeReducer: (edge, attrs) => {
    if (!visible(edge, attrs)) return {...attrs, hidden: true};
    if (state.edges && !state.edges.has(edge)) return {...attrs, hidden: true};
    if (state.edges) return {...attrs, size: attrs.size + 1, zIndex: 1};
    return attrs;
  },
});
function reach(start, forward) {  // every node and visible edge on a path from start
  const seenN = new Set([start]), seenE = new Set(), stack = [start];
  while (stack.length) {
    const node = stack.pop();
    const each = forward ? graph.forEachOutEdge.bind(graph) : graph.forEachInEdge.bind(graph);
    each(node, (edge, attrs, source, target) => {
      if (!visible(edge, attrs)) return;
      seenE.add(edge); const next = forward ? target : source;
      if (!seenN.has(next)) { seenN.add(next); stack.push(next); }
    });
  }
  return [seenN, seenE];
}
function fmt(v) { return v === null || v === undefined ? "" : Number(v).toPrecision(4); }
function select(node) {
  const [upN, upE] = reach(node, false), [dnN, dnE] = reach(node, true);
  state.selected = node; state.nodes = new Set([...upN, ...dnN]); state.edges = new Set([...upE, ...dnE]);
  const a = graph.getNodeAttributes(node);
  status.textContent = a.label + ": " + state.edges.size + " edges on its paths";
  const rows = [];
  graph.forEachInEdge(node, (e, ea, s) => rows.push(["in", graph.getNodeAttribute(s, "label"), ea]));
  graph.forEachOutEdge(node, (e, ea, s, t) => rows.push(["out", graph.getNodeAttribute(t, "label"), ea]));
  rows.sort((p, q) => Math.abs(q[2].weight) - Math.abs(p[2].weight));
  panel.innerHTML = "";
  const head = document.createElement("div");
  head.innerHTML = "<b></b><br>";
  head.querySelector("b").textContent = a.label
    + (a.value === null || a.value === undefined ? "" : " = " + fmt(a.value))
    + " (" + a.kind + (a.gate ? ", " + a.gate : "") + ")";
  panel.appendChild(head);
  const table = document.createElement("table");
  rows.slice(0, 40).forEach(([dir, other, ea]) => {
    const tr = table.insertRow();
    [dir, other, fmt(ea.weight), ea.kind, fmt(ea.attribution)].forEach(text => { tr.insertCell().textContent = text; });
  });
  panel.appendChild(table);
  renderer.refresh();
}
function clear() {
  state.selected = null; state.nodes = null; state.edges = null;
  panel.textContent = "Click a feature to highlight every path through it.";
  status.textContent = n + " nodes, " + DATA.edges.length + " edges"; renderer.refresh();
}
renderer.on("clickNode", ({node}) => select(node));
renderer.on("clickStage", clear);
document.querySelectorAll("input.kind").forEach(box => box.addEventListener("change", () => {
  if (box.checked) state.kinds.add(box.value); else state.kinds.delete(box.value);
  if (state.selected) select(state.selected); else renderer.refresh();
}));
const minw = document.getElementById("minw");
minw.addEventListener("input", () => {
  state.minWeight = maxW * Math.pow(Number(minw.value) / 1000, 2);
  document.getElementById("minw-value").textContent = fmt(state.minWeight);
  if (state.selected) select(state.selected); else renderer.refresh();
});
const find = document.getElementById("find");
function matches() {
  const q = find.value.trim().toLowerCase(); if (!q) return [];
  return graph.filterNodes((node, a) => a.kind === "feature" && String(a.label).toLowerCase().includes(q));
}
find.addEventListener("input", () => {
  const hits = matches(); state.found = new Set(hits.length <= 200 ? hits : []);
  status.textContent = find.value.trim() ? hits.length + " features match" : ""; renderer.refresh();
});
find.addEventListener("keydown", ev => {
  if (ev.key !== "Enter") return;
  const hits = matches(); if (!hits.length) { status.textContent = "no feature matches"; return; }
  const query = find.value.trim().toLowerCase();
  const exact = hits.find(h => String(graph.getNodeAttribute(h, "label")).toLowerCase() === query);
  const node = exact || hits[0]; select(node);
  const d = renderer.getNodeDisplayData(node);
  renderer.getCamera().animate({x: d.x, y: d.y, ratio: Math.min(renderer.getCamera().ratio, 0.5)}, {duration: 300});
});
clear();
window.superposimGraph = {graph, renderer, select, clear};  // for scripts and tests
</script></body></html>
"""
