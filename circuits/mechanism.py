"""The true mechanism of a hand-built network: every weight split into the components that own
it, and which of them each input needs.

A component is a low-rank piece of one weight matrix (``layers.factors``) owned by one unit of
the circuit: a gate (its neurons' reads, or its write onto its direction), a feature (the path
that carries it: an embedding column, a read of it by the neurons of the next layer, its
read-out row) or a small circuit (circuits in superposition: everything the circuit's weights
put on its S x S neuron pairs). What no single unit owns is a named shared term (the capped
construction's mean weight, a block network's gating). Families and shared terms of a matrix
sum to the matrix exactly (to float rounding; ``check_sums``).

Which components an input needs, from the exact (dedicated) computation, by the family's rule:

- ``gate``: gate c's reads are needed when the gate's value differs from its value with all its
  inputs removed (ablating them leaves the neurons at their biases);
- ``value``: a write or read-out of unit c is needed when unit c's exact value is not 0;
- ``path``: feature c's path is needed when setting the feature to 0 changes a gate of the next
  layer (at the last layer: when the feature is not 0);
- ``circuit``: a small circuit's components are needed when the circuit is active.

Matrices are named as the exported model names them: ``embed``, ``blocks.{t}.read``,
``blocks.{t}.write``, ``readouts.{t}``; identity matrices are wiring and have no components.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from circuits.block import BlockNetwork
from circuits.cis import CiS2024Network
from circuits.cis2025 import CiS2025, CiS2025Network
from circuits.compile import CompiledNetwork
from circuits.correction import CorrectedRelay
from circuits.evaluate import Evaluator, GateTable
from circuits.spec import Circuit
from circuits.uand import UAndNetwork, UAndStack
from layers.factors import Factors, SharedTerm
from layers.network import Network
from layers.pattern_blocks import PatternBlocks
from layers.weights import Dense, Identity, Sparse, Weight

RULES = ("gate", "value", "path", "circuit")


@dataclass
class Family:
    """Components of one matrix, component c owned by ``unit`` c of circuit layer ``layer``."""

    name: str
    unit: str  # "gate", "feature" or "circuit"
    layer: int
    rule: str  # one of RULES
    factors: Factors
    on_index: torch.Tensor | None = None  # rule "circuit": the layer-0 feature that marks circuit c on

    def describe(self) -> dict:
        return {"name": self.name, "unit": self.unit, "layer": self.layer, "rule": self.rule,
                "count": self.factors.count, "rank": self.factors.rank}


@dataclass
class MatrixTruth:
    key: str
    shape: tuple[int, int]
    families: list[Family]
    shared: list[SharedTerm] = field(default_factory=list)


@dataclass
class Mechanism:
    matrices: list[MatrixTruth]
    wiring: list[str]  # identity matrices: no parameters, no components

    def matrix(self, key: str) -> MatrixTruth:
        for m in self.matrices:
            if m.key == key:
                return m
        raise KeyError(key)


def _entries(weight: Weight) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, cols, values) of a weight's non-zero entries (dense, sparse, or block by block)."""
    if isinstance(weight, PatternBlocks):
        weight = weight.stored()
    if isinstance(weight, Sparse):
        rows, cols, values = weight.entries()
        keep = values != 0
        return rows[keep], cols[keep], values[keep]
    if isinstance(weight, Dense):
        matrix = weight.matrix.detach()
        rows, cols = torch.nonzero(matrix, as_tuple=True)
        return rows, cols, matrix[rows, cols]
    raise TypeError(f"no entries for a {type(weight).__name__} weight")


def by_rows(weight: Weight, owner: torch.Tensor, count: int) -> Factors:
    """Components owning whole rows: row i belongs to component owner[i]."""
    rows, cols, values = _entries(weight)
    return Factors.from_entries(rows, cols, values, owner[rows], count, weight.shape)


def by_cols(weight: Weight, owner: torch.Tensor, count: int) -> Factors:
    """Components owning whole columns: column j belongs to component owner[j]."""
    rows, cols, values = _entries(weight)
    return Factors.from_entries(rows, cols, values, owner[cols], count, weight.shape)


