"""Compilers from circuits to ReLU networks.

Both compilers here keep one group of neurons per gate (docs/theory.md 3.1) and differ only in the
directions that carry each layer's features in the stream:

- ``compile_dedicated``: one basis direction per feature (no interference, exact);
- ``compile_superposed``: each layer's features along m unit vectors of an n-dim stream, read
  back by dot product, so every read picks up interference from the other active features.

Every gate has a pre-activation z, a signed sum of its reads plus a bias, that is 1 when the gate
is on and at most 0 when it is off (so it decides at z = 1/2):
    AND: z = sum - (k - 1)   OR: z = sum   BUF: z = a   NOT: z = 1 - a   ANDNOT(a, b): z = a - b
Gate neurons (cleanup="none"): AND and ANDNOT ReLU(z); OR ReLU(z) - ReLU(z - 1); BUF and NOT z
(linear). With cleanup="threshold" every gate output g is passed through
h(g) = ReLU(2g - .5) - ReLU(2g - 1.5) before it is written. h is flat below 0.25 and above 0.75,
so h(gate(z)) = h(z) for these clipped gates, and gate plus clean-up fold into the same two ReLUs
on z.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from circuits.spec import Circuit
from layers import Network, ReLUBlock, compact, make_embedding, times_transpose
from layers.matrices import nonzeros, to_dense

CLEANUPS = ("none", "threshold")

# Decision boundary of every gate's pre-activation z: where graphs linearise it.
BOUNDARY = 0.5


def gate_pre(kind: str, fan_in: int) -> tuple[tuple[float, ...], float]:
    """(sign of each input, bias) of the gate's pre-activation z."""
    if kind == "AND":
        return (1.0,) * fan_in, -(fan_in - 1.0)
    if kind == "OR":
        return (1.0,) * fan_in, 0.0
    if kind == "NOT":
        return (-1.0,), 1.0
    if kind == "ANDNOT":
        return (1.0, -1.0), 0.0
    return (1.0,), 0.0  # BUF


def gate_neurons(kind: str, cleanup: str) -> list[tuple[float, float, bool, float]]:
    """Neurons computing one gate from its pre-activation z: (scale, offset, is ReLU, output
    coefficient) each, the neuron's own pre-activation being scale * z + offset."""
    if cleanup == "threshold":
        return [(2.0, -0.5, True, 1.0), (2.0, -1.5, True, -1.0)]
    if kind in ("AND", "ANDNOT"):
        return [(1.0, 0.0, True, 1.0)]
    if kind == "OR":
        return [(1.0, 0.0, True, 1.0), (1.0, -1.0, True, -1.0)]
    return [(1.0, 0.0, False, 1.0)]  # BUF, NOT: linear


@dataclass(frozen=True)
class Cost:
    """What a network spends: neurons per block, stream widths, weights and biases."""

    neurons: list[int]
    stream_widths: list[int]
    parameters: int
    nonzero_parameters: int

    @property
    def total_neurons(self) -> int:
        return sum(self.neurons)

    def as_dict(self) -> dict:
        return asdict(self) | {"total_neurons": self.total_neurons}


class CompiledNetwork:
    """A network with, per layer, the directions along which the circuit's features are read.

    ``readouts[t]`` is an (m_t, n_t) matrix (None: the identity); the features of layer t are
    ``stream_s @ readouts[t].T`` with s = ``stream_of_layer[t]`` (by default t: one block per
    layer; a network with extra blocks between layers, such as error correction, says where).
    """

    def __init__(
        self,
        name: str,
        circuit: Circuit,
        network: Network,
        readouts: list[torch.Tensor | None],
        neuron_gates: list[torch.Tensor] | None = None,
        boundary: list[torch.Tensor] | None = None,
        readout_bias: list[torch.Tensor | None] | None = None,
        stream_of_layer: list[int] | None = None,
        carriers: list[torch.Tensor | None] | None = None,
    ) -> None:
        if len(readouts) != circuit.depth + 1:
            raise ValueError(f"need {circuit.depth + 1} read-outs, got {len(readouts)}")
        self.name, self.circuit, self.network, self.readouts = name, circuit, network, readouts
        # Per layer: the gate each neuron computes (-1: none); per block: whether each neuron is
        # active when its gate sits at its decision boundary (where graphs linearise; None: all).
        self.neuron_gates = neuron_gates
        self.boundary = boundary
        # Intercepts of fitted read-outs (probes); compiled read-outs have none.
        self.readout_bias = readout_bias or [None] * len(readouts)
        self.stream_of_layer = stream_of_layer or list(range(len(readouts)))
        # Per layer: the (m_t, n_t) directions along which a unit change of each feature moves the
        # stream, where they differ from the read-out directions (None: the read-outs themselves).
        self.carriers = carriers or [None] * len(readouts)

    def read_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Read-out of every layer's features for the inputs x, as (batch, m_t) tensors."""
        streams = self.network.streams(x)
        reads = [times_transpose(streams[s], r) for s, r in zip(self.stream_of_layer, self.readouts)]
        return [r if b is None else r + b for r, b in zip(reads, self.readout_bias)]

    def to(self, device: torch.device | str) -> CompiledNetwork:
        self.network.to(device)
        self.readouts = [None if r is None else r.to(device) for r in self.readouts]
        self.readout_bias = [None if b is None else b.to(device) for b in self.readout_bias]
        if self.boundary is not None:
            self.boundary = [None if b is None else b.to(device) for b in self.boundary]
        self.carriers = [None if c is None else c.to(device) for c in self.carriers]
        return self

    def cost(self) -> Cost:
        blocks = self.network.blocks
        return Cost(
            neurons=self.network.neurons(),
            stream_widths=list(self.network.stream_widths),
            parameters=self.network.parameter_count(),
            nonzero_parameters=sum(b.nonzero_parameters() for b in blocks)
            + (0 if self.network.embed is None else nonzeros(self.network.embed)),
        )

    def directions(self, layer: int) -> torch.Tensor:
        """Dense (m_t, n_t) read-out directions of one layer."""
        return to_dense(self.readouts[layer], self.circuit.widths[layer])

    def carrier(self, layer: int) -> torch.Tensor:
        """Dense (m_t, n_t) directions along which layer t's features are written."""
        given = self.carriers[layer]
        return self.directions(layer) if given is None else to_dense(given, self.circuit.widths[layer])

    def blocks_of_layer(self, layer: int) -> range:
        """Indices of the blocks between layer ``layer`` and layer ``layer + 1``."""
        return range(self.stream_of_layer[layer], self.stream_of_layer[layer + 1])


