"""Feature graphs as circuit-tracer / Neuronpedia graph JSON (``metadata``, ``qParams``,
``nodes``, ``links``), the format attribution-graph tools of the field read.

The mapping: a circuit has one "token position" (``ctx_idx`` 0). Input features are embedding
nodes (layer ``"E"``), hidden features are transcoder-feature nodes of their layer, the last
layer's features are the targets (logit nodes), a layer's interference node (the crosstalk the
pruning folded away) is that layer's reconstruction-error node, and neurons (``--neurons``) are
feature nodes of their block. A link's weight is the edge's attribution when the graph was built
for an input, else its effective weight. ``influence`` is a node's share of the absolute
weight-path mass that reaches the targets: I(target) = 1, I(v) = sum over v's links |w| I(u),
scaled so the largest non-target is 1. ``clerp`` is the feature's label and gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx

from layers.files import write_atomic

# The version of what superposim writes into ``metadata.superposim`` (the file's own
# ``metadata.schema_version`` is circuit-tracer's, 1).
FORMAT_VERSION = 1


def _cantor(x: int, y: int) -> int:
    """circuit-tracer's unique integer for a (layer, feature) pair."""
    return (x + y) * (x + y + 1) // 2 + y


def _influence(g: nx.DiGraph, targets: set[str]) -> dict[str, float]:
    mass = {n: (1.0 if n in targets else 0.0) for n in g}
    for node in reversed(list(nx.topological_sort(g))):
        if node not in targets:
            mass[node] = sum(abs(_link_weight(d)) * mass[v] for _, v, d in g.out_edges(node, data=True))
    top = max((m for n, m in mass.items() if n not in targets), default=0.0) or 1.0
    return {n: (1.0 if n in targets else m / top) for n, m in mass.items()}


def _link_weight(d: dict) -> float:
    a = d.get("attribution")
    return float(a if a is not None else d["weight"])


def _node(name: str, d: dict, last: int, influence: float) -> dict[str, Any]:
    layer, index, kind = d["layer"], int(d.get("index", 0)), d["kind"]
    label = str(d.get("label", name))
    gate = str(d.get("gate", ""))
    if kind == "interference":
        layer_s, feature, ftype = str(int(layer) - 1), -1, "mlp reconstruction error"
        node_id = f"err_{layer_s}_0"  # circuit-tracer's own "0_<layer>_0" could collide with a feature
    elif kind == "neuron":
        layer_s, feature, ftype = str(int(layer)), _cantor(int(layer), index), "mlp neuron"
        node_id = f"n{layer_s}_{index}_0"
    elif layer == 0:
        layer_s, feature, ftype = "E", index, "embedding"
        node_id = f"E_{index}_0"
    elif layer == last:
        layer_s, feature, ftype = str(last), index, "logit"
        node_id = f"{last}_{index}_0"
    else:  # a hidden feature of stream t is written by block t - 1
        layer_s, feature, ftype = str(int(layer) - 1), _cantor(int(layer) - 1, index), "cross layer transcoder"
        node_id = f"{layer_s}_{index}_0"
    return {"node_id": node_id, "jsNodeId": node_id.rsplit("_", 1)[0] + "-0", "feature": feature,
            "layer": layer_s, "ctx_idx": 0, "feature_type": ftype, "is_target_logit": ftype == "logit",
            "token_prob": 0.0, "run_idx": 0, "reverse_ctx_idx": 0,
            "clerp": f"{label} ({gate})" if gate and gate != "INPUT" else label,
            "influence": influence, "activation": d.get("value"),
            "superposim_id": name}


def circuit_tracer_graph(g: nx.DiGraph, slug: str, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The graph as a circuit-tracer graph JSON object (a dict ready for json.dumps); ``run``
    (the scenario, seed and resolved parameters it was built from) goes into the metadata."""
    feature_layers = [d["layer"] for _, d in g.nodes(data=True) if d["kind"] == "feature"]
    last = int(max(feature_layers)) if feature_layers else 0
    targets = {n for n, d in g.nodes(data=True) if d["kind"] == "feature" and d["layer"] == last}
    influence = _influence(g, targets)
    nodes = {n: _node(n, d, last, influence[n]) for n, d in g.nodes(data=True)}
    links = [{"source": nodes[u]["node_id"], "target": nodes[v]["node_id"], "weight": _link_weight(d),
              "kind": d["kind"]} for u, v, d in g.edges(data=True)]
    active = str(g.graph.get("input", ""))
    prompt = f"active inputs {active}" if active else "no input: weights at each gate's decision boundary"
    return {
        "metadata": {
            "slug": slug, "scan": "superposim", "transcoder_list": [],
            "prompt_tokens": [f"x{i}" for i in active.split(",") if i], "prompt": prompt,
            "node_threshold": None, "schema_version": 1,
            "superposim": {"format_version": FORMAT_VERSION, "network": g.graph.get("network", ""),
                           "input": active, **(run or {})},
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": list(nodes.values()),
        "links": links,
    }


def write_circuit_tracer(g: nx.DiGraph, path: str | Path, slug: str, run: dict[str, Any] | None = None) -> Path:
    """Write ``g`` as circuit-tracer graph JSON, atomically."""
    return write_atomic(Path(path), json.dumps(circuit_tracer_graph(g, slug, run)).encode())


def is_circuit_tracer(data: object) -> bool:
    """Whether a parsed JSON object is a circuit-tracer graph (to refuse it by name on load)."""
    return isinstance(data, dict) and {"metadata", "nodes", "links"} <= data.keys()
