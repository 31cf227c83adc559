"""Exact evaluation of every gate of every layer, batched (no per-sample loop)."""

from __future__ import annotations

import torch

from circuits.spec import Circuit


class GateTable:
    """One layer's gates as tensors: input indices padded by repeating the first input
    (harmless for AND = min and OR = max) and the gate kind of each output."""

    def __init__(self, gates: list, device: torch.device | str = "cpu") -> None:
        k = max(g.fan_in for g in gates)
        self.index = torch.tensor(
            [list(g.inputs) + [g.inputs[0]] * (k - g.fan_in) for g in gates], device=device
        )
        kinds = [g.kind for g in gates]
        self.is_and = torch.tensor([kd == "AND" for kd in kinds], device=device)
        self.is_or = torch.tensor([kd == "OR" for kd in kinds], device=device)
        self.is_not = torch.tensor([kd == "NOT" for kd in kinds], device=device)
        self.is_andnot = torch.tensor([kd == "ANDNOT" for kd in kinds], device=device)
        self.only_buf = all(kd == "BUF" for kd in kinds)

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
