"""Block-structured ("ping-pong") computation in superposition: exact for one active circuit.

The D neurons of a layer form B = D/d blocks of d. Circuit t = (a, b), one of T = B^2, keeps its
state in block b at even layers and in block a at odd ones, so the weight block from b to a
(odd layers) or from a to b (even layers) belongs to circuit (a, b) alone: every weight entry
belongs to exactly one circuit. The input names the active circuit's two blocks by one-hots that
the network carries along (2 B extra neurons); each block neuron gets M times its block's one-hot
and a bias of -M, so every block but the live one is silenced (M exceeds any pre-activation) and
the live one computes its circuit exactly. With z >= 2 active circuits two blocks are live per
layer, and the weights that join one circuit's source block to the other's target block write
into it: the construction is for z = 1 only.

Small circuits are boolean, d - 1 gates and an on-indicator per layer, one ReLU each:
on: on;  AND(a, b): a + b - on;  BUF(a): a;  NOT(a): on - a  (no bias, so blocks need none).
The whole is a CompiledNetwork of ``cis_circuit(smalls)``: tracer, graph and twin take it as is.
Read-outs are linear, so an inactive circuit whose block is live at a layer (B - 1 of them) reads
the active circuit's values; only the input's one-hot tells them apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from circuits.cis import cis_circuit, small_circuits
from circuits.compile import CompiledNetwork
from circuits.spec import Circuit, CircuitError
from layers.network import Network, ReLUBlock
from layers.weights import Identity, Weight, sparse_weight

BLOCK_GATES = ("AND", "BUF", "NOT")


def gate_coefficients(small: Circuit, layer: int) -> torch.Tensor:
    """(d, d) coefficients of layer ``layer``'s pre-activations on the previous values, both in
    feature order (gates, then the on-indicator)."""
    g = small.n_inputs
    coef = torch.zeros(g + 1, g + 1)
    coef[g, g] = 1.0
    for k, gate in enumerate(small.layers[layer]):
        if gate.kind == "AND" and gate.fan_in == 2:
            coef[k, list(gate.inputs)] += 1.0
            coef[k, g] -= 1.0
        elif gate.kind == "BUF":
            coef[k, gate.inputs[0]] = 1.0
        elif gate.kind == "NOT":
            coef[k, g], coef[k, gate.inputs[0]] = 1.0, -1.0
        else:
            raise CircuitError(f"block small circuits use 2-input AND, BUF and NOT; got {gate.kind}")
    return coef


def block_of(t: torch.Tensor, layer: int, blocks: int) -> torch.Tensor:
    """The block holding circuit t = a B + b at ``layer``: b at even layers, a at odd ones."""
    return t % blocks if layer % 2 == 0 else t // blocks


def compile_block(smalls: list[Circuit], D: int) -> BlockNetwork:
    """The block-structured network for (D/d)^2 small circuits of d - 1 gates each."""
    g, L = smalls[0].n_inputs, smalls[0].depth
    d = g + 1
    if D % d or D < d:
        raise CircuitError(f"D={D} must be a positive multiple of the block width d={d}")
    B = D // d
    T = len(smalls)
    if T != B * B:
        raise CircuitError(f"block superposition holds exactly (D/d)^2 = {B * B} circuits, got {T}")
    coefs = torch.stack([torch.stack([gate_coefficients(s, layer) for layer in range(L)]) for s in smalls])  # (T,L,d,d)
    silence = 1.0 + float(coefs.abs().sum(3).max())  # above any pre-activation a silenced neuron can get
    width = D + 2 * B  # blocks, then the odd-layer one-hot, then the even-layer one-hot
    t = torch.arange(T)
    odd, even = D + t // B, D + B + t % B  # carrier neurons of each circuit's two blocks
    on = t * d + g
    # input: each circuit's values into its even-layer block; its on bit into both one-hots
    k = torch.arange(d)
    rows = torch.cat([(block_of(t, 0, B)[:, None] * d + k).reshape(-1), odd, even])
    cols = torch.cat([(t[:, None] * d + k).reshape(-1), on, on])
    embed = sparse_weight(rows, cols, torch.ones(len(rows)), (width, T * d))
    carriers = torch.arange(D, width)
    blocks = []
    for layer in range(1, L + 1):
        src, tgt = block_of(t, layer - 1, B), block_of(t, layer, B)
        c = coefs[:, layer - 1]  # (T, d_out, d_in)
        ti, i, j = torch.nonzero(c, as_tuple=True)
        gate_rows = (torch.arange(B)[:, None] * d + k).reshape(-1)
        # every block neuron reads the one-hot naming its block live at this layer
        gate_cols = (D + (0 if layer % 2 else B) + torch.arange(B)).repeat_interleave(d)
        read = sparse_weight(torch.cat([tgt[ti] * d + i, gate_rows, carriers]),
                             torch.cat([src[ti] * d + j, gate_cols, carriers]),
                             torch.cat([c[ti, i, j], torch.full((D,), silence), torch.ones(2 * B)]), (width, width))
        bias = torch.cat([torch.full((D,), -silence), torch.zeros(2 * B)])
        blocks.append(ReLUBlock(read, bias, Identity(width)))
    readouts = []
    for layer in range(L + 1):
        f = torch.arange(T * d)
        readouts.append(sparse_weight(f, block_of(f // d, layer, B) * d + f % d, torch.ones(T * d), (T * d, width)))
    return BlockNetwork(f"block(D={D}, d={d}, T={T})", cis_circuit(smalls), Network(embed, blocks), readouts,
                        B, silence)


class BlockNetwork(CompiledNetwork):
    """Block-structured circuits in superposition: ``block_count`` blocks of d neurons, and the
    bias that silences a block whose one-hot is off."""

    def __init__(self, name: str, circuit: Circuit, network: Network, readouts: Sequence[Weight],
                 block_count: int, silence: float) -> None:
        super().__init__(name, circuit, network, readouts)
        self.block_count, self.silence = block_count, silence


def block_circuits(D: int, d: int, L: int, generator: torch.Generator) -> list[Circuit]:
    """(D/d)^2 random small circuits of d - 1 gates (AND, BUF, NOT) and L layers."""
    if d < 2:
        raise CircuitError(f"d={d}: a small circuit needs at least one gate beside its on-indicator")
    B = D // d
    return small_circuits(B * B, d - 1, L, generator)
