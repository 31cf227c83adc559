"""Compilers from circuits to ReLU networks.

Both compilers here keep one group of neurons per gate (docs/theory.md 3.1) and differ only in the
directions that carry each layer's features in the stream:

- ``compile_dedicated``: one basis direction per feature (no interference, exact);
- ``compile_superposed``: each layer's features along m unit vectors of an n-dim stream, read
  back by dot product, so every read picks up interference from the other active features.

Each gate's pre-activation z and its neurons come from the gate-kind table (``circuits.gates``);
z is 1 when the gate is on and at most 0 when it is off. With cleanup="threshold" every gate
output g is passed through
h(g) = ReLU(2g - .5) - ReLU(2g - 1.5) before it is written. h is flat below 0.25 and above 0.75,
so h(gate(z)) = h(z) for these clipped gates, and gate plus clean-up fold into the same two ReLUs
on z.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from circuits.gates import GATES, KINDS, Neuron, gate_pre
from circuits.spec import Circuit, Gate, gate_arrays
from layers.embeddings import Directions, draw_seed
from layers.network import Network, ReLUBlock
from layers.tensor_list import TensorList
from layers.weights import Identity, Weight, WeightList, compact

CLEANUPS = ("none", "threshold")

# Decision boundary of every gate's pre-activation z: where graphs linearise it.
BOUNDARY = 0.5


# h(z) = ReLU(2z - .5) - ReLU(2z - 1.5): the threshold clean-up folded onto a gate's z
CLEANUP_NEURONS = ((2.0, -0.5, True, 1.0), (2.0, -1.5, True, -1.0))


def gate_neurons(kind: str, cleanup: str) -> tuple[Neuron, ...]:
    """Neurons computing one gate from its pre-activation z (``circuits.gates``), or its
    cleaned-up value h(z) with ``cleanup="threshold"``."""
    return CLEANUP_NEURONS if cleanup == "threshold" else KINDS[kind].neurons


@dataclass(frozen=True)
class Cost:
    """What a network spends: neurons per block, stream widths, weights and biases."""

    neurons: list[int]
    stream_widths: list[int]
    parameters: int
    nonzero_parameters: int | None  # None: not counted (a streamed network never holds its weights)

    @property
    def total_neurons(self) -> int:
        return sum(self.neurons)

    def to_dict(self) -> dict:
        return asdict(self) | {"total_neurons": self.total_neurons}


class CompiledNetwork(nn.Module):
    """A network with, per layer, the directions along which the circuit's features are read.

    ``readouts[t]`` is an (m_t, n_s) weight; the features of layer t are ``readouts[t](stream_s)``
    with s = ``stream_of_layer[t]`` (by default t: one block per layer; a network with extra blocks
    between layers, such as error correction, says where). Every tensor it carries is a module or
    buffer of it, so ``.to(device)`` moves all of it; constructions with more to carry subclass it
    and register theirs the same way.
    """

    network: Network

    def __init__(
        self,
        name: str,
        circuit: Circuit,
        network: Network,
        readouts: Sequence[Weight],
        neuron_gates: Sequence[torch.Tensor] | None = None,
        boundary: Sequence[torch.Tensor | None] | None = None,
        readout_bias: Sequence[torch.Tensor | None] | None = None,
        stream_of_layer: list[int] | None = None,
        carriers: Sequence[Weight] | None = None,
    ) -> None:
        super().__init__()
        if len(readouts) != circuit.depth + 1:
            raise ValueError(f"need {circuit.depth + 1} read-outs, got {len(readouts)}")
        self.name, self.circuit, self.network = name, circuit, network
        self.readouts = WeightList(readouts)
        # Per layer: the gate each neuron computes (-1: none); per block: whether each neuron is
        # active when its gate sits at its decision boundary (where graphs linearise; None: all).
        self.neuron_gates = None if neuron_gates is None else TensorList(neuron_gates)
        self.boundary = None if boundary is None else TensorList(boundary)
        # Intercepts of fitted read-outs (probes); compiled read-outs have none.
        self.readout_bias = TensorList(readout_bias or [None] * len(readouts))
        self.stream_of_layer = stream_of_layer or list(range(len(readouts)))
        # Per layer: the (m_t, n_t) directions along which a unit change of each feature moves the
        # stream (by default the read-out directions themselves).
        self.carriers = WeightList(carriers if carriers is not None else readouts)

    def read_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Read-out of every layer's features for the inputs x, as (batch, m_t) tensors."""
        streams = self.network.streams(x)
        reads = [r(streams[s]) for s, r in zip(self.stream_of_layer, self.readouts)]
        return [r if b is None else r + b for r, b in zip(reads, self.readout_bias)]

    def cost(self) -> Cost:
        return Cost(
            neurons=self.network.neurons(),
            stream_widths=list(self.network.stream_widths),
            parameters=self.network.parameter_count(),
            nonzero_parameters=self.network.nonzero_parameters(),
        )

    def directions(self, layer: int) -> torch.Tensor:
        """Dense (m_t, n_t) read-out directions of one layer."""
        return self.readouts[layer].dense()

    def carrier(self, layer: int) -> torch.Tensor:
        """Dense (m_t, n_t) directions along which layer t's features are written."""
        return self.carriers[layer].dense()

    def blocks_of_layer(self, layer: int) -> range:
        """Indices of the blocks between layer ``layer`` and layer ``layer + 1``."""
        return range(self.stream_of_layer[layer], self.stream_of_layer[layer + 1])


