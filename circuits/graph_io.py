"""Feature graphs on disk: GraphML, GEXF and node-link JSON, written atomically, loaded with
checks (a file that is not a superposim graph is refused with one clear message)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import networkx as nx

from circuits.graph import GRAPH_SCHEMA
from layers.files import write_atomic

FORMATS = ("graphml", "gexf", "json")
NODE_KINDS = ("feature", "neuron", "interference")
EDGE_KINDS = ("intended", "crosstalk", "interference")


class GraphFileError(ValueError):
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


def _check(g: nx.Graph, path: Path) -> None:
    if g.number_of_nodes() == 0:
        raise GraphFileError(f"{str(path)!r} holds no nodes")
    for node, data in g.nodes(data=True):
        if data.get("kind") not in NODE_KINDS or "layer" not in data:
            raise GraphFileError(f"{str(path)!r} is not a superposim graph: node {node!r} has no layer/kind")
        data["layer"] = float(data["layer"])
        if data["layer"].is_integer():
            data["layer"] = int(data["layer"])
        data["index"] = int(data.get("index", 0))
    for u, v, data in g.edges(data=True):
        if data.get("kind") not in EDGE_KINDS or "weight" not in data:
            raise GraphFileError(f"{str(path)!r} is not a superposim graph: edge {u!r} -> {v!r} has no weight/kind")
        data["weight"] = float(data["weight"])
