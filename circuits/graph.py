"""FeatureGraph: the paths that carry each feature through a network's weights.

For block t (stream t -> stream t+1) the effective weight from feature i of layer t to feature j
of layer t+1 is

    E[j, i] = phi_{t+1, j} . W_write . diag(d) . W_read . phi_{t, i}

with phi the read-out directions and d the neurons' gates: by default each neuron's state when
its gate sits at its decision boundary (AND at k - 1/2 inputs, OR / BUF / NOT at 1/2: the
gate's slope where it decides, which neither cancels OR's two neurons nor vanishes on the
clean-up's flat parts), or, for a given input, the neurons' actual activation pattern; then
``attribution`` = E[j, i] * (exact value of i). Edges are ``intended`` where the circuit wires i
into j and ``crosstalk`` otherwise.

The graph is held as one dense (m_{t+1}, m_t) tensor per block while it is large; pruning keeps
every intended edge and the strongest crosstalk, folds the pruned crosstalk of each feature into
one edge from that layer's interference node, and only then builds the networkx DiGraph.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import networkx as nx
import torch

from circuits.compile import CompiledNetwork
from circuits.evaluate import evaluate
from layers import capture
from layers.errors import SuperposimError


class GraphQueryError(SuperposimError, ValueError):
    """A feature, input or query the graph does not have."""

GRAPH_SCHEMA = 1


def feature_id(layer: int, index: int) -> str:
    return f"L{layer}:{index}"


def neuron_id(block: int, index: int) -> str:
    return f"L{block}:n{index}"


def interference_id(layer: int) -> str:
    return f"L{layer}:interference"


@dataclass
class BlockEdges:
    """Everything the graph knows about one block, as tensors."""

    weight: torch.Tensor  # (m_{t+1}, m_t) effective weights
    intended: torch.Tensor  # (m_{t+1}, m_t) bool: wired by the circuit
    attribution: torch.Tensor | None  # weight * source value, for a given input
    neuron_in: torch.Tensor  # (h, m_t): feature i -> neuron k
    neuron_out: torch.Tensor  # (m_{t+1}, h): neuron k -> feature j, gated
    neuron_gate: torch.Tensor  # (h,): the gate each neuron computes

    @property
    def score(self) -> torch.Tensor:
        return (self.attribution if self.attribution is not None else self.weight).abs()


class FeatureGraph:
    """Per-block effective weights of a compiled network, with queries and pruning."""

    def __init__(self, net: CompiledNetwork, blocks: list[BlockEdges], values: list[torch.Tensor] | None,
                 active: list[int] | None) -> None:
        self.net, self.circuit, self.blocks = net, net.circuit, blocks
        self.values, self.active = values, active

    # ---- building -------------------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def build(cls, net: CompiledNetwork, active: list[int] | None = None) -> FeatureGraph:
        """The graph of ``net``; with ``active`` (indices of the on input features) its edges are
        gated by that input's activation pattern and carry attributions. The graph is built on
        the CPU (``net`` is moved there)."""
        circuit = net.circuit
        net = net.to("cpu")
        values, pres = None, None
        if active is not None:
            bad = [i for i in active if not 0 <= i < circuit.n_inputs]
            if bad:
                raise GraphQueryError(f"--input: input feature {bad[0]} is out of range 0..{circuit.n_inputs - 1}")
            x = torch.zeros(1, circuit.n_inputs)
            x[0, list(active)] = 1.0
            values = [v[0] for v in evaluate(circuit, x)]
            names = [f"blocks.{b}.hook_pre" for b in range(len(net.network.blocks))]
            with capture(net.network, names) as seen:
                net.network(x)
            pres = [seen[name][0] for name in names]
        blocks = []
        for t in range(circuit.depth):
            phi_out = net.directions(t + 1)
            ids = list(net.blocks_of_layer(t))
            carried = net.carrier(t).T  # (n, m_t): each feature's direction, carried through the blocks
            neuron_in: torch.Tensor | None = None
            neuron_out: torch.Tensor | None = None
            for b in ids:
                block = net.network.relu_blocks()[b]
                read = block.read.dense()  # (h, n_in)
                write = block.write.dense()  # (n_out, h)
                if pres is not None:
                    gate = torch.where(block.relu_mask, (pres[b] > 0).float(), torch.ones(block.hidden))
                elif net.boundary is not None and (given := net.boundary[b]) is not None:
                    gate = given  # per block: where its gates decide
                else:
                    gate = torch.ones(block.hidden)
                through = read @ carried  # (h, m_t)
                if len(ids) == 1:
                    neuron_in, neuron_out = through, (phi_out @ write) * gate
                nxt = write @ (gate[:, None] * through)
                carried = nxt + carried if block.residual else nxt  # the skip path carries stream t
            weight = phi_out @ carried
            if neuron_in is None or neuron_out is None:  # several blocks per layer: no single layer of neurons
                neuron_in, neuron_out = torch.zeros(0, weight.shape[1]), torch.zeros(weight.shape[0], 0)
            intended = torch.zeros(weight.shape, dtype=torch.bool)
            for j, g in enumerate(circuit.layers[t]):
                intended[j, list(g.inputs)] = True
            given_gates = net.neuron_gates[t] if net.neuron_gates is not None and len(ids) == 1 else None
            if given_gates is not None:
                neuron_gate = given_gates
            else:
                neuron_gate = torch.full((neuron_in.shape[0],), -1)
            attribution = weight * values[t][None, :] if values is not None else None
            blocks.append(BlockEdges(weight, intended, attribution, neuron_in, neuron_out, neuron_gate))
        return cls(net, blocks, values, list(active) if active is not None else None)

    # ---- queries ----------------------------------------------------------------------------
    def label(self, layer: int, index: int) -> str:
        if layer == 0:
            return f"x{index}"
        return f"{self.circuit.layers[layer - 1][index].kind}{layer}.{index}"

    def resolve(self, spec: str) -> tuple[int, int]:
        """A feature by ``L<t>:<i>``, ``<t>:<i>`` or its label (``x3``, ``AND2.5``)."""
        text = spec.strip()
        body = text[1:] if text[:1] in "Ll" else text
        if ":" in body:
            t_s, _, i_s = body.partition(":")
            if t_s.isdigit() and i_s.isdigit():
                t, i = int(t_s), int(i_s)
                if t <= self.circuit.depth and i < self.circuit.widths[t]:
                    return t, i
        for t, width in enumerate(self.circuit.widths):
            for i in range(width):
                if self.label(t, i).lower() == text.lower():
                    return t, i
        raise GraphQueryError(f"no feature {spec!r}; use L<layer>:<index> with layer 0..{self.circuit.depth} "
                              "or a label")

    def intended_share(self) -> list[torch.Tensor]:
        """Per block, for each output feature: the share of its incoming |weight| (|attribution|
        for a given input) carried by intended edges; NaN where nothing comes in."""
        out = []
        for b in self.blocks:
            total = b.score.sum(dim=1)
            share = (b.score * b.intended).sum(dim=1) / total
            out.append(torch.where(total > 0, share, torch.full_like(share, math.nan)))
        return out

    def intended_share_by_layer(self) -> list[float | None]:
        """Mean intended share of each layer's outputs (None where no output receives anything)."""
        means = []
        for share in self.intended_share():
            ok = share[~share.isnan()]
            means.append(float(ok.mean()) if ok.numel() else None)
        return means

    def top_paths(self, source: tuple[int, int], target: tuple[int, int], k: int = 5) -> list[dict]:
        """The k paths from ``source`` to ``target`` with the largest |product| of edge weights
        (attributions for a given input), exactly, by dynamic programming over the layers."""
        (t0, i0), (t1, j1) = source, target
        if t1 <= t0:
            raise GraphQueryError(f"paths run forward: {feature_id(t0, i0)} is not before {feature_id(t1, j1)}")
        mats = [(b.attribution if b.attribution is not None else b.weight) for b in self.blocks[t0:t1]]
        scores = torch.full((k, mats[0].shape[1]), -math.inf, dtype=torch.float64)
        scores[0, i0] = 0.0
        back = []
        for mat in mats:
            logw = mat.abs().double().log()  # -inf where there is no edge
            cand = scores[None, :, :] + logw[:, None, :]  # (m_next, k, m_prev)
            top = cand.reshape(mat.shape[0], -1).topk(min(k, cand[0].numel()), dim=1)
            back.append(top.indices)
            scores = top.values.T.contiguous()
        paths = []
        for rank in range(scores.shape[0]):
            if scores[rank, j1] == -math.inf:
                break
            nodes, node, r = [j1], j1, rank
            for t in range(len(mats) - 1, -1, -1):
                r, node = divmod(int(back[t][node, r]), mats[t].shape[1])
                nodes.append(node)
            nodes.reverse()
            product = 1.0
            for t, (a, b) in enumerate(zip(nodes, nodes[1:])):
                product *= float(mats[t][b, a])
            intended = all(bool(self.blocks[t0 + t].intended[b, a]) for t, (a, b) in enumerate(zip(nodes, nodes[1:])))
            paths.append({
                "path": [feature_id(t0 + t, i) for t, i in enumerate(nodes)],
                "labels": [self.label(t0 + t, i) for t, i in enumerate(nodes)],
                "product": product,
                "intended": intended,
            })
        return paths

    def intended_paths(self, target: tuple[int, int], limit: int = 1000) -> list[list[str]]:
        """Every path of intended wiring from an input feature to ``target`` (at most ``limit``)."""
        out: list[list[str]] = []

        def walk(t: int, i: int, suffix: list[str]) -> None:
            if len(out) >= limit:
                return
            here = [feature_id(t, i)] + suffix
            if t == 0:
                out.append(here)
                return
            for j in self.circuit.layers[t - 1][i].inputs:
                walk(t - 1, j, here)

        walk(*target, [])
        return out

    # ---- pruning and networkx -----------------------------------------------------------------
    def to_networkx(self, prune: float = 3, neurons: bool = False) -> nx.DiGraph:
        """Prune, then build the DiGraph. ``prune``: 0 keeps every non-zero edge; between 0 and 1
        it is a threshold on |weight| (|attribution| for an input); k >= 1 keeps the k strongest
        crosstalk edges into each node. Intended edges are always kept."""
        if prune < 0 or math.isnan(prune):
            raise GraphQueryError(f"prune must be >= 0, got {prune}")
        g = nx.DiGraph(superposim_graph=GRAPH_SCHEMA, network=self.net.name,
                       input=",".join(map(str, self.active)) if self.active is not None else "")
        for t, width in enumerate(self.circuit.widths):
            for i in range(width):
                attrs = {"layer": t, "index": i, "kind": "feature",
                         "gate": "INPUT" if t == 0 else self.circuit.layers[t - 1][i].kind,
                         "label": self.label(t, i)}
                if self.values is not None:
                    attrs["value"] = float(self.values[t][i])
                g.add_node(feature_id(t, i), **attrs)
            if t > 0:
                g.add_node(interference_id(t), layer=t, index=-1, kind="interference", gate="",
                           label=f"interference {t}")
        for t, b in enumerate(self.blocks):
            if neurons:
                self._add_neurons(g, t, b, prune)
            else:
                self._add_edges(g, b.weight, b.attribution, b.intended, prune,
                                partial(feature_id, t), partial(feature_id, t + 1), t + 1)
        return g

    def _add_neurons(self, g: nx.DiGraph, t: int, b: BlockEdges, prune: float) -> None:
        for k in range(b.neuron_in.shape[0]):
            g.add_node(neuron_id(t, k), layer=t + 0.5, index=k, kind="neuron", gate="", label=f"n{t}.{k}")
        wires_in = torch.zeros(b.neuron_in.shape, dtype=torch.bool)
        for k, gate in enumerate(b.neuron_gate.tolist()):
            if gate >= 0:
                wires_in[k, list(self.circuit.layers[t][gate].inputs)] = True
        wires_out = torch.zeros(b.neuron_out.shape, dtype=torch.bool)
        ks = (b.neuron_gate >= 0).nonzero().squeeze(1)
        wires_out[b.neuron_gate[ks], ks] = True
        value = self.values[t][None, :] if self.values is not None else None
        self._add_edges(g, b.neuron_in, None if value is None else b.neuron_in * value, wires_in, prune,
                        lambda i: feature_id(t, i), lambda k: neuron_id(t, k), None)
        self._add_edges(g, b.neuron_out, None, wires_out, prune,
                        lambda k: neuron_id(t, k), lambda j: feature_id(t + 1, j), t + 1)

    @staticmethod
    def _add_edges(g: nx.DiGraph, weight: torch.Tensor, attribution: torch.Tensor | None, intended: torch.Tensor,
                   prune: float, src: Callable[[int], Any], dst: Callable[[int], Any],
                   interference_layer: int | None) -> None:
        score = (attribution if attribution is not None else weight).abs()
        cross = (weight != 0) & ~intended
        if prune == 0:
            keep = cross
        elif prune < 1:
            keep = cross & (score >= prune)
        else:
            k = min(int(prune), score.shape[1])
            masked = torch.where(cross, score, torch.full_like(score, -1.0))
            top = masked.topk(k, dim=1).indices
            keep = torch.zeros_like(cross)
            keep.scatter_(1, top, True)
            keep &= cross
        for kind, mask in (("intended", intended), ("crosstalk", keep)):
            rows, cols = mask.nonzero(as_tuple=True)
            w = weight[rows, cols].tolist()
            a = attribution[rows, cols].tolist() if attribution is not None else None
            for n, (r, c) in enumerate(zip(rows.tolist(), cols.tolist())):
                attrs = {"weight": w[n], "kind": kind}
                if a is not None:
                    attrs["attribution"] = a[n]
                g.add_edge(src(c), dst(r), **attrs)
        if interference_layer is None:
            return
        # what pruning removed: its size (rms weight mass) or, for an input, the summed attribution
        dropped = cross & ~keep
        if attribution is not None:
            mass = (attribution * dropped).sum(dim=1)
        else:
            mass = ((weight * dropped) ** 2).sum(dim=1).sqrt()
        for r in mass.nonzero().squeeze(1).tolist():
            g.add_edge(interference_id(interference_layer), dst(r), weight=float(mass[r]), kind="interference")


