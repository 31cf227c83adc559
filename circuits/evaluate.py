"""Exact evaluation of every gate of every layer, batched (no per-sample loop)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from circuits.gates import GATES, KINDS
from circuits.spec import Circuit, Gate, gate_arrays


class GateTable:
    """One layer's gates as tensors: input indices padded by repeating the first input
    (harmless for AND = min and OR = max) and, per gate kind present, which outputs it gives."""

    def __init__(self, gates: Sequence[Gate], device: torch.device | str = "cpu") -> None:
        kinds, inputs, _ = gate_arrays(gates)
        self.index = torch.where(inputs >= 0, inputs, inputs[:, :1]).to(device)
        kinds = kinds.to(device)
        present = torch.unique(kinds).tolist()
        self.only_buf = present == [GATES.index("BUF")]
        self.masks = [(KINDS[GATES[code]], kinds == code) for code in present]

    def __call__(self, prev: torch.Tensor) -> torch.Tensor:
        if self.only_buf:
            return prev.index_select(1, self.index[:, 0])
        vals = prev[:, self.index]  # (batch, gates, k)
        out = vals[..., 0]
        for kind, mask in self.masks:
            if kind.fixed_fan_in is None or kind.fixed_fan_in <= vals.shape[-1]:
                out = torch.where(mask, kind.value(vals), out)
        return out


class Evaluator:
    """Exact values of a circuit, with the gate tables built once per device."""

    def __init__(self, circuit: Circuit, device: torch.device | str = "cpu") -> None:
        self.circuit = circuit
        self.tables = [GateTable(layer, device) for layer in circuit.layers]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Values of every layer (layer 0 = x) as float 0/1 tensors of shape (batch, width)."""
        if x.dim() != 2 or x.shape[1] != self.circuit.n_inputs:
            raise ValueError(
                f"expected inputs of shape (batch, {self.circuit.n_inputs}), got {tuple(x.shape)}"
            )
        values = [x]
        for table in self.tables:
            values.append(table(values[-1]))
        return values


def evaluate(circuit: Circuit, x: torch.Tensor) -> list[torch.Tensor]:
    """Values of every layer of ``circuit`` for the batch ``x`` of 0/1 inputs."""
    return Evaluator(circuit, x.device)(x)


class SparseEvaluator:
    """Exact values of a circuit on sparse inputs, as on-pairs, never a (batch, width) tensor.

    Layer t's values are a (2, nnz) tensor of (sample, feature) pairs that are on. Works for
    circuits whose gates are off when all their inputs are off (AND, OR, BUF, ANDNOT: the on-set
    stays sparse); a NOT gate is refused."""

    def __init__(self, circuit: Circuit) -> None:
        self.circuit = circuit
        self.layers = []
        for t, layer in enumerate(circuit.layers, start=1):
            kinds, inputs, fan_in = gate_arrays(layer)
            dense = [GATES[c] for c in torch.unique(kinds).tolist() if KINDS[GATES[c]].on_from_bits is None]
            if dense:
                raise ValueError(f"layer {t} has {dense[0]} gates, which are on when their inputs are off: "
                                 "sparse evaluation needs gates that are off then")
            real = inputs >= 0
            gate = torch.arange(len(kinds))[:, None].expand_as(inputs)[real]
            slot = torch.arange(inputs.shape[1])[None, :].expand_as(inputs)[real]
            source = inputs[real]
            order = torch.argsort(source, stable=True)  # readers of each feature, contiguous
            first = torch.zeros(circuit.widths[t - 1] + 1, dtype=torch.int64)
            first[1:] = torch.bincount(source, minlength=circuit.widths[t - 1]).cumsum(0)
            self.layers.append((kinds, fan_in, first, gate[order], slot[order]))

    def __call__(self, on: torch.Tensor) -> list[torch.Tensor]:
        """On-pairs of every layer for inputs given by their on-pairs (2, nnz) of (sample,
        feature) (``Batch.pairs``)."""
        on = on.cpu()
        values = [on]
        for kinds, fan_in, first, reader_gate, reader_slot in self.layers:
            count = first[on[1] + 1] - first[on[1]]
            edge = torch.repeat_interleave(first[on[1]], count)
            edge += torch.arange(edge.numel()) - torch.repeat_interleave(count.cumsum(0) - count, count)
            gates = len(kinds)
            key = torch.repeat_interleave(on[0], count) * gates + reader_gate[edge]
            keys, inverse = torch.unique(key, return_inverse=True)
            # each (sample, gate) gets one bit per input that is on
            bits = torch.zeros(keys.numel(), dtype=torch.int64).index_add_(0, inverse, 1 << reader_slot[edge])
            g = keys % gates
            kind, k = kinds[g], fan_in[g]
            is_on = torch.zeros_like(bits, dtype=torch.bool)
            for code in torch.unique(kind).tolist():
                rule = KINDS[GATES[code]].on_from_bits
                assert rule is not None  # refused in __init__
                is_on = torch.where(kind == code, rule(bits, k), is_on)
            keys = keys[is_on]
            on = torch.stack([keys // gates, keys % gates])
            values.append(on)
        return values
