"""Circuits in superposition, the earlier (2024) form (Bushnaq & Mendel 2024), kept as
``construction=2024`` beside the 2025 construction of ``circuits.cis2025``.

T small circuits, each d gates wide and L layers deep (AND, BUF, NOT), run inside one network of
D neurons per layer, with at most z of them active on an input. Each circuit also carries an
on-indicator (a BUF chain from an input that is 1 exactly when the circuit is active); every bias
of the circuit is multiplied by it and every NOT is read as "on and not a", so an inactive circuit
computes exactly 0. Each small neuron (d gates and the indicator, per layer) is spread over S large
neurons; a large neuron's pre-activation is the sum of those of the small neurons placed on it, and
a small neuron is read back as the average of its S large neurons.

Placement: the S (d + 1) large neurons of one circuit in one layer are distinct, and two circuits
share at most one large neuron per layer. Both follow from taking each circuit's neurons on a
line of the affine plane over Z_q (q prime, q^2 <= D): two lines meet in at most one point. Each
line of length q holds floor(q / (S (d + 1))) disjoint circuits, so T can reach
(q^2 + q) floor(q / (S (d + 1))); every layer draws its own lines and its own map of the q^2
points onto the D neurons.

The whole is one layered circuit of T (d + 1) features per layer (gates carry the on-gating
exactly: AND, BUF, ANDNOT(on, a)), so the tracer, the graph and the dedicated twin take it as
they take any compiled network.
"""

from __future__ import annotations

import math

import torch

from circuits.compile import CompiledNetwork
from circuits.designs import largest_prime_at_most
from circuits.gates import GATES, gate_pre
from circuits.generators import random_circuit
from circuits.spec import Circuit, CircuitError, GateArray
from layers.network import Network, ReLUBlock
from layers.tensor_list import TensorList
from layers.weights import Identity, Weight, compact, sparse_weight

SMALL_GATES = ("AND", "BUF", "NOT")


def _sparse(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), vals.float(), shape, check_invariants=True).coalesce()


def _plane_prime(D: int) -> int:
    """The prime q of the affine plane over Z_q whose q^2 points the D neurons hold."""
    q = largest_prime_at_most(math.isqrt(D))
    if q is None:
        raise CircuitError(f"D={D} holds no affine plane: it needs at least 4 neurons")
    return q


