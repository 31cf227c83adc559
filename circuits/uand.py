"""Universal-AND (Haenni, Mendel, Vaintrob, Chan 2024): many ANDs from few neurons.

d ReLU neurons each connect to every input with probability p (weight 1) and have bias
-(k - 1), so a neuron outputs (its active inputs - (k - 1))_+. AND of the k inputs I is read as
the average of the neurons connected to all of I (about p^k d of them); OR(a, b) = a + b - AND(a, b)
is then linear, given the inputs themselves, which m linear pass-through neurons carry when the
circuit has OR gates. The inputs are the basis (d0 = 0) or themselves in superposition along
random unit vectors of R^d0. The result is a CompiledNetwork: the tracer and the graph take it
as they take the other compilers' networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from circuits.compile import CompiledNetwork
from circuits.spec import Circuit, CircuitError
from layers.embeddings import make_embedding
from layers.network import Network, ReLUBlock
from layers.tensor_list import TensorList
from layers.weights import Identity, Weight, compact, sparse_weight


def uand_fan_in(gates: Sequence) -> int:
    """The common fan-in k of a layer's ANDs (2 when it has only ORs); checks the layer."""
    kinds = {g.kind for g in gates}
    if not kinds <= {"AND", "OR"}:
        raise CircuitError(f"U-AND computes AND and OR gates, not {', '.join(sorted(kinds - {'AND', 'OR'}))}")
    ks = {g.fan_in for g in gates if g.kind == "AND"}
    if len(ks) > 1:
        raise CircuitError(f"U-AND needs one AND fan-in per layer, got {sorted(ks)}")
    k = ks.pop() if ks else 2
    if "OR" in kinds and (k != 2 or any(g.fan_in != 2 for g in gates if g.kind == "OR")):
        raise CircuitError("U-AND reads OR(a, b) as a + b - AND(a, b): ORs and ANDs must have fan-in 2")
    return k


def gate_inputs(gates: Sequence) -> torch.Tensor:
    """(gates, k) input indices, padded by repeating the first input."""
    k = max(g.fan_in for g in gates)
    return torch.tensor([g.inputs + (g.inputs[0],) * (k - g.fan_in) for g in gates])


WIRING_CHUNK = 2**24  # entries drawn at once while wiring (floats)


