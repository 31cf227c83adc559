"""Feature embeddings: m unit vectors in R^n, one row per feature, and their coherence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

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
