"""Neuron assignments for circuits in superposition: S-hot patterns that pairwise share at most
one neuron (packings of S-subsets of n = D/d points).

Three families, and ``make_design`` takes whichever holds the most circuits:

- ``transversal``: points (x, y) with x < S and y in Z_p (p prime, S <= p, S p <= n); circuit
  (a, b) is the line {(x, a x + b mod p)}. Two lines meet at most once because a x = c has one
  root mod p, so p^2 circuits fit (about n^2 / S^2), plus S floor(p / S) pieces of the vertical
  lines x = const. Taking the lines slope by slope uses every point equally often.
- ``progression``: arithmetic progressions {i, i + s, ..., i + (S - 1) s} whose steps s have no
  prime factor below S (times powers of S when S is not prime), the rule of the public code of
  "Rotations in Superposition". Two steps s != s' can share two points only if k s = k' s' with
  k, k' < S, which the rule excludes. It holds 557 circuits at n = 250, S = 6.
- S = 1: one neuron each, reused cyclically (any two share at most their one neuron);
  S = 2: every pair of neurons.
"""

from __future__ import annotations

import math

import torch

from circuits.spec import CircuitError


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % f for f in range(2, math.isqrt(n) + 1))


def largest_prime_at_most(n: int) -> int | None:
    return next((q for q in range(n, 1, -1) if is_prime(q)), None)


def _transversal_prime(n: int, S: int) -> int | None:
    p = largest_prime_at_most(n // S)
    return p if p is not None and p >= S else None


def transversal_capacity(n: int, S: int) -> int:
    p = _transversal_prime(n, S)
    return 0 if p is None else p * p + S * (p // S)


def _steps(n: int, S: int):
    """Steps of the progression family, in the order they are used."""
    small_primes = [q for q in range(2, S) if is_prime(q)]
    s = 1
    while s * (S - 1) < n:
        if all(s % q for q in small_primes):
            yield s
            if not is_prime(S):
                power = S
                while s * power * (S - 1) < n:
                    yield s * power
                    power *= S
        s += 1


def _progression_starts(n: int, S: int):
    """(start, step) of every progression, steps in order, shifts in order, then starts."""
    for s in _steps(n, S):
        for shift in range(s):
            if shift + s * (S - 1) >= n:
                break
            for start in range(shift, n - s * (S - 1), s * S):
                yield start, s


def progression_capacity(n: int, S: int) -> int:
    """Progressions ``make_design`` can place: with N = n - s (S - 1) valid starts for step s,
    the starts whose residue mod s S is below s (one run of s shifts per period)."""
    if S < 2:
        return 0
    total = 0
    for s in _steps(n, S):
        starts = n - s * (S - 1)
        total += (starts // (s * S)) * s + min(starts % (s * S), s)
    return total


def design_capacity(n: int, S: int) -> int | None:
    """Most circuits of S neurons each among n that pairwise share at most one neuron, by the
    best of the families here (None: unbounded, for S = 1)."""
    if S < 1 or n < S:
        return 0
    if S == 1:
        return None
    if S == 2:
        return n * (n - 1) // 2
    return max(transversal_capacity(n, S), progression_capacity(n, S))


def _transversal(n: int, S: int, T: int) -> torch.Tensor:
    p = _transversal_prime(n, S)
    assert p is not None, "callers check the capacity first"
    x = torch.arange(S)
    lines = [x * p + (a * x + b) % p for a in range(p) for b in range(p) if a * p + b < T]
    verticals = [c * p + torch.arange(k * S, (k + 1) * S) for k in range(p // S) for c in range(S)]
    return torch.stack((lines + verticals)[:T])


def _progressions(n: int, S: int, T: int) -> torch.Tensor:
    rows: list[torch.Tensor] = []
    for start, s in _progression_starts(n, S):
        if len(rows) == T:
            break
        rows.append(start + s * torch.arange(S))
    return torch.stack(rows)


FAMILIES = ("best", "transversal", "progression")


def chosen_family(n: int, S: int, T: int, family: str = "best") -> str:
    """The family ``make_design`` builds for these sizes: ``reuse`` for S = 1 (any number of
    circuits, neurons reused), ``pairs`` for S = 2 with ``best`` (every pair of neurons), else
    transversal when it holds T (``best``) or the family asked for."""
    if family not in FAMILIES:
        raise CircuitError(f"unknown design family {family!r}; valid: {', '.join(FAMILIES)}")
    if S == 1:
        return "reuse"
    if S == 2 and family == "best":
        return "pairs"
    if family == "best":
        return "transversal" if transversal_capacity(n, S) >= T else "progression"
    return family


def make_design(n: int, S: int, T: int, family: str = "best") -> torch.Tensor:
    """(T, S) neuron indices in [0, n): S distinct per row, two rows share at most one.
    ``family``: best | transversal | progression (``chosen_family`` says which is built)."""
    if T < 1:
        raise CircuitError(f"need at least one circuit, got T={T}")
    if S < 1 or S > n:
        raise CircuitError(f"S={S} neurons per small neuron does not fit in D/d={n} neurons per group")
    built = chosen_family(n, S, T, family)
    if built == "reuse":
        return (torch.arange(T) % n)[:, None]
    if built == "pairs":
        pairs = torch.combinations(torch.arange(n), 2)
        if T > len(pairs):
            raise CircuitError(f"D/d={n} holds at most {len(pairs)} circuits with S=2, asked for T={T}")
        # interleave so that the first T pairs use the neurons evenly
        order = torch.argsort((pairs[:, 1] - pairs[:, 0]) * n + pairs[:, 0])
        return pairs[order[:T]]
    caps = {"transversal": transversal_capacity(n, S), "progression": progression_capacity(n, S)}
    if T > caps[built]:
        best = design_capacity(n, S)
        raise CircuitError(f"D/d={n} holds at most {best} circuits of S={S} neurons that share at most one "
                           f"neuron ({built} design: {caps[built]}); asked for T={T}")
    return _transversal(n, S, T) if built == "transversal" else _progressions(n, S, T)


def overlaps(design: torch.Tensor, n: int) -> torch.Tensor:
    """(T, T) number of neurons each pair of rows shares (the diagonal is S)."""
    hot = torch.zeros(design.shape[0], n)
    hot.scatter_(1, design, 1.0)
    return hot @ hot.T


def placement_loads(design: torch.Tensor, n: int) -> torch.Tensor:
    """(n,) how many circuits each of the n neurons carries (0 for an idle neuron)."""
    return torch.bincount(design.reshape(-1), minlength=n)


def mean_squared_overlap(design: torch.Tensor, n: int) -> float:
    """E over pairs t != u of (<e_t|e_u> / S)^2, computed from the neuron degrees without the
    T x T matrix: sum_n deg_n (deg_n - 1) counts ordered pairs sharing each neuron, and with at
    most one shared neuron a shared pair contributes 1 / S^2."""
    T, S = design.shape
    if T < 2:
        return 0.0
    deg = placement_loads(design, n).double()
    return float((deg * (deg - 1)).sum()) / (T * (T - 1) * S * S)