def random_connections(d: int, m: int, p: float, generator: torch.Generator | None = None,
                       chunk_elements: int = WIRING_CHUNK) -> torch.Tensor:
    """A (d, m) sparse 0/1 matrix, each entry 1 with probability p, drawn as coordinate lists a
    block of neurons at a time (memory bounded by the block, never d x m floats)."""
    rows = max(1, chunk_elements // m)
    found = []
    for start in range(0, d, rows):
        block = torch.rand(min(rows, d - start), m, generator=generator) < p
        neuron, feature = block.nonzero(as_tuple=True)
        found.append(torch.stack([neuron + start, feature]))
    index = torch.cat(found, dim=1)
    return torch.sparse_coo_tensor(index, torch.ones(index.shape[1]), (d, m), is_coalesced=True,
                                   check_invariants=False)  # built sorted and unique above


def input_neurons(connections: torch.Tensor) -> torch.Tensor:
    """(m, d) boolean: which neurons each input is connected to (one byte per entry)."""
    d, m = connections.shape
    if connections.layout == torch.strided:
        return connections.bool().T.contiguous()
    neuron, feature = connections.indices()
    out = torch.zeros(m, d, dtype=torch.bool, device=connections.device)
    out[feature, neuron] = True
    return out


def shared_neurons(
    connections: torch.Tensor, inputs: torch.Tensor, chunk: int = 16384
) -> tuple[torch.Tensor, torch.Tensor]:
    """(gate index, neuron index) of every neuron connected to all inputs of each gate."""
    conn = input_neurons(connections)  # (m, d)
    gate_ids, neuron_ids = [], []
    for start in range(0, inputs.shape[0], chunk):
        idx = inputs[start : start + chunk]
        mask = conn[idx[:, 0]]
        for j in range(1, idx.shape[1]):
            mask &= conn[idx[:, j]]
        gate, neuron = mask.nonzero(as_tuple=True)
        gate_ids.append(gate + start)
        neuron_ids.append(neuron)
    return torch.cat(gate_ids), torch.cat(neuron_ids)


def _uand_block(
    gates: Sequence, m_prev: int, prev_read: torch.Tensor | None, d: int, p: float, k: int,
    generator: torch.Generator | None,
) -> tuple[ReLUBlock, Weight, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One U-AND block over features read from the stream as ``stream @ prev_read.T`` (None: the
    stream is the features): (block, read-out of its gates, connections, shared counts, and the
    (hidden, m_prev) 0/1 matrix of which input feature each neuron reads)."""
    conn = random_connections(d, m_prev, p, generator)
    has_or = any(g.kind == "OR" for g in gates)
    index = conn.indices()
    if has_or:  # pass-through neurons last: neuron d + j carries input j
        index = torch.cat([index, torch.arange(m_prev).expand(2, m_prev) + torch.tensor([[d], [0]])], dim=1)
    hidden = d + (m_prev if has_or else 0)
    feature_read = torch.sparse_coo_tensor(index, torch.ones(index.shape[1]), (hidden, m_prev),
                                           check_invariants=True).coalesce()
    relu = torch.cat([torch.ones(d, dtype=torch.bool), torch.zeros(hidden - d, dtype=torch.bool)])
    bias = torch.cat([torch.full((d,), -(k - 1.0)), torch.zeros(hidden - d)])
    read = feature_read if prev_read is None else torch.sparse.mm(feature_read, prev_read)
    block = ReLUBlock(compact(read), bias, Identity(hidden), relu_mask=relu)
    # read-out of each gate: the average of its shared neurons (plus a + b for an OR)
    g_idx, n_idx = shared_neurons(conn, gate_inputs(gates))
    counts = torch.bincount(g_idx, minlength=len(gates)).float()
    sign = torch.tensor([1.0 if g.kind == "AND" else -1.0 for g in gates])
    rows, cols, vals = [g_idx], [n_idx], [sign[g_idx] / counts[g_idx]]
    ors = [i for i, g in enumerate(gates) if g.kind == "OR"]
    if ors:
        pairs = torch.tensor([gates[i].inputs for i in ors])
        gi = torch.tensor(ors).repeat_interleave(2)
        rows.append(gi)
        cols.append(d + pairs.reshape(-1))
        vals.append(torch.ones(gi.numel()))
    readout = sparse_weight(torch.cat(rows), torch.cat(cols), torch.cat(vals), (len(gates), hidden))
    return block, readout, conn, counts, feature_read


class UAndNetwork(CompiledNetwork):
    """One U-AND layer, with its random connections (a sparse (d, m) 0/1 matrix) and the number
    of neurons each gate's inputs share."""

    connections: torch.Tensor
    shared_counts: torch.Tensor

    def __init__(self, name: str, circuit: Circuit, network: Network, readouts: Sequence[Weight],
                 connections: torch.Tensor, shared_counts: torch.Tensor) -> None:
        super().__init__(name, circuit, network, readouts)
        self.register_buffer("connections", connections)
        self.register_buffer("shared_counts", shared_counts)


def compile_uand(
    circuit: Circuit, d: int, p: float, d0: int = 0, generator: torch.Generator | None = None
) -> CompiledNetwork:
    """One U-AND layer computing ``circuit`` (one layer of AND / OR gates)."""
    if d <= 0 or not 0 < p <= 1 or d0 < 0:
        raise ValueError(f"U-AND needs d > 0, 0 < p <= 1, d0 >= 0; got d={d}, p={p}, d0={d0}")
    if circuit.depth != 1:
        raise CircuitError(f"U-AND computes one layer of gates, the circuit has {circuit.depth}")
    k = uand_fan_in(circuit.layers[0])
    m = circuit.n_inputs
    phi = make_embedding("random", m, d0, generator) if d0 > 0 else None
    block, readout, conn, counts, _ = _uand_block(circuit.layers[0], m, phi, d, p, k, generator)
    embed = Identity(m) if phi is None else compact(phi.T.contiguous())
    return UAndNetwork(f"u-and(d={d}, p={p:g}, d0={d0})", circuit, Network(embed, [block]),
                       [Identity(m) if phi is None else compact(phi), readout], conn, counts)



CORRECTIONS = ("none", "cleanup")


def compile_uand_stack(
    circuit: Circuit, d: int, p: float, correction: str = "cleanup", generator: torch.Generator | None = None
) -> CompiledNetwork:
    """One U-AND block per layer of ``circuit``. Without correction each block reads the previous
    block's gates straight from its neurons, through their averaging read-outs; with
    ``correction="cleanup"`` an error-correction block between them writes h(read-out) of every
    gate (two ReLUs, docs/theory.md 2.2) onto its own direction, so the next block reads clean
    booleans. Layer t is read after its U-AND block, before any correction."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; valid: {', '.join(CORRECTIONS)}")
    blocks: list[ReLUBlock] = []
    readouts: list[Weight] = [Identity(circuit.n_inputs)]
    stream_of_layer, prev_read = [0], None
    boundary: list[torch.Tensor | None] = []
    feature_reads, reads_readout = [], []
    for t, gates in enumerate(circuit.layers):
        k = uand_fan_in(gates)
        reads_readout.append(prev_read is not None)
        block, readout, _, _, feature_read = _uand_block(gates, circuit.widths[t], prev_read, d, p, k, generator)
        feature_reads.append(feature_read)
        blocks.append(block)
        boundary.append(None)
        readouts.append(readout)
        stream_of_layer.append(len(blocks))
        dense = readout.dense()  # (m_t, hidden)
        if correction == "cleanup" and t + 1 < circuit.depth:
            m_t = dense.shape[0]
            blocks.append(ReLUBlock(
                compact(torch.cat([2 * dense, 2 * dense])),
                torch.cat([torch.full((m_t,), -0.5), torch.full((m_t,), -1.5)]),
                compact(torch.cat([torch.eye(m_t), -torch.eye(m_t)], dim=1))))
            # at a read of 1/2 the first ReLU is on and the second off: h's slope, 2
            boundary.append(torch.cat([torch.ones(m_t), torch.zeros(m_t)]))
            prev_read = None
        else:
            prev_read = dense
    name = f"u-and stack(d={d}, p={p:g}, correction={correction})"
    return UAndStack(name, circuit, Network(Identity(circuit.n_inputs), blocks), readouts, boundary,
                     stream_of_layer, feature_reads, reads_readout)


class UAndStack(CompiledNetwork):
    """U-AND blocks layer after layer (with correction blocks between them or not), with each
    U-AND block's (hidden, m_t) 0/1 matrix of which feature each neuron reads, and whether that
    block reads its features through the previous block's read-outs (no correction before it)
    or from their own directions."""

    def __init__(self, name: str, circuit: Circuit, network: Network, readouts: Sequence[Weight],
                 boundary: Sequence[torch.Tensor | None], stream_of_layer: list[int],
                 feature_reads: list[torch.Tensor], reads_readout: list[bool]) -> None:
        super().__init__(name, circuit, network, readouts, boundary=boundary, stream_of_layer=stream_of_layer)
        self.feature_reads = TensorList(feature_reads)
        self.reads_readout = reads_readout


@torch.no_grad()
def and_reads(net: UAndNetwork, x: torch.Tensor, subsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U-AND read-outs of arbitrary ANDs: for inputs x (B, m) and input subsets (B, P, k), the
    average of the neurons connected to every input of each subset (a U-AND layer can read any
    AND, not just the gates its circuit lists). Returns (reads, shared neuron counts)."""
    conn_t = input_neurons(net.connections)  # (m, d)
    d = conn_t.shape[1]
    neurons = net.network.streams(x)[1][:, :d]  # (B, d), pass-through neurons excluded
    shared = conn_t[subsets].all(dim=-2)  # (B, P, d)
    counts = shared.sum(-1)
    sums = torch.einsum("bpd,bd->bp", shared.to(neurons.dtype), neurons)
    return sums / counts.clamp(min=1), counts