def outer(left: torch.Tensor, right: torch.Tensor, shape: tuple[int, int]) -> Factors:
    """Rank-one components c = left[:, c] right[c, :] (left (out, C), right (C, in), sparse or
    dense), each on the support of its two vectors."""
    def support(matrix: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        m = matrix.to_dense() if matrix.layout != torch.strided else matrix
        m = m if dim == 0 else m.T  # (C, size): one vector per component
        comp, index = torch.nonzero(m, as_tuple=True)
        count = torch.bincount(comp, minlength=m.shape[0])
        width = max(1, int(count.max())) if comp.numel() else 1
        position = torch.arange(comp.numel()) - (torch.cumsum(count, 0) - count)[comp]
        idx = torch.zeros(m.shape[0], width, dtype=torch.int64).index_put_((comp, position), index)
        val = torch.zeros(m.shape[0], width).index_put_((comp, position), m[comp, index].float())
        return idx, val, width

    rows, lvals, _ = support(left, 1)
    cols, rvals, _ = support(right, 0)
    return Factors(rows, lvals[:, :, None], rvals[:, None, :], cols, shape)


def _readouts(net: CompiledNetwork) -> tuple[list[MatrixTruth], list[str]]:
    """Each read-out row is the path of its feature (rule ``value``)."""
    found, wiring = [], []
    for t, readout in enumerate(net.readouts):
        key = f"readouts.{t}"
        if isinstance(readout, Identity):
            wiring.append(key)
            continue
        m_t = readout.shape[0]
        found.append(MatrixTruth(key, readout.shape, [Family("features", "feature", t, "value",
                                                             by_rows(readout, torch.arange(m_t), m_t))]))
    return found, wiring


def _embed(network: Network, rule: str = "path") -> tuple[list[MatrixTruth], list[str]]:
    embed = network.embed
    if isinstance(embed, Identity):
        return [], ["embed"]
    m = embed.shape[1]
    return [MatrixTruth("embed", embed.shape, [Family("features", "feature", 0, rule,
                                                      by_cols(embed, torch.arange(m), m))])], []


def _gate_network(net: CompiledNetwork) -> Mechanism:
    """Compiled gate by gate (``circuits.compile``): each neuron belongs to one gate."""
    assert net.neuron_gates is not None
    matrices, wiring = _embed(net.network)
    for t, block in enumerate(net.network.relu_blocks()):
        owner = net.neuron_gates[t]
        assert owner is not None
        gates = net.circuit.widths[t + 1]
        for part, weight in (("read", block.read), ("write", block.write)):
            key = f"blocks.{t}.{part}"
            if isinstance(weight, Identity):
                wiring.append(key)
                continue
            factors = by_rows(weight, owner, gates) if part == "read" else by_cols(weight, owner, gates)
            matrices.append(MatrixTruth(key, weight.shape, [Family("gates", "gate", t + 1,
                                                                   "gate" if part == "read" else "value", factors)]))
    reads, more = _readouts(net)
    return Mechanism(matrices + reads, wiring + more)


def _uand_feature_read(net: UAndNetwork) -> torch.Tensor:
    """(hidden, m) 0/1: which input each neuron reads (its connections, then the pass-throughs)."""
    d, m = net.connections.shape
    hidden = net.network.relu_blocks()[0].hidden
    conn = net.connections.coalesce()
    index = conn.indices()
    if hidden > d:
        index = torch.cat([index, torch.arange(m).expand(2, m) + torch.tensor([[d], [0]])], dim=1)
    return torch.sparse_coo_tensor(index, torch.ones(index.shape[1]), (hidden, m), check_invariants=True).coalesce()


def _uand(net: UAndNetwork) -> Mechanism:
    """One U-AND layer: the read splits by input feature (the neurons it reaches, times its
    direction); the read-out rows are the gates' averages."""
    matrices, wiring = _embed(net.network)
    block = net.network.relu_blocks()[0]
    feature_read = _uand_feature_read(net)
    embed = net.network.embed
    directions = embed.dense().T if not isinstance(embed, Identity) else torch.eye(embed.shape[0])
    matrices.append(MatrixTruth("blocks.0.read", block.read.shape, [Family(
        "features", "feature", 0, "path", outer(feature_read, directions, block.read.shape))]))
    wiring.append("blocks.0.write")
    reads, more = _readouts(net)
    return Mechanism(matrices + reads, wiring + more)


def _uand_stack(net: UAndStack) -> Mechanism:
    """U-AND blocks (read split by feature path) and correction blocks (each feature's two
    step neurons: reads and writes by feature)."""
    matrices, wiring = [], ["embed"]
    blocks = net.network.relu_blocks()
    for t in range(net.circuit.depth):
        b = net.stream_of_layer[t + 1] - 1  # the U-AND block computing layer t + 1
        feature_read = net.feature_reads[t]
        assert feature_read is not None
        m_t = feature_read.shape[1]
        through = net.readouts[t].dense() if net.reads_readout[t] else torch.eye(m_t)
        read = blocks[b].read
        matrices.append(MatrixTruth(f"blocks.{b}.read", read.shape, [Family(
            "features", "feature", t, "path", outer(feature_read, through, read.shape))]))
        wiring.append(f"blocks.{b}.write")
        if t + 1 < net.circuit.depth and net.stream_of_layer[t + 2] - 1 == b + 2:
            c = b + 1  # a correction block after layer t + 1: two neurons per feature
            corr = blocks[c]
            m_next = net.circuit.widths[t + 1]
            neuron_owner = torch.arange(2 * m_next) % m_next
            matrices.append(MatrixTruth(f"blocks.{c}.read", corr.read.shape, [Family(
                "features", "feature", t + 1, "value", by_rows(corr.read, neuron_owner, m_next))]))
            matrices.append(MatrixTruth(f"blocks.{c}.write", corr.write.shape, [Family(
                "features", "feature", t + 1, "value", by_cols(corr.write, neuron_owner, m_next))]))
    reads, more = _readouts(net)
    return Mechanism(matrices + reads, wiring + more)


def _cis2024(net: CiS2024Network) -> Mechanism:
    """The 2024 construction: block t's read is, per small circuit, its placement times its
    incidences times the previous layer's averaging read of its values (rank <= d + 1)."""
    matrices, wiring = [], ["embed"]
    width = net.circuit.n_inputs
    T = width // (net.d + 1)
    circuit_of = torch.arange(width) // (net.d + 1)
    on_index = torch.arange(T) * (net.d + 1) + net.d
    for t, block in enumerate(net.network.relu_blocks()):
        assign, inc = net.placements[t], net.incidences[t]
        assert assign is not None and inc is not None
        D = assign.shape[1]
        neuron, feature = assign.coalesce().indices()[1], assign.coalesce().indices()[0]
        lifted = torch.sparse_coo_tensor(torch.stack([circuit_of[feature] * D + neuron, feature]),
                                         torch.ones(feature.numel()), (T * D, width), check_invariants=True).coalesce()
        product = torch.sparse.mm(lifted, inc.coalesce())
        if t > 0:
            prev = net.readouts[t]
            product = torch.sparse.mm(product, prev.dense().to_sparse())
        product = product.coalesce()
        (row, col), values = product.indices(), product.values()
        keep = values != 0
        factors = Factors.from_entries(row[keep] % D, col[keep], values[keep], row[keep] // D, T, block.read.shape)
        matrices.append(MatrixTruth(f"blocks.{t}.read", block.read.shape,
                                    [Family("circuits", "circuit", t + 1, "circuit", factors, on_index)]))
        wiring.append(f"blocks.{t}.write")
    reads, more = _readouts(net)
    return Mechanism(matrices + reads, wiring + more)


def cis2025_blocks(cis: CiS2025, on_index: torch.Tensor) -> tuple[list[MatrixTruth], list[str]]:
    """The 2025 construction's blocks: the first layer by circuit (its input columns); every
    later layer as each circuit's rank-d piece (1/S)(w_t - wbar) on its S x S neuron pairs, plus
    the capped form's mean weight as a shared term (wbar (1/S + chi) on the linked pairs and
    -chi wbar everywhere, the rank-d part)."""
    small, S, n = cis.small, cis.S, cis.n
    T, d = small.T, small.d
    blocks = cis.network.relu_blocks()
    first = blocks[0].read
    matrices = [MatrixTruth("blocks.0.read", first.shape, [Family(
        "circuits", "circuit", 1, "circuit", by_cols(first, torch.arange(T * d) // d, T), on_index)])]
    wiring = ["blocks.0.write"]
    i = torch.arange(d)
    for layer in range(1, small.L):
        weight = blocks[layer].read
        rows_p, cols_p = cis.patterns[layer].cpu(), cis.patterns[layer - 1].cpu()
        w = small.weights[layer].float()
        mean = w.mean(dim=0) if cis.form == "capped" else torch.zeros(d, d)
        rows = (i[None, :, None] * n + rows_p[:, None, :]).reshape(T, d * S)
        cols = (i[None, :, None] * n + cols_p[:, None, :]).reshape(T, d * S)
        left = ((w - mean) / S)[:, :, None, :].expand(T, d, S, d).reshape(T, d * S, d)
        right = torch.eye(d)[:, :, None].expand(d, d, S).reshape(1, d, d * S).expand(T, -1, -1)
        shared = []
        if cis.form == "capped":
            chi = cis.chi[layer - 1]
            linked = torch.unique((rows_p[:, :, None] * n + cols_p[:, None, :]).reshape(-1))
            gi, gj, c = (t.reshape(-1) for t in torch.meshgrid(i, i, torch.arange(linked.numel()), indexing="ij"))
            low_left = low_right = None
            if chi:
                low_left = torch.zeros(d * n, d)
                low_left[torch.arange(d * n), torch.arange(d * n) // n] = 1.0
                low_right = (-chi * mean).repeat_interleave(n, dim=1)
            shared.append(SharedTerm("capped mean weight", gi * n + linked[c] // n, gj * n + linked[c] % n,
                                     (mean * (1.0 / S + chi))[gi, gj], weight.shape, low_left, low_right))
        factors = Factors(rows, left.contiguous(), right.contiguous(), cols, weight.shape)
        matrices.append(MatrixTruth(f"blocks.{layer}.read", weight.shape,
                                    [Family("circuits", "circuit", layer + 1, "circuit", factors, on_index)], shared))
        wiring.append(f"blocks.{layer}.write")
    return matrices, wiring


def _cis2025(net: CiS2025Network | CorrectedRelay) -> Mechanism:
    T = net.cis.small.T
    if isinstance(net, CorrectedRelay):
        on_index = torch.arange(T)  # circuit t carries feature t
    else:
        g = net.circuit.n_inputs // T - 1
        on_index = torch.arange(T) * (g + 1) + g
    embed, wiring = _embed(net.network)
    blocks, more = cis2025_blocks(net.cis, on_index)
    reads, last = _readouts(net)
    return Mechanism(embed + blocks + reads, wiring + more + last)


def _block(net: BlockNetwork) -> Mechanism:
    """Block-structured: each circuit's coefficients on its (target, source) block pair (one
    pair per circuit), the gating of every block by its one-hot and the one-hot carriers shared."""
    matrices, wiring = _embed(net.network)
    B = net.block_count
    width = net.circuit.n_inputs
    d = width // (B * B)
    D = B * d
    on_index = torch.arange(B * B) * d + d - 1
    for t, block in enumerate(net.network.relu_blocks()):
        layer = t + 1
        rows, cols, values = _entries(block.read)
        own = (rows < D) & (cols < D)
        gating = (rows < D) & (cols >= D)
        target, source = rows // d, cols // d
        circuit = target * B + source if layer % 2 else source * B + target
        factors = Factors.from_entries(rows[own], cols[own], values[own], circuit[own], B * B, block.read.shape)
        shared = [SharedTerm("block gating", rows[gating], cols[gating], values[gating], block.read.shape),
                  SharedTerm("one-hot carriers", rows[rows >= D], cols[rows >= D], values[rows >= D], block.read.shape)]
        matrices.append(MatrixTruth(f"blocks.{t}.read", block.read.shape,
                                    [Family("circuits", "circuit", layer, "circuit", factors, on_index)], shared))
        wiring.append(f"blocks.{t}.write")
    reads, more = _readouts(net)
    return Mechanism(matrices + reads, wiring + more)


def mechanism(net: CompiledNetwork) -> Mechanism | None:
    """The true components of a hand-built network; None for a trained one (its mechanism is
    whatever training found, not known by construction)."""
    if isinstance(net, CiS2025Network | CorrectedRelay):
        return _cis2025(net)
    if isinstance(net, CiS2024Network):
        return _cis2024(net)
    if isinstance(net, BlockNetwork):
        return _block(net)
    if isinstance(net, UAndNetwork):
        return _uand(net)
    if isinstance(net, UAndStack):
        return _uand_stack(net)
    if net.neuron_gates is not None:
        return _gate_network(net)
    return None


def weights_of(network: Network, readouts: list[Weight]) -> dict[str, Weight]:
    """Every matrix of a network and its read-outs, by the names components use."""
    found: dict[str, Weight] = {"embed": network.embed}
    for t, block in enumerate(network.relu_blocks()):
        found[f"blocks.{t}.read"], found[f"blocks.{t}.write"] = block.read, block.write
    for t, readout in enumerate(readouts):
        found[f"readouts.{t}"] = readout
    return found


@torch.no_grad()
def check_sums(mech: Mechanism, weights: dict[str, Weight], generator: torch.Generator,
               probes: int = 4) -> float:
    """The largest relative difference, over every matrix, between W x and the sum of its
    components and shared terms applied to x, for a few random x (never a dense W)."""
    worst = 0.0
    for m in mech.matrices:
        weight = weights[m.key]
        x = torch.randn(probes, m.shape[1], generator=generator)
        want = weight(x)
        got = sum((f.factors.apply(x) for f in m.families), torch.zeros_like(want))
        got = got + sum((s.apply(x) for s in m.shared), torch.zeros_like(want))
        scale = float(want.abs().max()) or 1.0
        worst = max(worst, float((got - want).abs().max()) / scale)
    return worst


# ---- which components an input needs -----------------------------------------------------------

def _path_active(table: GateTable, prev: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    """(batch, m) whether zeroing each feature of ``prev`` changes a gate of the next layer; one
    re-evaluation per non-zero feature rank (inputs are sparse)."""
    active = torch.zeros_like(prev, dtype=torch.bool)
    nonzero = prev != 0
    counts = nonzero.sum(dim=1)
    if not prev.shape[0] or not int(counts.max()):
        return active
    order = nonzero.to(torch.int8).argsort(dim=1, descending=True, stable=True)
    rows = torch.arange(prev.shape[0])
    x = prev.clone()
    for k in range(int(counts.max())):
        j = order[:, k]
        has = counts > k
        kept = x[rows, j].clone()
        x[rows[has], j[has]] = 0.0
        changed = (table(x) != nxt).any(dim=1) & has
        active[rows, j] |= changed
        x[rows, j] = kept
    return active


def activity(mech: Mechanism, circuit: Circuit, values: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per matrix and family ("KEY/FAMILY"), a (batch, C) bool: the components each input needs,
    given the exact values of every layer."""
    tables = Evaluator(circuit).tables
    cache: dict[tuple[str, int], torch.Tensor] = {}

    def rule(r: str, layer: int, on_index: torch.Tensor | None) -> torch.Tensor:
        if (r, layer) in cache:
            return cache[(r, layer)]
        if r == "value":
            out = values[layer] != 0
        elif r == "gate":
            at_zero = tables[layer - 1](torch.zeros(1, values[layer - 1].shape[1]))
            out = values[layer] != at_zero
        elif r == "path":
            out = (values[layer] != 0 if layer == circuit.depth
                   else _path_active(tables[layer], values[layer], values[layer + 1]))
        else:
            assert on_index is not None
            out = values[0][:, on_index] != 0
        cache[(r, layer)] = out
        return out

    return {f"{m.key}/{f.name}": rule(f.rule, f.layer, f.on_index) for m in mech.matrices for f in m.families}


Sampler = Callable[[int, torch.Generator], torch.Tensor]
