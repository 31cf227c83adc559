"""Feature graphs on disk: GraphML, GEXF and node-link JSON, written atomically, loaded with
checks (a file that is not a superposim graph is refused with one clear message)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import networkx as nx

from circuits.graph import GRAPH_SCHEMA
from circuits.graph_circuit_tracer import is_circuit_tracer
from layers.errors import SuperposimError
from layers.files import write_atomic

FORMATS = ("graphml", "gexf", "json")
NODE_KINDS = ("feature", "neuron", "interference")
EDGE_KINDS = ("intended", "crosstalk", "interference")


class GraphFileError(SuperposimError, ValueError):
    """A graph file that cannot be read as a superposim graph."""


def save_graph(g: nx.DiGraph, path: str | Path, fmt: str) -> Path:
    """Write ``g`` as ``fmt`` (graphml, gexf or json)."""
    path = Path(path)
    if fmt == "json":
        data = {"superposim_graph": GRAPH_SCHEMA, "graph": nx.node_link_data(g, edges="edges")}
        payload = json.dumps(data).encode()
    elif fmt in ("graphml", "gexf"):
        buf = io.BytesIO()
        (nx.write_graphml if fmt == "graphml" else nx.write_gexf)(g, buf)
        payload = buf.getvalue()
    else:
        raise ValueError(f"unknown graph format {fmt!r}; valid: {', '.join(FORMATS)}")
    write_atomic(path, payload)
    return path


def load_graph(path: str | Path) -> nx.DiGraph:
    """Read a graph saved by ``save_graph``; anything else raises GraphFileError."""
    path = Path(path)
    if not path.is_file():
        raise GraphFileError(f"{str(path)!r} does not exist")
    suffix = path.suffix.lower().lstrip(".")
    try:
        if suffix == "json":
            data = json.loads(path.read_text())
            if is_circuit_tracer(data):
                raise GraphFileError(f"{str(path)!r} is a circuit-tracer graph, written for its viewer; --load reads "
                                     "superposim's own json, graphml or gexf")
            if not isinstance(data, dict) or data.get("superposim_graph") != GRAPH_SCHEMA:
                raise GraphFileError(f"{str(path)!r} is not a superposim graph (schema {GRAPH_SCHEMA})")
            g = nx.node_link_graph(data["graph"], directed=True, edges="edges")
        elif suffix in ("graphml", "gexf"):
            g = (nx.read_graphml if suffix == "graphml" else nx.read_gexf)(path)
        else:
            raise GraphFileError(f"{str(path)!r}: unknown graph format {suffix!r}; valid: {', '.join(FORMATS)}")
    except GraphFileError:
        raise
    except Exception as err:  # a corrupt file of any kind: one clear line, never a traceback
        raise GraphFileError(f"{str(path)!r} could not be read as {suffix}: {type(err).__name__}: {err}") from None
    _check(g, path)
    return nx.DiGraph(g)


# A graph's layers are 0..L (features) and t + 1/2 (neurons); more than this is no graph we wrote.
MAX_LAYER = 10_000


def _number(value: object, what: str, path: Path) -> float:
    """A finite number from a file field (numbers, or text that reads as one)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise GraphFileError(f"{str(path)!r} is not a superposim graph: {what} is {value!r}, not a number")
    try:
        number = float(value)
    except ValueError:
        raise GraphFileError(f"{str(path)!r} is not a superposim graph: {what} is {value!r}, not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise GraphFileError(f"{str(path)!r} is not a superposim graph: {what} is {value!r}, not a finite number")
    return number


def _check(g: nx.Graph, path: Path) -> None:
    """Every field the graph layer reads, typed and in range; one line naming the first bad one."""
    if g.number_of_nodes() == 0:
        raise GraphFileError(f"{str(path)!r} holds no nodes")
    for node, data in g.nodes(data=True):
        if data.get("kind") not in NODE_KINDS or "layer" not in data:
            raise GraphFileError(f"{str(path)!r} is not a superposim graph: node {node!r} has no layer/kind")
        layer = _number(data["layer"], f"the layer of node {node!r}", path)
        if not (0 <= layer <= MAX_LAYER and (2 * layer).is_integer()):
            raise GraphFileError(f"{str(path)!r} is not a superposim graph: node {node!r} has layer {data['layer']!r} "
                                 f"(layers are 0..{MAX_LAYER}, neurons at half layers)")
        data["layer"] = int(layer) if layer.is_integer() else layer
        index = _number(data.get("index", 0), f"the index of node {node!r}", path)
        if not index.is_integer() or abs(index) > 2**53:
            raise GraphFileError(f"{str(path)!r} is not a superposim graph: node {node!r} has index {data['index']!r}")
        data["index"] = int(index)
        for key in ("label", "gate"):
            if key in data and not isinstance(data[key], str):
                raise GraphFileError(f"{str(path)!r} is not a superposim graph: the {key} of node {node!r} is "
                                     f"{data[key]!r}, not text")
        if data.get("value") is not None:
            data["value"] = _number(data["value"], f"the value of node {node!r}", path)
    for u, v, data in g.edges(data=True):
        if data.get("kind") not in EDGE_KINDS or "weight" not in data:
            raise GraphFileError(f"{str(path)!r} is not a superposim graph: edge {u!r} -> {v!r} has no weight/kind")
        data["weight"] = _number(data["weight"], f"the weight of edge {u!r} -> {v!r}", path)
        if data.get("attribution") is not None:
            data["attribution"] = _number(data["attribution"], f"the attribution of edge {u!r} -> {v!r}", path)
