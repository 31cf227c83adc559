"""Searches over an integer size (a width, a number of features) for where a measured criterion
starts or stops holding.

The criterion is measured, so it is noisy near its edge: each search evaluates it at every size
at most once (the same seed per size), assumes it is monotone, and stops when the bracket is
within a relative ``tolerance``. What comes back is the bracket, both ends measured: ``passing``
(meets the criterion) and ``failing`` (does not), or None where the search range has no such end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Bracket:
    passing: int | None
    failing: int | None
    evaluations: int


def _narrow(ok: Callable[[int], bool], good: int, bad: int, tolerance: float, count: int) -> Bracket:
    # good passes, bad fails; halve the bracket until it is within tolerance of the larger end
    while abs(good - bad) > 1 and abs(good - bad) > tolerance * max(good, bad):
        mid = (good + bad) // 2
        count += 1
        if ok(mid):
            good = mid
        else:
            bad = mid
    return Bracket(good, bad, count)


def smallest_passing(ok: Callable[[int], bool], low: int, high: int, tolerance: float = 0.05) -> Bracket:
    """The smallest size in [low, high] that meets ``ok`` (growing sizes help), to ``tolerance``."""
    if low > high:
        raise ValueError(f"empty search range [{low}, {high}]")
    if not ok(high):
        return Bracket(None, high, 1)
    if ok(low):
        return Bracket(low, None, 2)
    return _narrow(ok, high, low, tolerance, 2)


def largest_passing(ok: Callable[[int], bool], low: int, high: int, tolerance: float = 0.05) -> Bracket:
    """The largest size in [low, high] that meets ``ok`` (growing sizes hurt), to ``tolerance``."""
    if low > high:
        raise ValueError(f"empty search range [{low}, {high}]")
    if not ok(low):
        return Bracket(None, low, 1)
    if ok(high):
        return Bracket(high, None, 2)
    return _narrow(ok, low, high, tolerance, 2)


def largest_passing_from(ok: Callable[[int], bool], start: int, low: int, high: int,
                         tolerance: float = 0.05, factor: float = 2.0) -> Bracket:
    """``largest_passing`` when a guess ``start`` is at hand: steps by ``factor`` from it (up while
    the criterion holds, down while it fails) to a bracket, then bisects it to ``tolerance``."""
    if not low <= start <= high:
        raise ValueError(f"start {start} outside [{low}, {high}]")
    count = 1
    if ok(start):
        good = start
        while good < high:
            up = min(high, max(good + 1, int(good * factor)))
            count += 1
            if not ok(up):
                return _narrow(ok, good, up, tolerance, count)
            good = up
        return Bracket(good, None, count)
    bad = start
    while bad > low:
        down = max(low, min(bad - 1, int(bad / factor)))
        count += 1
        if ok(down):
            return _narrow(ok, down, bad, tolerance, count)
        bad = down
    return Bracket(None, bad, count)
