"""Seeded sparse boolean input samplers, each with its own torch.Generator.

Draws are made on the CPU and moved to the device, so a seed gives the same inputs everywhere.
"""

from __future__ import annotations

import torch


class ExactlyActive:
    """Inputs with exactly ``active`` of the ``m`` features on, chosen uniformly."""

    def __init__(self, m: int, active: int, seed: int, device: torch.device | str = "cpu") -> None:
        if not 0 <= active <= m:
            raise ValueError(f"active must be between 0 and m={m}, got {active}")
        self.m, self.active = m, active
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)

    def sample_active(self, batch: int) -> torch.Tensor:
        """(batch, active) indices of the on-features, distinct within each row; no (batch, m)
        tensor is made unless active^2 > m, where drawing with replacement would repeat often."""
        m, l, gen = self.m, self.active, self.generator
        if l * l > m:
            scores = torch.rand(batch, m, generator=gen)
            return scores.topk(l, dim=1).indices.to(self.device)
        idx = torch.randint(0, m, (batch, l), generator=gen)
        while l > 1:  # redraw whole rows that repeat an index: uniform over l-subsets
            ordered = idx.sort(dim=1).values
            again = torch.nonzero((ordered[:, 1:] == ordered[:, :-1]).any(dim=1)).squeeze(1)
            if not again.numel():
                break
            idx[again] = torch.randint(0, m, (again.numel(), l), generator=gen)
        return idx.to(self.device)

    def sample(self, batch: int) -> torch.Tensor:
        x = torch.zeros(batch, self.m, device=self.device)
        if self.active:
            x.scatter_(1, self.sample_active(batch), 1.0)
        return x


class Bernoulli:
    """Inputs whose features are on independently with probability ``p``."""

    def __init__(self, m: int, p: float, seed: int, device: torch.device | str = "cpu") -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.m, self.p = m, p
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch: int) -> torch.Tensor:
        u = torch.rand(batch, self.m, generator=self.generator)
        return (u < self.p).float().to(self.device)


def all_inputs(m: int) -> torch.Tensor:
    """All 2^m boolean inputs, row r holding the bits of r (feature 0 = lowest bit)."""
    if not 0 < m <= 20:
        raise ValueError(f"enumerating all inputs needs 0 < m <= 20, got {m}")
    r = torch.arange(2**m).unsqueeze(1)
    return ((r >> torch.arange(m)) & 1).float()


class Duplicated:
    """Each feature of another sampler's inputs, repeated ``copies`` times side by side."""

    def __init__(self, sampler, copies: int = 2) -> None:
        self.sampler, self.copies = sampler, copies

    def sample(self, batch: int) -> torch.Tensor:
        return self.sampler.sample(batch).repeat_interleave(self.copies, dim=1)
