"""Exact evaluation of every gate of every layer, batched (no per-sample loop)."""

from __future__ import annotations

import torch

from circuits.spec import GATES, Circuit, gate_arrays


class GateTable:
    """One layer's gates as tensors: input indices padded by repeating the first input
    (harmless for AND = min and OR = max) and the gate kind of each output."""

    def __init__(self, gates, device: torch.device | str = "cpu") -> None:
        kinds, inputs, _ = gate_arrays(gates)
        self.index = torch.where(inputs >= 0, inputs, inputs[:, :1]).to(device)
        kinds = kinds.to(device)
        self.is_and = kinds == GATES.index("AND")
        self.is_or = kinds == GATES.index("OR")
        self.is_not = kinds == GATES.index("NOT")
        self.is_andnot = kinds == GATES.index("ANDNOT")
        self.only_buf = bool((kinds == GATES.index("BUF")).all())

    def __call__(self, prev: torch.Tensor) -> torch.Tensor:
        if self.only_buf:
            return prev.index_select(1, self.index[:, 0])
        vals = prev[:, self.index]  # (batch, gates, k)
        first = vals[..., 0]
        out = torch.where(self.is_not, 1.0 - first, first)
        out = torch.where(self.is_and, vals.amin(-1), out)
        out = torch.where(self.is_or, vals.amax(-1), out)
        if vals.shape[-1] > 1:
            out = torch.where(self.is_andnot, torch.minimum(vals[..., 0], 1.0 - vals[..., 1]), out)
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
            if bool((kinds == GATES.index("NOT")).any()):
                raise ValueError(f"layer {t} has NOT gates, which are on when their inputs are off: "
                                 "sparse evaluation needs gates that are off then")
            real = inputs >= 0
            gate = torch.arange(len(kinds))[:, None].expand_as(inputs)[real]
            slot = torch.arange(inputs.shape[1])[None, :].expand_as(inputs)[real]
            source = inputs[real]
            order = torch.argsort(source, stable=True)  # readers of each feature, contiguous
            first = torch.zeros(circuit.widths[t - 1] + 1, dtype=torch.int64)
            first[1:] = torch.bincount(source, minlength=circuit.widths[t - 1]).cumsum(0)
            self.layers.append((kinds, fan_in, first, gate[order], slot[order]))

    def __call__(self, active: torch.Tensor) -> list[torch.Tensor]:
        """On-pairs of every layer for inputs given by their (batch, l) active indices."""
        batch, l = active.shape
        sample = torch.arange(batch)[:, None].expand(batch, l).reshape(-1)
        on = torch.stack([sample, active.reshape(-1).cpu()])
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
            kind = kinds[g]
            full = bits == (1 << fan_in[g]) - 1
            is_on = torch.where(kind == GATES.index("AND"), full, bits > 0)
            is_on &= torch.where(kind == GATES.index("ANDNOT"), bits == 1, torch.ones_like(is_on))
            keys = keys[is_on]
            on = torch.stack([keys // gates, keys % gates])
            values.append(on)
        return values
