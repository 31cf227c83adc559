"""Circuit generators: random layered circuits, the relay, all-pairs AND, small named examples."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch

from circuits.gates import GATES, KINDS, fan_in_of
from circuits.spec import Circuit, CircuitError, Gate, GateArray
from layers.embeddings import draw_seed
from layers.philox import CounterStream, check_draws

ANDNOT = GATES.index("ANDNOT")


def random_circuit(
    m: int,
    layers: int,
    width: int,
    fan_in: int,
    gates: Sequence[str] = ("AND", "OR"),
    generator: torch.Generator | None = None,
    draws: str = "torch",
) -> Circuit:
    """Each gate picks its kind uniformly from ``gates`` and reads distinct random features of
    the previous layer (``fan_in`` of them for AND / OR, two for ANDNOT, one for BUF / NOT).
    With counter draws, gate i of layer t is row (t, i) of a stream keyed by a seed drawn from
    ``generator``: any gate's wiring can be made without the others."""
    kinds = [kind.upper() for kind in gates]
    unknown = [kind for kind in kinds if kind not in GATES]
    if unknown or not kinds:
        raise CircuitError(f"unknown gate {unknown[0] if unknown else ''!r}; valid: {', '.join(GATES)}")
    if any(KINDS[k].fixed_fan_in is None for k in kinds) and fan_in < 2:
        raise CircuitError(f"fan_in must be >= 2 for AND / OR, got {fan_in}")
    need = max(fan_in_of(k, fan_in) for k in kinds)
    codes = torch.tensor([GATES.index(kind) for kind in kinds])
    fans = torch.tensor([fan_in_of(kind, fan_in) for kind in kinds])
    check_draws(draws)
    stream = CounterStream(draw_seed(generator), "random-circuit") if draws == "counter" else None
    built, prev = [], m
    for t in range(1, layers + 1):
        if need > prev:
            raise CircuitError(f"fan_in={need} exceeds the {prev} features of layer {t - 1}")
        if stream is not None:  # kind, a need-subset, then a random order of it (ANDNOT reads in order)
            rows = torch.arange(width) + (t << 32)
            picks = stream.below(rows, 1, len(kinds))[:, 0]
            subset = stream.subsets(rows, prev, need, stream=1)
            order = subset.gather(1, stream.bits(rows, need, stream=2).argsort(dim=1))
        else:
            picks = torch.randint(0, len(kinds), (width,), generator=generator)
            # distinct features per gate: the first columns of a random permutation per row.
            order = torch.rand(width, prev, generator=generator).argsort(dim=1)[:, :need]
        built.append(_gate_array(codes[picks], fans[picks], order))
        prev = width
    return Circuit(m, built)


def _gate_array(codes: torch.Tensor, fans: torch.Tensor, order: torch.Tensor) -> GateArray:
    """Gate i of kind codes[i] reading the first fans[i] inputs of order[i], sorted but for ANDNOT
    (whose inputs are ordered), padded with -1 to the layer's largest fan-in: the array
    ``GateArray.of_gates`` would make of the same gates."""
    used = torch.arange(order.shape[1])[None, :] < fans[:, None]
    big = torch.iinfo(torch.int64).max  # unused columns sort last
    ordered = torch.where(used, order, big).sort(dim=1).values
    inputs = torch.where((codes == ANDNOT)[:, None], order, ordered)
    inputs = torch.where(used, inputs, -1)[:, : int(fans.max())]
    return GateArray(codes, inputs)


def relay(m: int, layers: int, generator: torch.Generator | None = None, draws: str = "torch") -> Circuit:
    """Each layer copies the previous one's features through BUF gates in a random order (with
    counter draws, layer t's order is row t of a stream keyed by a seed drawn from ``generator``)."""
    check_draws(draws)
    if draws == "counter":
        stream = CounterStream(draw_seed(generator), "relay")
        orders = [stream.permutations(torch.tensor([t]), m)[0] for t in range(layers)]
    else:
        orders = [torch.randperm(m, generator=generator) for _ in range(layers)]
    # held as tensors: a relay of a million features costs no Python object per gate
    return Circuit(m, [GateArray.of_kind("BUF", order[:, None]) for order in orders])


def all_pairs_and(m: int) -> Circuit:
    """One layer holding AND(i, j) for every pair i < j of the m inputs."""
    return Circuit(m, [[Gate("AND", pair) for pair in combinations(range(m), 2)]])


def xor_circuit() -> Circuit:
    """XOR(a, b) = AND(OR(a, b), NOT(AND(a, b))), layered with a BUF."""
    return Circuit(
        2,
        [
            [Gate("OR", (0, 1)), Gate("AND", (0, 1))],
            [Gate("BUF", (0,)), Gate("NOT", (1,))],
            [Gate("AND", (0, 1))],
        ],
    )


def copy_relay(k: int, layers: int, generator: torch.Generator | None = None) -> Circuit:
    """k features carried as two copies each (features 2i and 2i + 1); every layer computes
    AND(copy, copy) of a randomly permuted feature, twice. The AND of a feature with its copy is
    the feature, so activity stays fixed while every layer is a genuine layer of ANDs (only the
    cases 11 and 00 occur): the test bed for stacking U-AND layers."""
    return Circuit(
        2 * k,
        [
            [Gate("AND", (2 * src, 2 * src + 1)) for src in torch.randperm(k, generator=generator).tolist()
             for _ in range(2)]
            for _ in range(layers)
        ],
    )