def plane_capacity(D: int, size: int) -> int:
    """How many circuits of ``size`` neurons per layer the 2024 placement fits in D (blocks of
    ``size`` points on each line of the affine plane), any two sharing at most one neuron; 0 when
    D holds no plane. (``circuits.designs.design_capacity`` is the 2025 placements' count.)"""
    if D < 4:
        return 0
    q = _plane_prime(D)
    return (q * q + q) * (q // size)


def line_design(D: int, size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, size) neuron indices in [0, D): rows distinct within, two rows share <= 1 neuron."""
    q = _plane_prime(D)
    per_line = q // size
    if per_line == 0 or count > (q * q + q) * per_line:
        raise CircuitError(
            f"D={D} holds at most {plane_capacity(D, size)} circuits of {size} neurons per layer "
            f"that share at most one neuron (affine plane over Z_{q}); asked for {count}")
    x = torch.arange(q)
    lines = [x * q + (a * x + b) % q for a in range(q) for b in range(q)]  # y = a x + b
    lines += [c * q + x for c in range(q)]  # x = c
    order = torch.randperm(len(lines), generator=generator)
    chunks = []
    for k in order.tolist():
        points = lines[k][torch.randperm(q, generator=generator)]
        chunks += [points[i * size:(i + 1) * size] for i in range(per_line)]
        if len(chunks) >= count:
            break
    neuron_of_point = torch.randperm(D, generator=generator)[: q * q]
    return neuron_of_point[torch.stack(chunks[:count])]


def small_circuits(T: int, d: int, L: int, generator: torch.Generator) -> list[Circuit]:
    """T random circuits d wide and L deep over AND, BUF and NOT."""
    return [random_circuit(d, L, d, 2, SMALL_GATES, generator) for _ in range(T)]


def cis_circuit(smalls: list[Circuit]) -> Circuit:
    """The layered circuit of all small circuits side by side, each with its on-indicator
    (feature d of its block of d + 1); NOT(a) becomes ANDNOT(on, a)."""
    d, L, T = smalls[0].n_inputs, smalls[0].depth, len(smalls)
    base = (torch.arange(T) * (d + 1))[:, None, None]
    on = base + d
    NOT, ANDNOT, BUF = (GATES.index(kind) for kind in ("NOT", "ANDNOT", "BUF"))
    layers = []
    for t in range(L):  # every circuit's gates at once, each followed by its indicator's BUF
        inputs = [small.layers[t].inputs for small in smalls]
        width = max(2, *(i.shape[1] for i in inputs))
        ins = torch.stack([torch.nn.functional.pad(i, (0, width - i.shape[1]), value=-1) for i in inputs])
        kinds = torch.stack([small.layers[t].kinds for small in smalls])  # (T, d)
        ins = torch.where(ins >= 0, ins + base, -1)
        is_not = (kinds == NOT)[:, :, None]
        # NOT(a) becomes ANDNOT(on, a)
        shifted = torch.cat([on.expand(T, d, 1), ins[:, :, :-1]], dim=2)
        ins = torch.where(is_not, shifted, ins)
        kinds = torch.where(kinds == NOT, ANDNOT, kinds)
        indicator = torch.cat([on, torch.full((T, 1, width - 1), -1)], dim=2)
        ins = torch.cat([ins, indicator], dim=1).reshape(T * (d + 1), width)
        kinds = torch.cat([kinds, torch.full((T, 1), BUF)], dim=1).reshape(-1)
        fan = int((ins >= 0).sum(dim=1).max())  # padded as GateArray.of_gates pads: to the largest fan-in
        layers.append(GateArray(kinds, ins[:, :fan]))
    return Circuit(T * (d + 1), layers)


class CiS2024Network(CompiledNetwork):
    """The 2024 construction, with per layer the placement of every small value on its S
    neurons (a sparse (width, D) 0/1 matrix) and the small circuits' incidences (width, width)."""

    def __init__(self, name: str, circuit: Circuit, network: Network, readouts: list[Weight],
                 placements: list[torch.Tensor], incidences: list[torch.Tensor], S: int, d: int) -> None:
        super().__init__(name, circuit, network, readouts)
        self.placements, self.incidences = TensorList(placements), TensorList(incidences)
        self.S, self.d = S, d


def compile_cis(smalls: list[Circuit], D: int, S: int, generator: torch.Generator) -> CiS2024Network:
    """The large network computing every small circuit, with read-outs averaging S neurons."""
    if not smalls:
        raise CircuitError("circuits in superposition needs at least one small circuit")
    d, L = smalls[0].n_inputs, smalls[0].depth
    if any(s.n_inputs != d or s.widths != [d] * (L + 1) for s in smalls):
        raise CircuitError("every small circuit must be d wide at every layer and equally deep")
    if any(g.kind not in SMALL_GATES for s in smalls for layer in s.layers for g in layer):
        raise CircuitError(f"small circuits use {', '.join(SMALL_GATES)} gates only")
    if S < 1 or D < 1:
        raise CircuitError(f"S and D must be positive, got S={S}, D={D}")
    big = cis_circuit(smalls)
    width, T = big.n_inputs, len(smalls)
    placements: list[torch.Tensor] = []
    incidences: list[torch.Tensor] = []
    readouts: list[Weight] = [Identity(width)]
    blocks: list[ReLUBlock] = []
    prev_read = None  # (width, n_prev) read-out of the previous layer's small values; None: the input
    for gates in big.layers:
        place = line_design(D, S * (d + 1), T, generator).reshape(width, S)
        assign = _sparse(torch.arange(width).repeat_interleave(S), place.reshape(-1),
                         torch.ones(width * S), (width, D))
        # small pre-activations from the previous layer's small values; biases ride on the indicator
        rows, cols, vals = [], [], []
        for f, gate in enumerate(gates):
            signs, bias = gate_pre(gate.kind, gate.fan_in)
            for j, sgn in zip(gate.inputs, signs):
                rows.append(f)
                cols.append(j)
                vals.append(sgn)
            if bias:
                rows.append(f)
                cols.append((f // (d + 1)) * (d + 1) + d)
                vals.append(bias)
        inc = _sparse(torch.tensor(rows), torch.tensor(cols), torch.tensor(vals), (width, width))
        small_pre = inc if prev_read is None else torch.sparse.mm(inc, prev_read)  # (width, n_prev)
        read = torch.sparse.mm(assign.t().coalesce(), small_pre)  # (D, n_prev)
        blocks.append(ReLUBlock(compact(read.to_dense()), torch.zeros(D), Identity(D)))
        placements.append(assign)
        incidences.append(inc)
        prev_read = (assign * (1.0 / S)).coalesce()
        r, c = prev_read.indices()
        readouts.append(sparse_weight(r, c, prev_read.values(), (width, D)))
    return CiS2024Network(f"cis(T={T}, D={D}, d={d}, S={S})", big, Network(Identity(width), blocks), readouts,
                          placements, incidences, S, d)
