"""Intervals and power-law fits for measured scalings (capacity against width, and the like).

A power law y = c x^k is fitted by least squares on (ln x, ln y); its 95% interval is the
Student t interval of the slope with (points - 2) degrees of freedom, so it says how well the
points themselves pin the exponent, not how the points would move under other seeds (a sweep
over seeds gives that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# Two-sided 95% Student t quantiles by degrees of freedom (beyond 30, the normal's 1.96).
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


def t95(n: int) -> float:
    """The 95% Student t quantile for the mean of n values (n - 1 degrees of freedom)."""
    return math.nan if n < 2 else (_T95[n - 2] if n - 1 <= len(_T95) else 1.96)


@dataclass(frozen=True)
class PowerLaw:
    """y = prefactor x^exponent, with the exponent's 95% interval [low, high]."""

    exponent: float
    low: float
    high: float
    prefactor: float
    points: int

    def __call__(self, x: float) -> float:
        return self.prefactor * x**self.exponent

    def to_dict(self) -> dict:
        return asdict(self)


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw | None:
    """Least-squares fit of ln y on ln x over the points with x, y > 0; None below two points.
    With exactly two points the interval is unknown (nan)."""
    pairs = [(math.log(a), math.log(b)) for a, b in zip(x, y) if a is not None and b is not None and a > 0 and b > 0]
    k = len(pairs)
    if k < 2:
        return None
    mx = sum(p[0] for p in pairs) / k
    my = sum(p[1] for p in pairs) / k
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    if sxx == 0:
        return None
    slope = sum((p[0] - mx) * (p[1] - my) for p in pairs) / sxx
    intercept = my - slope * mx
    if k == 2:
        half = math.nan
    else:
        residual = sum((p[1] - intercept - slope * p[0]) ** 2 for p in pairs) / (k - 2)
        half = t95(k - 1) * math.sqrt(residual / sxx)
    return PowerLaw(slope, slope - half, slope + half, math.exp(intercept), k)
