"""The gate kinds, decided here alone: for each, its fan-in rule, its pre-activation, the neurons
that compute it from that pre-activation, and its truth.

Every gate has a pre-activation z, a signed sum of its inputs plus a bias, that is 1 when the
gate is on and at most 0 when it is off (so it decides at z = 1/2):
    AND: z = sum - (k - 1)   OR: z = sum   BUF: z = a   NOT: z = 1 - a   ANDNOT(a, b): z = a - b
Its neurons (without clean-up): AND and ANDNOT ReLU(z); OR ReLU(z) - ReLU(z - 1); BUF and NOT z
(linear). Each neuron is (scale, offset, is ReLU, output coefficient): the neuron's own
pre-activation is scale * z + offset and the gate's output sums coefficient times the neurons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Neuron = tuple[float, float, bool, float]


@dataclass(frozen=True)
class GateKind:
    name: str
    fixed_fan_in: int | None  # None: any number of inputs >= 2
    signs: Callable[[int], tuple[float, ...]]  # sign of each input in z, for a fan-in
    bias: Callable[[int], float]  # z's bias, for a fan-in
    neurons: tuple[Neuron, ...]
    # the gate's value from its inputs' values (..., k), padded by repeating the first input
    value: Callable[[torch.Tensor], torch.Tensor]
    # on-sets of sparse inputs: whether the gate is on, from the bit mask of its inputs that are on
    # and its fan-in (None: the gate is on when its inputs are off, so on-sets do not stay sparse)
    on_from_bits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None

    def check_fan_in(self, fan_in: int) -> str | None:
        """Why a gate of this kind cannot have ``fan_in`` inputs (None: it can)."""
        if self.fixed_fan_in is None:
            return None if fan_in >= 2 else f"{self.name} needs fan-in >= 2, got {fan_in}"
        if fan_in != self.fixed_fan_in:
            what = "one input" if self.fixed_fan_in == 1 else "two inputs (a and not b)"
            return f"{self.name} takes exactly {what}, got {fan_in}"
        return None

    def truth(self, inputs: tuple[bool, ...]) -> bool:
        """The gate's value on one assignment of its inputs (for truth tables)."""
        return bool(self.value(torch.tensor([[float(v) for v in inputs]]))[0] > 0.5)


_RELU: tuple[Neuron, ...] = ((1.0, 0.0, True, 1.0),)
_LINEAR: tuple[Neuron, ...] = ((1.0, 0.0, False, 1.0),)

KINDS: dict[str, GateKind] = {
    kind.name: kind
    for kind in (
        GateKind("AND", None, lambda k: (1.0,) * k, lambda k: -(k - 1.0), _RELU,
                 lambda v: v.amin(-1), lambda bits, k: bits == (1 << k) - 1),
        GateKind("OR", None, lambda k: (1.0,) * k, lambda k: 0.0,
                 ((1.0, 0.0, True, 1.0), (1.0, -1.0, True, -1.0)), lambda v: v.amax(-1), lambda bits, k: bits > 0),
        GateKind("BUF", 1, lambda k: (1.0,), lambda k: 0.0, _LINEAR, lambda v: v[..., 0], lambda bits, k: bits > 0),
        GateKind("NOT", 1, lambda k: (-1.0,), lambda k: 1.0, _LINEAR, lambda v: 1.0 - v[..., 0], None),
        GateKind("ANDNOT", 2, lambda k: (1.0, -1.0), lambda k: 0.0, _RELU,
                 lambda v: torch.minimum(v[..., 0], 1.0 - v[..., 1]), lambda bits, k: bits == 1),
    )
}
GATES = tuple(KINDS)


def fan_in_of(kind: str, fan_in: int) -> int:
    """How many inputs a gate of ``kind`` reads when AND / OR are given ``fan_in``."""
    fixed = KINDS[kind.upper()].fixed_fan_in
    return fan_in if fixed is None else fixed


def gate_pre(kind: str, fan_in: int) -> tuple[tuple[float, ...], float]:
    """(sign of each input, bias) of the gate's pre-activation z."""
    gate = KINDS[kind]
    return gate.signs(fan_in), gate.bias(fan_in)
