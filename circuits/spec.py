"""Layered boolean circuits: AND / OR (fan-in >= 2), BUF and NOT (fan-in 1), ANDNOT (a and not b).

Layer 0 holds the m input features; every gate of layer t reads features of layer t - 1 only,
which is what a stream that carries one layer's features at a time can compute. The circuit is
also available as a networkx DiGraph with nodes ``(layer, index)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import torch

from circuits.gates import GATES, KINDS
from layers.errors import SuperposimError

INPUT = "INPUT"


class CircuitError(SuperposimError, ValueError):
    """A circuit that cannot be built or compiled, with the reason."""


@dataclass(frozen=True)
class Gate:
    kind: str
    inputs: tuple[int, ...]

    @property
    def fan_in(self) -> int:
        return len(self.inputs)


class GateArray(Sequence):
    """One layer of gates held as tensors (the form every circuit stores its layers in, so a layer
    may hold millions): ``kinds`` (g,) codes into GATES and ``inputs`` (g, k) indices padded with
    -1. It reads as a sequence of Gate objects, made on access."""

    def __init__(self, kinds: torch.Tensor, inputs: torch.Tensor) -> None:
        if inputs.dim() != 2 or kinds.shape != inputs.shape[:1]:
            raise CircuitError(f"a gate array needs kinds (g,) and inputs (g, k), got {tuple(kinds.shape)}, "
                               f"{tuple(inputs.shape)}")
        self.kinds, self.inputs = kinds.to(torch.int64), inputs.to(torch.int64)

    @classmethod
    def of_kind(cls, kind: str, inputs: torch.Tensor) -> GateArray:
        """Gates of one kind reading ``inputs`` (g, k)."""
        return cls(torch.full((inputs.shape[0],), GATES.index(kind)), inputs)

    @classmethod
    def of_gates(cls, gates: Sequence[Gate]) -> GateArray:
        k = max(g.fan_in for g in gates)
        return cls(torch.tensor([GATES.index(g.kind) for g in gates]),
                   torch.tensor([list(g.inputs) + [-1] * (k - g.fan_in) for g in gates]))

    def __len__(self) -> int:
        return self.kinds.shape[0]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GateArray):
            return torch.equal(self.kinds, other.kinds) and torch.equal(self.inputs, other.inputs)
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable tensors: no hash

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        row = self.inputs[i]
        return Gate(GATES[int(self.kinds[i])], tuple(int(j) for j in row[row >= 0]))


def gate_arrays(layer: Sequence) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(kind codes (g,), inputs (g, k) padded with -1, fan-ins (g,)) of one layer's gates."""
    array = layer if isinstance(layer, GateArray) else GateArray.of_gates(layer)
    return array.kinds, array.inputs, (array.inputs >= 0).sum(1)