@dataclass
class LayerNeurons:
    """The neurons computing one layer's gates, in gate order, as tensors (built without a
    Python loop over gates, so a layer may hold millions). Edge e adds ``edge_weight[e]`` times
    input feature ``edge_input[e]`` to neuron ``edge_neuron[e]``; edges are sorted by neuron."""

    gate: torch.Tensor  # (hidden,) the gate each neuron computes
    bias: torch.Tensor
    relu: torch.Tensor  # bool
    out_coef: torch.Tensor  # the neuron's coefficient in its gate's output
    boundary: torch.Tensor  # 1 where the neuron is active at its gate's decision boundary
    first_neuron: torch.Tensor  # (gates + 1,) neuron range of each gate
    edge_neuron: torch.Tensor
    edge_input: torch.Tensor
    edge_weight: torch.Tensor
    first_edge: torch.Tensor  # (hidden + 1,) edge range of each neuron

    @property
    def hidden(self) -> int:
        return self.gate.shape[0]


def layer_neurons(gates: Sequence[Gate], cleanup: str) -> LayerNeurons:
    """Neurons, biases and input edges of one layer, from gate_pre and gate_neurons."""
    kinds, inputs, fan_in = gate_arrays(gates)
    k = inputs.shape[1]
    # one recipe per (kind, fan-in) present: signs per input slot, gate bias, neurons
    combo = kinds * (k + 1) + fan_in
    recipes, which = torch.unique(combo, return_inverse=True)
    signs, gate_bias, neurons = [], [], []
    for code in recipes.tolist():
        kind, fan = GATES[code // (k + 1)], code % (k + 1)
        sg, b = gate_pre(kind, fan)
        signs.append(list(sg) + [0.0] * (k - fan))
        gate_bias.append(b)
        neurons.append(gate_neurons(kind, cleanup))
    q_max = max(len(r) for r in neurons)
    table = torch.zeros(len(neurons), q_max, 4)  # scale, offset, relu, coefficient per slot
    count = torch.tensor([len(r) for r in neurons])
    for r, steps in enumerate(neurons):
        table[r, : len(steps)] = torch.tensor([[sc, off, float(relu), c] for sc, off, relu, c in steps])
    per_gate = count[which]
    first_neuron = torch.cat([torch.zeros(1, dtype=torch.int64), per_gate.cumsum(0)])
    hidden = int(first_neuron[-1])
    gate = torch.repeat_interleave(torch.arange(len(kinds)), per_gate)
    slot = torch.arange(hidden) - first_neuron[gate]
    recipe = table[which[gate], slot]  # (hidden, 4)
    scale, offset = recipe[:, 0], recipe[:, 1]
    relu = recipe[:, 2] > 0
    bias = scale * torch.tensor(gate_bias)[which[gate]] + offset
    boundary = (~relu | (scale * BOUNDARY + offset > 0)).float()
    # edges: every neuron reads every input of its gate, with the gate's sign on that slot
    weight = scale[:, None] * torch.tensor(signs)[which[gate]]  # (hidden, k)
    source = inputs[gate]
    real = source >= 0
    edge_neuron = torch.arange(hidden)[:, None].expand(hidden, k)[real]
    first_edge = torch.cat([torch.zeros(1, dtype=torch.int64), real.sum(1).cumsum(0)])
    return LayerNeurons(gate, bias, relu, recipe[:, 3], boundary, first_neuron,
                        edge_neuron, source[real], weight[real], first_edge)


def _layer_block(
    gates: Sequence[Gate], m_prev: int, phi_prev: torch.Tensor | None, phi: torch.Tensor | None, cleanup: str
) -> tuple[ReLUBlock, torch.Tensor, torch.Tensor]:
    ln = layer_neurons(gates, cleanup)
    hidden = ln.hidden
    gate_in = torch.sparse_coo_tensor(torch.stack([ln.edge_neuron, ln.edge_input]), ln.edge_weight,
                                      (hidden, m_prev), check_invariants=True).coalesce()
    gate_out = torch.sparse_coo_tensor(torch.stack([torch.arange(hidden), ln.gate]), ln.out_coef,
                                       (hidden, len(gates)), check_invariants=True).coalesce()  # (neurons, gates)
    read = gate_in if phi_prev is None else torch.sparse.mm(gate_in, phi_prev)
    write_t = gate_out if phi is None else torch.sparse.mm(gate_out, phi)
    block = ReLUBlock(
        compact(read),
        ln.bias,
        compact(write_t.t().coalesce() if write_t.is_sparse else write_t.T.contiguous()),
        relu_mask=ln.relu,
    )
    return block, ln.gate, ln.boundary


def compile_with_embeddings(
    circuit: Circuit, embeddings: Sequence[torch.Tensor | None], cleanup: str, name: str
) -> CompiledNetwork:
    """Compile with the given (m_t, n_t) direction matrix per layer (None: the identity)."""
    if cleanup not in CLEANUPS:
        raise ValueError(f"unknown cleanup {cleanup!r}; choose one of {', '.join(CLEANUPS)}")
    built = [
        _layer_block(gates, circuit.widths[t], embeddings[t], embeddings[t + 1], cleanup)
        for t, gates in enumerate(circuit.layers)
    ]
    embed = Identity(circuit.n_inputs) if embeddings[0] is None else compact(embeddings[0].T.contiguous())
    network = Network(embed, [b[0] for b in built])
    readouts = [Identity(m_t) if e is None else compact(e.contiguous()) for m_t, e in zip(circuit.widths, embeddings)]
    return CompiledNetwork(name, circuit, network, readouts, [b[1] for b in built], [b[2] for b in built])


def compile_dedicated(circuit: Circuit) -> CompiledNetwork:
    """The baseline: one direction per feature, exact on every input by construction."""
    return compile_with_embeddings(circuit, [None] * (circuit.depth + 1), "none", "dedicated")


def superposed_directions(circuit: Circuit, n: int, embedding: str = "random",
                          generator: torch.Generator | None = None, draws: str = "torch") -> list[Directions]:
    """The directions of every layer's features: one seed drawn from ``generator``, each layer on
    its own part of the seed range, so no two features of the network share a row."""
    base = draw_seed(generator)
    starts = [base + sum(circuit.widths[:t]) for t in range(len(circuit.widths))]
    return [Directions(embedding, m_t, n, start, draws) for m_t, start in zip(circuit.widths, starts)]


def compile_superposed(
    circuit: Circuit,
    n: int,
    embedding: str = "random",
    cleanup: str = "none",
    generator: torch.Generator | None = None,
    draws: str = "torch",
) -> CompiledNetwork:
    """Every layer's features along their own ``embedding`` directions in an n-dim stream (built
    on the CPU, as every stored network is, then placed on the run's device)."""
    phis = [d.dense() for d in superposed_directions(circuit, n, embedding, generator, draws)]
    return compile_with_embeddings(circuit, phis, cleanup, "superposed")
