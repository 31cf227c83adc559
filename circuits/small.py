"""Small circuits for the 2025 circuits-in-superposition construction: T ReLU MLPs of width d
and depth L that share one bias vector per layer,

    a^l_t = ReLU(w^l_t a^(l-1)_t + b^l),   a^0_t given, a^l_t = 0 when circuit t is inactive.

Three kinds are built here: the conditional rotations of "Rotations in Superposition"
(``rotation_circuits``), boolean circuits whose every value is a two-ReLU step gated by an
on-indicator (``boolean_circuits``), and any MLP a user gives (``SmallCircuits`` directly).
``check_assumptions`` refuses circuits the construction cannot carry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from circuits.gates import GATES
from circuits.spec import Circuit, CircuitError

# The two-ReLU step h(z) = ReLU(2z - 0.5) - ReLU(2z - 1.5): flat below 1/4 and above 3/4, so
# a deviation below 1/4 neither switches an off value on nor moves an on value.
STEP_SCALE, STEP_BIAS = 2.0, (-0.5, -1.5)
# An active step pair holds (1.5, 0.5) (difference 1); an off pair holds (0, 0).
STEP_ON = (1.5, 0.5)


@dataclass
class SmallCircuits:
    """T small circuits: ``weights`` (L, T, d, d) with weights[l] mapping a^l to layer l + 1's
    pre-activations, and ``bias`` (L, d) shared by all circuits."""

    weights: torch.Tensor
    bias: torch.Tensor
    kind: str = "mlp"

    def __post_init__(self) -> None:
        w, b = self.weights, self.bias
        if not isinstance(w, torch.Tensor) or not isinstance(b, torch.Tensor):
            raise CircuitError("small circuits need weights and bias as torch tensors")
        if w.dim() != 4 or w.shape[2] != w.shape[3]:
            raise CircuitError(f"weights must have shape (L, T, d, d), got {tuple(w.shape)}")
        if b.shape != (w.shape[0], w.shape[2]):
            raise CircuitError(f"bias must have shape (L, d) = ({w.shape[0]}, {w.shape[2]}): one bias vector per "
                               f"layer shared by every circuit; got {tuple(b.shape)}")
        if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
            raise CircuitError("small circuit weights and biases must be finite")
        self.weights, self.bias = w.float(), b.float()

    @property
    def L(self) -> int:
        return self.weights.shape[0]

    @property
    def T(self) -> int:
        return self.weights.shape[1]

    @property
    def d(self) -> int:
        return self.weights.shape[2]

    def run(self, which: torch.Tensor, a0: torch.Tensor) -> list[torch.Tensor]:
        """Exact activations of the circuits ``which`` (batch, z) from inputs a0 (batch, z, d):
        one (batch, z, d) tensor per layer 0..L."""
        out = [a0]
        for layer in range(self.L):
            w = self.weights[layer].to(a0.device)[which]  # (batch, z, d, d)
            out.append(torch.relu(torch.einsum("bzij,bzj->bzi", w, out[-1]) + self.bias[layer].to(a0.device)))
        return out


def robust_radius(circuits: SmallCircuits) -> torch.Tensor:
    """(L, T): the largest L2 deviation of an inactive circuit's state that leaves every neuron of
    the next layer at 0: min over neurons of -b_i / |w_i| (infinite for a neuron with no weights)."""
    norms = circuits.weights.norm(dim=3)  # (L, T, d)
    margin = -circuits.bias[:, None, :].expand_as(norms)
    ratio = torch.where(norms > 0, margin / norms.clamp_min(1e-30), torch.full_like(norms, math.inf))
    return ratio.amin(dim=2)


def check_assumptions(circuits: SmallCircuits, margin: float) -> None:
    """Refuse circuits that break the construction's assumptions, naming the one broken:
    an inactive circuit computes exactly 0 (no positive bias), and a deviation of an inactive
    circuit's state up to ``margin`` (L2) switches no neuron on."""
    positive = (circuits.bias > 0).nonzero()
    if len(positive):
        layer, neuron = positive[0].tolist()
        raise CircuitError(f"assumption 'an inactive circuit is exactly 0' fails: layer {layer + 1} neuron {neuron} "
                           f"has bias {circuits.bias[layer, neuron].item():g} > 0")
    radius = robust_radius(circuits)
    worst = radius.argmin()
    layer, t = divmod(int(worst), circuits.T)
    if radius[layer, t] < margin:
        raise CircuitError(f"assumption 'a deviation below {margin:g} does not switch an inactive circuit on' fails: "
                           f"circuit {t} at layer {layer + 1} switches on at deviation {radius[layer, t].item():.3g}")