class Circuit:
    """A validated layered circuit over ``n_inputs`` features."""

    def __init__(self, n_inputs: int, layers: Sequence[Sequence[Gate]]) -> None:
        if n_inputs <= 0:
            raise CircuitError(f"a circuit needs at least one input, got {n_inputs}")
        self.n_inputs = n_inputs
        self.layers: list[GateArray] = []
        width = n_inputs
        for t, layer in enumerate(layers, start=1):
            if not len(layer):
                raise CircuitError(f"layer {t} has no gates")
            if not isinstance(layer, GateArray):
                for i, gate in enumerate(layer):
                    _check_gate(gate, (t, i), width)
                layer = GateArray.of_gates(layer)
            _check_array(layer, t, width)
            self.layers.append(layer)
            width = len(layer)

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def widths(self) -> list[int]:
        """Number of features per layer, layer 0 being the inputs."""
        return [self.n_inputs] + [len(layer) for layer in self.layers]

    def graph(self) -> nx.DiGraph:
        """The circuit as a DiGraph: node ``(t, i)`` with ``layer``, ``gate``, ``label``."""
        g = nx.DiGraph()
        for i in range(self.n_inputs):
            g.add_node((0, i), layer=0, gate=INPUT, label=f"x{i}")
        for t, layer in enumerate(self.layers, start=1):
            for i, gate in enumerate(layer):
                g.add_node((t, i), layer=t, gate=gate.kind, label=f"{gate.kind}{t}.{i}")
                for position, j in enumerate(gate.inputs):
                    g.add_edge((t - 1, j), (t, i), position=position)
        return g

    @classmethod
    def from_graph(cls, g: nx.DiGraph) -> Circuit:
        """Validate a DiGraph with ``layer`` and ``gate`` node attributes and build the circuit.

        Gate inputs are taken in the order of their edges' ``position`` attribute, else of their
        node index (order matters for ANDNOT only). Nodes need not be ``(t, i)`` tuples; within a
        layer they are ordered by their sort order.
        """
        missing = [node for node, data in g.nodes(data=True) if "layer" not in data or "gate" not in data]
        if missing:
            raise CircuitError(
                f"node {missing[0]!r} has no 'layer'/'gate' attribute (a wire to a missing node?)"
            )
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            raise CircuitError(f"the circuit has a cycle through {cycle[0][0]!r}")
        by_layer: dict[int, list] = {}
        for node, data in g.nodes(data=True):
            kind = data["gate"]
            if kind != INPUT and kind not in GATES:
                raise CircuitError(f"node {node!r}: unknown gate {kind!r}; valid: {', '.join(GATES)}")
            if (kind == INPUT) != (data["layer"] == 0):
                raise CircuitError(f"node {node!r}: inputs live in layer 0 and only there")
            by_layer.setdefault(int(data["layer"]), []).append(node)
        depth = max(by_layer)
        if sorted(by_layer) != list(range(depth + 1)):
            raise CircuitError(f"layers must run 0..{depth} without gaps, got {sorted(by_layer)}")
        order = {t: sorted(nodes) for t, nodes in by_layer.items()}
        index = {node: i for nodes in order.values() for i, node in enumerate(nodes)}
        layers = []
        for t in range(1, depth + 1):
            gates = []
            for node in order[t]:
                def by_position(u: Any, v: Any = node) -> tuple[Any, int]:
                    return g.edges[u, v].get("position", 0), index[u]

                sources = sorted(g.predecessors(node), key=by_position)
                for u in sources:
                    if g.nodes[u]["layer"] >= t:
                        raise CircuitError(
                            f"gate {node!r} (layer {t}) reads {u!r} from its own or a later layer"
                        )
                    if g.nodes[u]["layer"] != t - 1:
                        raise CircuitError(
                            f"gate {node!r} (layer {t}) reads {u!r} from layer "
                            f"{g.nodes[u]['layer']}; gates read only layer {t - 1} "
                            "(carry older features forward with BUF gates)"
                        )
                gates.append(Gate(g.nodes[node]["gate"], tuple(index[u] for u in sources)))
            layers.append(gates)
        return cls(len(order[0]), layers)

    def __repr__(self) -> str:
        return f"Circuit(widths={self.widths})"


# per gate code: the fan-in it needs (at least, for AND / OR), and whether exactly
_FAN_IN_NEED = torch.tensor([kind.fixed_fan_in or 2 for kind in KINDS.values()])
_FAN_IN_FIXED = torch.tensor([kind.fixed_fan_in is not None for kind in KINDS.values()])


def _check_array(layer: GateArray, t: int, width: int) -> None:
    """The rules of _check_gate, on every gate of an array at once; the first bad gate is named."""
    kinds, inputs, fan_in = gate_arrays(layer)
    ok = (kinds >= 0) & (kinds < len(GATES))
    known = kinds.clamp(0, len(GATES) - 1)
    need, exact = _FAN_IN_NEED[known], _FAN_IN_FIXED[known]
    ok &= torch.where(exact, fan_in == need, fan_in >= need)
    ok &= ((inputs < width) & (inputs >= -1)).all(1) & (inputs[:, :1] >= 0).squeeze(1)
    padded_right = (inputs >= 0).cumprod(1).sum(1) == fan_in  # padding only at the end
    ok &= padded_right
    if inputs.shape[1] > 1:
        ordered = inputs.sort(dim=1).values
        ok &= ~((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(1)
    bad = torch.nonzero(~ok)
    if bad.numel():
        i = int(bad[0])
        if not 0 <= int(kinds[i]) < len(GATES):
            raise CircuitError(f"gate {(t, i)}: unknown gate code {int(kinds[i])}")
        row = inputs[i]
        _check_gate(Gate(GATES[int(kinds[i])], tuple(int(j) for j in row if j != -1)), (t, i), width)
        raise CircuitError(f"gate {(t, i)}: inputs {row.tolist()} are padded with -1 only at the end")


def _check_gate(gate: Gate, where: tuple[int, int], width: int) -> None:
    if gate.kind not in GATES:
        raise CircuitError(f"gate {where}: unknown gate {gate.kind!r}; valid: {', '.join(GATES)}")
    if gate.fan_in == 0:
        raise CircuitError(f"gate {where} ({gate.kind}) has fan-in 0")
    wrong = KINDS[gate.kind].check_fan_in(gate.fan_in)
    if wrong:
        raise CircuitError(f"gate {where}: {wrong}")
    if len(set(gate.inputs)) != gate.fan_in:
        raise CircuitError(f"gate {where} reads the same input twice: {gate.inputs}")
    bad = [j for j in gate.inputs if not 0 <= j < width]
    if bad:
        raise CircuitError(
            f"gate {where} reads feature {bad[0]} of the previous layer, which has only {width}"
        )
