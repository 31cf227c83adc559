"""Closed-form predictions of THEORY.md, kept beside the simulation that measures them."""

from __future__ import annotations

import math

import torch


def q_tail(z: float) -> float:
    """Standard normal upper tail Q(z) = P(N(0, 1) > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def interference_std(active: int, n: int) -> float:
    """Std of the read-out of an inactive feature with ``active`` random unit directions on."""
    return math.sqrt(active / n)


def jl_bound(m: int, n: int, active: int) -> float:
    """The post's worst-case noise: JL distortion sqrt(8 ln m / n) times sqrt(active)."""
    return math.sqrt(8.0 * math.log(m) / n) * math.sqrt(active)


def post_threshold(m: int, n: int) -> float:
    """The post's largest affordable number of active features, n / (8 ln m)."""
    return n / (8.0 * math.log(m))


def false_positives(m: int, active: int, n: int) -> float:
    """Expected off-features read above 1/2 per sample: (m - l) Q(0.5 sqrt(n / l))."""
    if active == 0:
        return 0.0
    return (m - active) * q_tail(0.5 * math.sqrt(n / active))


def rms_overlap(n: int) -> float:
    """Rms overlap of random unit vectors in R^n."""
    return 1.0 / math.sqrt(n)


def max_overlap(m: int, n: int) -> float:
    """Typical largest overlap among m random unit vectors: about 0.9 * 2 sqrt(ln m / n)."""
    return 0.9 * 2.0 * math.sqrt(math.log(m) / n)


def relay_mse(m: int, n: int, active: int, layers: int) -> list[float]:
    """Linear relay without clean-up: sigma2_{t+1} = (1 + m/n) sigma2_t + l/n, sigma2_0 = l/n."""
    out = [active / n]
    for _ in range(layers):
        out.append((1.0 + m / n) * out[-1] + active / n)
    return out


def cleanup_mse(m: int, n: int, active: int) -> float:
    """Relay with a clean-up after every layer: the read-out MSE stays near (l/n)(1 - l/m)."""
    return (active / n) * (1.0 - active / m)


def wrong_features_gaussian(m: int, sigma2: float) -> float:
    """Features per sample read on the wrong side of 1/2 when every read-out has Gaussian error
    of variance sigma2 (off-features cross upwards, on-features downwards, at the same rate)."""
    if sigma2 <= 0:
        return 0.0
    return m * q_tail(0.5 / math.sqrt(sigma2))


def cleanup_mse_gaussian(mean: float, var: float, target: float, points: int = 2001) -> float:
    """E[(h(Z) - target)^2] for Z ~ N(mean, var), h the two-ReLU clean-up (numerical quadrature)."""
    if var <= 0:
        return (cleanup(torch.tensor(mean)).item() - target) ** 2
    sd = math.sqrt(var)
    z = torch.linspace(-8.0, 8.0, points, dtype=torch.float64)
    weights = torch.exp(-0.5 * z * z)
    weights = weights / weights.sum()
    values = cleanup(mean + sd * z)
    return float((weights * (values - target) ** 2).sum())


def cleanup(x: torch.Tensor) -> torch.Tensor:
    """h(x) = ReLU(2x - 0.5) - ReLU(2x - 1.5): 0 below 0.25, 1 above 0.75."""
    return torch.relu(2 * x - 0.5) - torch.relu(2 * x - 1.5)


def uand_mean(others: int, p: float) -> float:
    """U-AND pair read-out error mean with ``others`` other active features: s' p."""
    return others * p


def uand_std(others: int, p: float, d: int) -> float:
    """U-AND pair read-out error std: sqrt(s' (1 - p) / (p d))."""
    return math.sqrt(others * (1.0 - p) / (p * d))