def _layer_block(
    gates: list, m_prev: int, phi_prev: torch.Tensor | None, phi: torch.Tensor | None, cleanup: str
) -> tuple[ReLUBlock, torch.Tensor, torch.Tensor]:
    rows, cols, weights, biases, relus, outs, on_boundary = [], [], [], [], [], [], []
    for g, gate in enumerate(gates):
        signs, gate_bias = gate_pre(gate.kind, gate.fan_in)
        for scale, offset, relu, c in gate_neurons(gate.kind, cleanup):
            neuron = len(biases)
            on_boundary.append(not relu or scale * BOUNDARY + offset > 0)
            for j, sign in zip(gate.inputs, signs):
                rows.append(neuron)
                cols.append(j)
                weights.append(scale * sign)
            biases.append(scale * gate_bias + offset)
            relus.append(relu)
            outs.append((g, neuron, c))
    hidden = len(biases)
    gate_in = torch.sparse_coo_tensor([rows, cols], weights, (hidden, m_prev), check_invariants=True).coalesce()
    gate_out = torch.sparse_coo_tensor(
        [[o[1] for o in outs], [o[0] for o in outs]], [o[2] for o in outs], (hidden, len(gates)), check_invariants=True
    ).coalesce()  # transposed combination: (neurons, gates)
    read = gate_in if phi_prev is None else torch.sparse.mm(gate_in, phi_prev)
    write_t = gate_out if phi is None else torch.sparse.mm(gate_out, phi)
    block = ReLUBlock(
        compact(read),
        torch.tensor(biases),
        compact(write_t.t().coalesce() if write_t.is_sparse else write_t.T.contiguous()),
        relu_mask=torch.tensor(relus),
        n_in=m_prev if phi_prev is None else phi_prev.shape[1],
        n_out=len(gates) if phi is None else phi.shape[1],
    )
    return block, torch.tensor([o[0] for o in outs]), torch.tensor(on_boundary, dtype=torch.float32)


def compile_with_embeddings(
    circuit: Circuit, embeddings: list[torch.Tensor | None], cleanup: str, name: str
) -> CompiledNetwork:
    """Compile with the given (m_t, n_t) direction matrix per layer (None: the identity)."""
    if cleanup not in CLEANUPS:
        raise ValueError(f"unknown cleanup {cleanup!r}; choose one of {', '.join(CLEANUPS)}")
    built = [
        _layer_block(gates, circuit.widths[t], embeddings[t], embeddings[t + 1], cleanup)
        for t, gates in enumerate(circuit.layers)
    ]
    embed = None if embeddings[0] is None else compact(embeddings[0].T.contiguous())
    network = Network(embed, [b[0] for b in built], circuit.n_inputs)
    readouts = [None if e is None else compact(e.contiguous()) for e in embeddings]
    return CompiledNetwork(name, circuit, network, readouts, [b[1] for b in built], [b[2] for b in built])


def compile_dedicated(circuit: Circuit) -> CompiledNetwork:
    """The baseline: one direction per feature, exact on every input by construction."""
    return compile_with_embeddings(circuit, [None] * (circuit.depth + 1), "none", "dedicated")


def compile_superposed(
    circuit: Circuit,
    n: int,
    embedding: str = "random",
    cleanup: str = "none",
    generator: torch.Generator | None = None,
) -> CompiledNetwork:
    """Every layer's features along their own ``embedding`` directions in an n-dim stream."""
    phis = [make_embedding(embedding, m_t, n, generator) for m_t in circuit.widths]
    return compile_with_embeddings(circuit, phis, cleanup, "superposed")