# ---- the conditional rotations ------------------------------------------------------------------

# The on-indicator's reset band: h(alpha) = ReLU(k (alpha - low)) - ReLU(k (alpha - low) - 1),
# k = 1 / (high - low), is 0 below ``low`` and 1 above ``high``; the post's step is (1/4, 3/4).
PUBLISHED_BAND = (0.25, 0.75)


def indicator_step(band: tuple[float, float]) -> tuple[float, float, float]:
    """(k, b_0, b_1) of the indicator's two neurons, ReLU(k alpha + b_0) - ReLU(k alpha + b_1)."""
    low, high = band
    if not 0 < low < high <= 1:
        raise CircuitError(f"the indicator's band must satisfy 0 < low < high <= 1, got {band}")
    k = 1.0 / (high - low)
    return k, -k * low, -k * low - 1.0


def rotation_weights(theta: torch.Tensor, band: tuple[float, float] = PUBLISHED_BAND) -> torch.Tensor:
    """(T, 4, 4) weights of conditional rotation circuits by angles theta (T,): neurons 0, 1 the
    on-indicator step (alpha = a_0 - a_1, reset on ``band``), neurons 2, 3 the vector plus alpha."""
    c, s = torch.cos(theta), torch.sin(theta)
    k = indicator_step(band)[0]
    w = torch.zeros(len(theta), 4, 4)
    w[:, 0:2, 0], w[:, 0:2, 1] = k, -k
    w[:, 2, 0], w[:, 2, 1], w[:, 2, 2], w[:, 2, 3] = 2 - (c - s), -2 + (c - s), c, -s
    w[:, 3, 0], w[:, 3, 1], w[:, 3, 2], w[:, 3, 3] = 2 - (s + c), -2 + (s + c), s, c
    return w


def rotation_bias(band: tuple[float, float] = PUBLISHED_BAND) -> tuple[float, float, float, float]:
    _, b0, b1 = indicator_step(band)
    return (b0, b1, -1.0, -1.0)


def rotation_circuits(T: int, L: int, generator: torch.Generator,
                      band: tuple[float, float] = PUBLISHED_BAND) -> SmallCircuits:
    """T conditional rotations, each by its own random angle, the same at every layer:
    x^l = R(theta_t) x^(l-1) while alpha = 1, and everything 0 while alpha = 0."""
    theta = torch.rand(T, generator=generator) * 2 * math.pi
    w = rotation_weights(theta, band)
    return SmallCircuits(w.expand(L, T, 4, 4).clone(), torch.tensor([rotation_bias(band)] * L), "rotation")


def rotation_inputs(angle: torch.Tensor) -> torch.Tensor:
    """a^0 of active rotation circuits for the unit vectors at ``angle`` (any shape): (..., 4)."""
    one = torch.ones_like(angle)
    return torch.stack([1.5 * one, 0.5 * one, torch.cos(angle) + 1, torch.sin(angle) + 1], dim=-1)


