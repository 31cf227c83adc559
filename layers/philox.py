"""A counter-based random generator: Philox4x32-10, in torch integer arithmetic on any device.

Each value is a pure function of (key, row, column, stream): any rows can be made in any order, in
chunks of any size, on any device, and they are the same values. The key comes from a seed and a
purpose (as ``Context.seed_for`` keeps purposes apart); the row is a feature, a sample or a circuit;
the stream separates several draws of one row (a subset, then the values on it).

The 32-bit words are bit for bit the same on the CPU and on a GPU (integer arithmetic only, in
int64 so that no product overflows). Derived values: uniforms and integers below n are exact on
every device; normals pass through log and cos (float64), so two devices agree to float64 rounding
before the cast to float32, almost always bitwise after it.
"""

from __future__ import annotations

import hashlib
import math

import torch

# How a run makes its random draws: "torch" (seeded torch generators on the CPU, moved to the
# device) or "counter" (this module's generator, made where they are used).
DRAWS = ("torch", "counter")
MASK32 = (1 << 32) - 1
_ROUND = (0xD2511F53, 0xCD9E8D57)  # the two multipliers of Philox4x32
_WEYL = (0x9E3779B9, 0xBB67AE85)  # the key's increments between rounds
ROUNDS = 10
_CPU_CHUNK = 1 << 16  # counters per pass
_DEVICE_CHUNK = 1 << 24


