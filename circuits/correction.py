"""Error correction in superposition: m boolean features carried through L layers by D neurons
per layer, D smaller than m, every layer reading and rewriting all of them.

Each feature is a small circuit of the 2025 construction (``circuits.cis2025``): an S-hot
pattern over the n = D / d neurons of each of d groups, two features sharing at most one neuron,
a new pattern order per layer, read as the average of its S copies, (1/S) <e_t|. Two forms:

- ``step`` (a thresholded reset): a feature is a two-ReLU step pair, h(z) = ReLU(2z - 0.5) -
  ReLU(2z - 1.5), value = difference of the pair (d = 2). Each layer re-binarises every copy:
  a copy's pre-activation is the average read of the features sharing its neuron, so an off
  feature's copy stays 0 unless the reads it shares add past 1/4, and an on one saturates at 1
  whatever else is on its neurons. The correction neurons are the network's neurons: D = 2n.
- ``linear`` (a linear read-out, the averaging read of Universal-AND as a copy, k = 1): one
  ReLU per copy, no bias (d = 1), so every value is passed on as read; capped weights (the mean
  weight through one matrix with -chi off the linked pairs) centre what leaks across features.

The dedicated twin spends one ReLU per feature per layer (m) and is exact. Error laws: see
``circuits.theory.correction_*`` and docs/theory.md section 7.
"""

from __future__ import annotations

import torch

from circuits.cis2025 import CiS2025, build_cis2025
from circuits.compile import CompiledNetwork
from circuits.designs import design_capacity
from circuits.small import STEP_BIAS, STEP_ON, STEP_SCALE, SmallCircuits
from circuits.spec import Circuit, CircuitError, GateArray
from layers.network import Network
from layers.weights import sparse_weight

FORMS = ("step", "linear")
WIDTH = {"step": 2, "linear": 1}  # small neurons per feature


def relay_circuits(T: int, L: int, form: str) -> SmallCircuits:
    """T features as small circuits that copy themselves through L layers."""
    if form == "step":  # both neurons of the pair get 2 (a_0 - a_1): the value read, doubled
        w = STEP_SCALE * torch.tensor([[1.0, -1.0], [1.0, -1.0]])
        bias = torch.tensor(STEP_BIAS)
    elif form == "linear":
        w, bias = torch.ones(1, 1), torch.zeros(1)
    else:
        raise CircuitError(f"unknown correction form {form!r}; valid: {', '.join(FORMS)}")
    return SmallCircuits(w.expand(L, T, *w.shape).clone(), bias.expand(L, -1).clone(), f"relay-{form}")


def relay_circuit(m: int, L: int) -> Circuit:
    """The circuit every corrected relay computes: each layer copies feature i to feature i."""
    return Circuit(m, [GateArray.of_kind("BUF", torch.arange(m)[:, None]) for _ in range(L)])


def smallest_width(m: int, S: int, form: str) -> int:
    """The fewest neurons per layer D whose placement holds m features of S copies each."""
    d, n = WIDTH[form], S
    while True:
        capacity = design_capacity(n, S)
        if capacity is None or capacity >= m:
            return n * d
        n += 1


def compile_corrected_relay(m: int, L: int, D: int, S: int, form: str, generator: torch.Generator,
                            design: str = "best") -> CorrectedRelay:
    """The relay of m features through L layers in D neurons per layer, in one of ``FORMS``."""
    small = relay_circuits(m, L, form)
    d = small.d
    if D % d or D // d < S:
        raise CircuitError(f"D={D}: the {form} form needs a multiple of {d} with D/{d} >= S={S}")
    cap = design_capacity(D // d, S)
    if cap is not None and cap < m:
        raise CircuitError(f"D={D}, S={S}: the placement holds {cap} features, fewer than m={m}")
    cis = build_cis2025(small, D, S, "capped", generator, design)
    circuit = relay_circuit(m, L)
    n, t = D // d, torch.arange(m)
    if form == "step":  # input value v is the pair (1.5 v, 0.5 v); a value is its pair's difference
        embed = sparse_weight(torch.cat([2 * t, 2 * t + 1]), torch.cat([t, t]),
                              torch.tensor([STEP_ON[0]] * m + [STEP_ON[1]] * m), (2 * m, m))
        readouts = [sparse_weight(torch.cat([t, t]), torch.cat([2 * t, 2 * t + 1]),
                                  torch.tensor([1.0] * m + [-1.0] * m), (m, 2 * m))]
        carriers = [sparse_weight(torch.cat([t, t]), torch.cat([2 * t, 2 * t + 1]),
                                  torch.tensor([STEP_ON[0]] * m + [STEP_ON[1]] * m), (m, 2 * m))]
    else:
        embed = sparse_weight(t, t, torch.ones(m), (m, m))
        readouts, carriers = [embed], [embed]
    for layer in range(1, L + 1):
        pat = cis.patterns[layer - 1]  # (m, S)
        rows = t[:, None].expand(-1, S).reshape(-1)
        first = pat.reshape(-1)
        if form == "step":
            readouts.append(sparse_weight(torch.cat([rows, rows]), torch.cat([first, first + n]),
                                          torch.tensor([1.0 / S] * rows.numel() + [-1.0 / S] * rows.numel()),
                                          (m, D)))
        else:
            readouts.append(sparse_weight(rows, first, torch.full((rows.numel(),), 1.0 / S), (m, D)))
        carriers.append(sparse_weight(rows, first, torch.ones(rows.numel()), (m, D)))
    # where a copy decides (pre-activation 1/2): the step pair's first neuron on, the second off
    boundary = [(torch.arange(D) // n % 2 == 0).float() if form == "step" else None for _ in range(L)]
    network = Network(embed, cis.network.relu_blocks())
    name = f"corrected-relay(m={m}, D={D}, S={S}, {form})"
    return CorrectedRelay(name, circuit, network, readouts, cis, form, boundary=boundary, carriers=carriers)


class CorrectedRelay(CompiledNetwork):
    """A relay carried by a correction construction, with the construction (``cis``) it uses."""

    def __init__(self, name: str, circuit: Circuit, network: Network, readouts: list, cis: CiS2025, form: str,
                 boundary: list, carriers: list) -> None:
        super().__init__(name, circuit, network, readouts, boundary=boundary, carriers=carriers)
        self.cis, self.form = cis, form