def rotation_readout(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, x) of rotation circuit states a (..., 4): alpha = a_0 - a_1, x = a_2:4 - alpha."""
    alpha = a[..., 0] - a[..., 1]
    return alpha, a[..., 2:] - alpha[..., None]


# ---- boolean circuits ---------------------------------------------------------------------------

def boolean_circuits(smalls: list[Circuit]) -> SmallCircuits:
    """Boolean circuits of g gates per layer as small MLPs of width d = 2 (g + 1): value k is held
    by the step pair (a_2k, a_2k+1) as v_k = a_2k - a_2k+1, pair 0 being the on-indicator.
    Each pair computes h(z) of a gate pre-activation linear in the previous values, with the
    constant written through the on-indicator so that every pair has the same biases
    (-0.5, -1.5):  on: z = on;  AND(a, b): z = a + b - on;  BUF(a): z = a;  NOT(a): z = on - a."""
    if not smalls:
        raise CircuitError("need at least one small circuit")
    g, L = smalls[0].n_inputs, smalls[0].depth
    if any(s.widths != [g] * (L + 1) for s in smalls):
        raise CircuitError("every small circuit must be equally wide at every layer and equally deep")
    d, T = 2 * (g + 1), len(smalls)
    w = torch.zeros(L, T, d, d)
    codes = {kind: GATES.index(kind) for kind in ("AND", "BUF", "NOT")}
    for layer in range(L):  # every circuit's gates of this layer at once
        kinds = torch.stack([small.layers[layer].kinds for small in smalls])  # (T, g)
        inputs = [small.layers[layer].inputs for small in smalls]
        width = max(i.shape[1] for i in inputs)
        ins = torch.stack([torch.nn.functional.pad(i, (0, width - i.shape[1]), value=-1) for i in inputs]) + 1
        fans = (ins > 0).sum(dim=2)
        is_and, is_buf, is_not = (kinds == codes["AND"]) & (fans == 2), kinds == codes["BUF"], kinds == codes["NOT"]
        bad = torch.nonzero(~(is_and | is_buf | is_not))
        if bad.numel():
            t, k = (int(v) for v in bad[0])
            gate = smalls[t].layers[layer][k]
            raise CircuitError(f"boolean small circuits use 2-input AND, BUF and NOT; got {gate.kind} "
                               f"with {gate.fan_in} inputs")
        # coef[t, k, j]: value j's weight in gate value k (value 0 = on); each gate is one row
        coef = torch.zeros(T, g + 1, g + 1)
        coef[:, 0, 0] = 1.0
        circ, out = (a.reshape(-1) for a in torch.meshgrid(torch.arange(T), torch.arange(1, g + 1), indexing="ij"))
        first, second = ins[:, :, 0].reshape(-1), ins[:, :, min(1, width - 1)].reshape(-1)
        a, b, n = is_and.reshape(-1), is_buf.reshape(-1), is_not.reshape(-1)
        ones = torch.ones(int(a.sum()))
        coef.index_put_((circ[a], out[a], first[a]), ones, accumulate=True)  # AND: a + b - on
        coef.index_put_((circ[a], out[a], second[a]), ones, accumulate=True)
        coef[circ[a], out[a], 0] -= 1.0
        coef[circ[b], out[b], first[b]] = 1.0  # BUF: a
        coef[circ[n], out[n], 0] = 1.0  # NOT: on - a
        coef[circ[n], out[n], first[n]] = -1.0
        # value j is read as a_2j - a_2j+1; both neurons of pair k get 2 z_k
        pair = STEP_SCALE * torch.stack([coef, -coef], dim=3).reshape(T, g + 1, d)
        w[layer] = pair.repeat_interleave(2, dim=1)
    bias = torch.tensor(STEP_BIAS * (g + 1)).expand(L, d).clone()
    return SmallCircuits(w, bias, "boolean")


def boolean_inputs(bits: torch.Tensor) -> torch.Tensor:
    """a^0 of boolean circuits from values (..., g + 1) (value 0 the on-indicator): (..., d)."""
    return torch.stack([STEP_ON[0] * bits, STEP_ON[1] * bits], dim=-1).flatten(-2)


def boolean_values(a: torch.Tensor) -> torch.Tensor:
    """Values (..., g + 1) held by step pairs a (..., d)."""
    return a[..., 0::2] - a[..., 1::2]