def top_paths_nx(g: nx.DiGraph, source: str, target: str, k: int = 5) -> list[dict]:
    """The k paths with the largest |product| of weights in a networkx feature graph (a loaded
    one, say). All source-to-target paths of a layered graph have the same length, so a constant
    added to every -log|w| keeps their order and makes the costs positive for Yen's algorithm."""
    for node in (source, target):
        if node not in g:
            raise GraphQueryError(f"no node {node!r} in the graph")
    h = nx.DiGraph()
    for u, v, d in g.edges(data=True):
        if d.get("kind") != "interference" and d["weight"] != 0:
            h.add_edge(u, v, cost=-math.log(abs(d["weight"])), weight=d["weight"], kind=d["kind"])
    if source not in h or target not in h or not nx.has_path(h, source, target):
        return []
    shift = 1.0 - min(d["cost"] for *_, d in h.edges(data=True))
    for *_, d in h.edges(data=True):
        d["cost"] += shift
    out = []
    for path in nx.shortest_simple_paths(h, source, target, weight="cost"):
        edges = [h.edges[a, b] for a, b in zip(path, path[1:])]
        out.append({
            "path": path,
            "labels": [g.nodes[n].get("label", n) for n in path],
            "product": math.prod(e["weight"] for e in edges),
            "intended": all(e["kind"] == "intended" for e in edges),
        })
        if len(out) == k:
            break
    return out
