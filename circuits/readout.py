"""Read-outs fitted to data: the best scalar multiple of a linear read-out."""

from __future__ import annotations

import torch


def best_scale(reads: torch.Tensor, truth: torch.Tensor) -> float:
    """The alpha minimising mean (alpha * reads - truth)^2 over all entries (least squares):
    sum(reads * truth) / sum(reads^2); 1 where every read is 0."""
    num = float((reads.double() * truth.double()).sum())
    den = float((reads.double() ** 2).sum())
    return num / den if den > 0 else 1.0