def _mulhilo(a: torch.Tensor, multiplier: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit halves of a * multiplier for 32-bit words a, in int64 without overflow:
    the multiplier is split into 16-bit halves so that no partial product reaches 2^63 (in place
    after the two products: every pass over memory counts)."""
    high = a * (multiplier >> 16)  # < 2^48
    low = a * (multiplier & 0xFFFF)  # < 2^48
    low += (high & 0xFFFF) << 16  # < 2^49
    high >>= 16
    high += low >> 32
    low &= MASK32
    return high, low


def philox(counter: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
           key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Philox4x32-10 of four int64 tensors of 32-bit words (one counter per element) under a
    two-word key: four tensors of 32-bit words (the inputs are left as they were)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(ROUNDS):
        if r:
            k0, k1 = (k0 + _WEYL[0]) & MASK32, (k1 + _WEYL[1]) & MASK32
        hi0, lo0 = _mulhilo(c0, _ROUND[0])
        hi1, lo1 = _mulhilo(c2, _ROUND[1])
        hi1 ^= c1
        hi1 ^= k0
        hi0 ^= c3
        hi0 ^= k1
        c0, c1, c2, c3 = hi1, lo1, hi0, lo0
    return c0, c1, c2, c3


def check_draws(draws: str) -> None:
    if draws not in DRAWS:
        raise ValueError(f"unknown draws {draws!r}; choose one of {', '.join(DRAWS)}")


def key_of(seed: int, purpose: str) -> tuple[int, int]:
    """The two key words of a seed and a purpose."""
    digest = hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")


class CounterStream:
    """Random values of (row, column) under one key: ``bits`` (32-bit words), ``uniform``,
    ``normal``, ``below`` (integers), ``subsets`` (distinct indices) and ``permutations``.

    ``rows`` is a 1-D integer tensor of row numbers (0 <= row < 2^64 as unsigned, any order, any
    repeats); each function returns one row of values per entry, on ``device``.
    """

    def __init__(self, seed: int, purpose: str) -> None:
        self.seed, self.purpose = int(seed), purpose
        self.key = key_of(seed, purpose)

    def bits(self, rows: torch.Tensor, columns: int, stream: int = 0,
             device: torch.device | str = "cpu") -> torch.Tensor:
        """(len(rows), columns) int64 words in [0, 2^32): word c of a row is word c % 4 of the block
        counter (c // 4, row low, row high, stream)."""
        if columns < 0 or not 0 <= stream <= MASK32:
            raise ValueError(f"columns must be >= 0 and stream in [0, 2^32), got {columns}, {stream}")
        rows = rows.reshape(-1).to(device=device, dtype=torch.int64)
        blocks = -(-columns // 4)
        out = torch.empty(rows.numel() * blocks, 4, dtype=torch.int64, device=rows.device)
        # on the CPU, chunks whose working set stays in cache (ten times faster than one pass)
        step = _CPU_CHUNK if rows.device.type == "cpu" else _DEVICE_CHUNK
        for start in range(0, out.shape[0], step):
            flat = torch.arange(start, min(start + step, out.shape[0]), device=rows.device)
            row = rows[flat // blocks]
            words = philox((flat % blocks, row & MASK32, (row >> 32) & MASK32, torch.full_like(flat, stream)),
                           self.key)
            out[start:start + flat.numel()] = torch.stack(words, dim=1)
        return out.reshape(rows.numel(), 4 * blocks)[:, :columns]

    def uniform(self, rows: torch.Tensor, columns: int, stream: int = 0,
                device: torch.device | str = "cpu") -> torch.Tensor:
        """float32 in [0, 1) on a grid of 2^-24 (the top 24 bits of each word): exact everywhere."""
        return (self.bits(rows, columns, stream, device) >> 8).to(torch.float32) * 2.0**-24

    def normal(self, rows: torch.Tensor, columns: int, stream: int = 0,
               device: torch.device | str = "cpu") -> torch.Tensor:
        """float32 standard normals, by Box-Muller on pairs of words in float64."""
        rows = rows.reshape(-1)
        half = -(-columns // 2)
        out = torch.empty(rows.numel(), 2 * half, dtype=torch.float32, device=device)
        step = max(1, (_CPU_CHUNK * 4 if out.device.type == "cpu" else _DEVICE_CHUNK) // max(1, 2 * half))
        for start in range(0, rows.numel(), step):
            words = self.bits(rows[start:start + step], 2 * half, stream, device).to(torch.float64)
            u1 = (words[:, 0::2] + 1.0) * 2.0**-32  # (0, 1]: the log is finite
            angle = words[:, 1::2] * (2.0 * math.pi * 2.0**-32)
            radius = torch.sqrt(-2.0 * torch.log(u1))
            z = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=2)
            out[start:start + words.shape[0]] = z.reshape(words.shape[0], 2 * half)
        return out[:, :columns]

    def below(self, rows: torch.Tensor, columns: int, n: int | torch.Tensor, stream: int = 0,
              device: torch.device | str = "cpu") -> torch.Tensor:
        """int64 in [0, n) as (word * n) >> 32, for n <= 2^31 (a scalar, or a tensor broadcast
        against the (rows, columns) words). Each value has probability within n / 2^32 of 1/n (the
        multiply-shift bias, at most 2^-12 relative for n <= 2^20)."""
        words = self.bits(rows, columns, stream, device)
        if isinstance(n, torch.Tensor):
            n = n.to(device=words.device, dtype=torch.int64)
            if n.numel() and (int(n.min()) < 1 or int(n.max()) > 2**31):
                raise ValueError("below(n) needs 1 <= n <= 2^31")
        elif not 1 <= n <= 2**31:
            raise ValueError(f"below(n) needs 1 <= n <= 2^31, got {n}")
        return (words * n) >> 32

    def subsets(self, rows: torch.Tensor, m: int, size: int, stream: int = 0,
                device: torch.device | str = "cpu") -> torch.Tensor:
        """(len(rows), size) distinct indices in [0, m), each row sorted, uniform over the
        size-subsets of m (up to the ``below`` bias). Small subsets by Floyd's algorithm (size
        words a row, O(size^2) compares); large ones (size^2 > m) as the size largest of m keys."""
        if not 0 <= size <= m or m > 2**31:
            raise ValueError(f"subsets need 0 <= size <= m <= 2^31, got size={size}, m={m}")
        rows = rows.reshape(-1)
        if size * size > m:
            # a unique 64-bit key per (row, index): no ties, so the choice is the same on every device
            keys = self.bits(rows, m, stream, device) * m + torch.arange(m, device=device)
            return keys.topk(size, dim=1).indices.sort(dim=1).values
        # Floyd: for j = m - size .. m - 1, take t uniform in [0, j]; if t is taken, take j instead
        tops = torch.arange(m - size + 1, m + 1, dtype=torch.int64, device=device)  # j + 1 per step
        picks = self.below(rows, size, tops, stream, device)
        chosen = torch.empty_like(picks)
        for k in range(size):
            t = picks[:, k]
            taken = (chosen[:, :k] == t[:, None]).any(dim=1)
            chosen[:, k] = torch.where(taken, tops[k] - 1, t)
        return chosen.sort(dim=1).values

    def permutations(self, rows: torch.Tensor, m: int, stream: int = 0,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """(len(rows), m) uniform permutations of 0..m-1: each row sorts m unique 64-bit keys."""
        keys = self.bits(rows, m, stream, device) * m + torch.arange(m, device=device)
        return keys.argsort(dim=1)
