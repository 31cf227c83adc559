"""Feature embeddings: m unit vectors in R^n, one row per feature, and their coherence.

``Directions`` defines the vectors by a seed, row by row, so that any of them (a chunk, the few
active ones) can be made without the others: a network with a million features never holds
its m x n matrix, and the rows it makes equal those of the stored matrix for the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from layers.philox import CounterStream, check_draws

EMBEDDINGS = ("random", "sign", "identity")


def make_embedding(
    kind: str, m: int, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return an (m, n) matrix whose rows are unit vectors.

    ``random``: Gaussian rows, normalised (uniform on the sphere).
    ``sign``: entries +-1/sqrt(n).
    ``identity``: the first m basis vectors of R^n (orthonormal, needs n >= m).
    """
    if m <= 0 or n <= 0:
        raise ValueError(f"embedding sizes must be positive, got m={m}, n={n}")
    if kind == "random":
        phi = torch.randn(m, n, generator=generator)
        return phi / phi.norm(dim=1, keepdim=True)
    if kind == "sign":
        bits = torch.randint(0, 2, (m, n), generator=generator)
        return (2.0 * bits - 1.0) / math.sqrt(n)
    if kind == "identity":
        if n < m:
            raise ValueError(
                f"identity embedding needs n >= m (one direction per feature), got m={m}, n={n}"
            )
        return torch.eye(n)[:m].clone()
    raise ValueError(f"unknown embedding {kind!r}; choose one of {', '.join(EMBEDDINGS)}")


_MASK32 = (1 << 32) - 1
# one stream for every counter-drawn direction: a Directions' rows are its seed range's rows
_DIRECTIONS = CounterStream(0, "directions")


def _row_seeds(seed: int, index: torch.Tensor) -> list[int]:
    """The seed of each row: (seed + row) mod 2^32 through a bijection of 32-bit integers (the
    lowbias32 mixer), so rows of one seed range never share a seed. torch's CPU generator keeps only
    32 bits of a seed: seeds drawn at random for a million rows would repeat (birthday bound), and
    two features would share a direction."""
    z = (index.to(torch.int64) + seed) & _MASK32
    z = z ^ (z >> 16)
    z = (z * 0x7FEB352D) & _MASK32
    z = z ^ (z >> 15)
    z = (z * 0x846CA68B) & _MASK32
    z = z ^ (z >> 16)
    return z.tolist()


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A seed for ``Directions`` (the start of its 32-bit range) drawn from a generator (the
    global one when None)."""
    return int(torch.randint(0, 2**32, (1,), generator=generator))


class Directions:
    """m unit vectors in R^n given by ``kind`` and a seed, made on demand.

    With ``draws="torch"``, row i is drawn from its own torch generator, seeded by seed + i (mixed),
    on the CPU, and moved to the device; with ``draws="counter"``, it is row seed + i of a
    counter-based stream (``layers.philox``), made on the device itself. Either way the rows of any
    index set are the same whichever other rows are made, in whatever order, and on every device.
    Directions whose seed ranges [seed, seed + m) do not overlap share no row. ``dense()`` is the
    stored matrix.
    """

    def __init__(self, kind: str, m: int, n: int, seed: int, draws: str = "torch") -> None:
        if m <= 0 or n <= 0:
            raise ValueError(f"embedding sizes must be positive, got m={m}, n={n}")
        if kind not in EMBEDDINGS:
            raise ValueError(f"unknown embedding {kind!r}; choose one of {', '.join(EMBEDDINGS)}")
        if kind == "identity" and n < m:
            raise ValueError(f"identity embedding needs n >= m (one direction per feature), got m={m}, n={n}")
        check_draws(draws)
        self.kind, self.m, self.n, self.seed, self.draws = kind, m, n, int(seed), draws

    def rows(self, index: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """The (len(index), n) directions of the features ``index`` (a 1-D integer tensor)."""
        index = index.reshape(-1)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.m):
            raise IndexError(f"feature index out of range 0..{self.m - 1}")
        if self.draws == "counter":
            return self._counter_rows(index, device)
        index = index.cpu()
        out = torch.zeros(index.numel(), self.n)
        if self.kind == "identity":
            out[torch.arange(index.numel()), index] = 1.0
            return out.to(device)
        gen = torch.Generator()
        if self.kind == "random":
            for k, s in enumerate(_row_seeds(self.seed, index)):
                gen.manual_seed(s)
                out[k].normal_(generator=gen)
            out /= out.norm(dim=1, keepdim=True)
        else:  # sign
            bits = torch.empty(self.n, dtype=torch.int64)
            for k, s in enumerate(_row_seeds(self.seed, index)):
                gen.manual_seed(s)
                out[k] = bits.random_(0, 2, generator=gen)
            out.mul_(2.0).sub_(1.0).div_(math.sqrt(self.n))
        return out.to(device)

    def _counter_rows(self, index: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        index = index.to(device=device, dtype=torch.int64)
        if self.kind == "identity":
            return torch.nn.functional.one_hot(index, self.n).to(torch.float32)
        rows = index + self.seed
        if self.kind == "random":
            out = _DIRECTIONS.normal(rows, self.n, device=device)
            return out / out.norm(dim=1, keepdim=True)
        signs = (_DIRECTIONS.bits(rows, self.n, device=device) & 1).to(torch.float32)
        return signs.mul_(2.0).sub_(1.0).div_(math.sqrt(self.n))

    def span(self, start: int, stop: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Rows start..stop - 1."""
        return self.rows(torch.arange(start, stop), device)

    def chunks(self, size: int, device: torch.device | str = "cpu") -> Iterator[tuple[int, torch.Tensor]]:
        """(start, rows) for consecutive chunks of ``size`` rows."""
        for start in range(0, self.m, size):
            yield start, self.span(start, min(start + size, self.m), device)

    def dense(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The stored (m, n) matrix."""
        return self.span(0, self.m, device)


def welch_bound(m: int, n: int) -> float:
    """Smallest possible max |overlap| of m unit vectors in R^n (0 when m <= n)."""
    if m <= n or m == 1:
        return 0.0
    return math.sqrt((m - n) / (n * (m - 1)))


@dataclass(frozen=True)
class Coherence:
    """Overlap statistics of an embedding (off-diagonal entries of phi phi^T)."""

    rms_overlap: float
    max_overlap: float
    welch_bound: float


def coherence(phi: torch.Tensor, chunk: int = 4096) -> Coherence:
    """Rms and max |<phi_i, phi_j>| over i != j, computed in row chunks (memory ~ chunk * m)."""
    m, n = phi.shape
    if m < 2:
        return Coherence(0.0, 0.0, 0.0)
    phi = phi.to(torch.float64)
    sum_sq, worst = 0.0, 0.0
    for start in range(0, m, chunk):
        block = phi[start : start + chunk] @ phi.T
        rows = torch.arange(block.shape[0])
        block[rows, rows + start] = 0.0  # drop the diagonal <phi_i, phi_i> = 1
        sum_sq += float((block**2).sum())
        worst = max(worst, float(block.abs().max()))
    return Coherence(math.sqrt(sum_sq / (m * (m - 1))), worst, welch_bound(m, n))
