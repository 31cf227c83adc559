"""Seeded sparse boolean input samplers, each with its own torch.Generator, and the common form
of a batch of inputs that the tracer takes from any of them.

With ``draws="torch"`` the draws are made on the CPU and moved to the device; with
``draws="counter"`` sample k is row k of a counter-based stream (``layers.philox``), made on the
device: either way a seed gives the same inputs everywhere, and with counter draws the same inputs
whatever the batch sizes. A sampler's ``draw(b)`` gives a ``Batch``; ``sample(b)`` its dense inputs.
"""

from __future__ import annotations

from typing import Any

import torch

from layers.philox import CounterStream, check_draws


class Batch:
    """One batch of inputs: the dense (size, width) inputs, or the on-pairs (2, nnz) of (sample,
    feature) of 0/1 inputs, each made from the other on first use; ``extra`` holds what a
    sampler knows beside them (the circuits it made active, their exact states). Fixed-count
    and variable-count samplers (a Bernoulli draw, duplicated copies) give the same form."""

    def __init__(self, size: int, width: int, device: torch.device | str = "cpu", *,
                 x: torch.Tensor | None = None, on: torch.Tensor | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        if x is None and on is None:
            raise ValueError("a batch needs its dense inputs or its on-pairs")
        self.size, self.width, self.device = size, width, torch.device(device)
        self._x, self._on = x, on
        self.extra = extra or {}
        self.exact: list[Any] = []  # the exact values of every layer, set by the tracer

    @classmethod
    def of(cls, x: torch.Tensor, **extra: Any) -> Batch:
        return cls(x.shape[0], x.shape[1], x.device, x=x, extra=extra)

    def dense(self) -> torch.Tensor:
        if self._x is None:
            assert self._on is not None
            x = torch.zeros(self.size, self.width, device=self.device)
            x[self._on[0].to(self.device), self._on[1].to(self.device)] = 1.0
            self._x = x
        return self._x

    def pairs(self) -> torch.Tensor:
        """(2, nnz) (sample, feature) of the inputs that are on, sorted by sample then feature,
        on the CPU; for 0/1 inputs only."""
        if self._on is None:
            x = self.dense()
            if bool(((x != 0) & (x != 1)).any()):
                raise ValueError("on-pairs describe 0/1 inputs; this batch holds other values")
            self._on = torch.nonzero(x.cpu()).T.contiguous()
        return self._on


def draw(sampler: Any, size: int) -> Batch:
    """A batch from any sampler: its own ``draw`` or, for one that only has ``sample``, its dense
    inputs."""
    if hasattr(sampler, "draw"):
        return sampler.draw(size)
    return Batch.of(sampler.sample(size))


class ExactlyActive:
    """Inputs with exactly ``active`` of the ``m`` features on, chosen uniformly."""

    def __init__(self, m: int, active: int, seed: int, device: torch.device | str = "cpu",
                 draws: str = "torch") -> None:
        if not 0 <= active <= m:
            raise ValueError(f"active must be between 0 and m={m}, got {active}")
        check_draws(draws)
        self.m, self.active, self.draws = m, active, draws
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.stream = CounterStream(seed, "exactly-active")
        self.drawn = 0  # samples drawn so far: the counter row of the next one

    def sample_active(self, batch: int) -> torch.Tensor:
        """(batch, active) indices of the on-features, distinct within each row; no (batch, m)
        tensor is made unless active^2 > m, where drawing with replacement would repeat often."""
        m, l, gen = self.m, self.active, self.generator
        if self.draws == "counter":
            rows = torch.arange(self.drawn, self.drawn + batch, device=self.device)
            self.drawn += batch
            return self.stream.subsets(rows, m, l, device=self.device)
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

    def draw(self, batch: int) -> Batch:
        active = self.sample_active(batch).cpu()
        sample = torch.arange(batch).repeat_interleave(self.active)
        order = torch.argsort(sample * self.m + active.reshape(-1))
        on = torch.stack([sample, active.reshape(-1)])[:, order]
        return Batch(batch, self.m, self.device, on=on)

    def sample(self, batch: int) -> torch.Tensor:
        x = torch.zeros(batch, self.m, device=self.device)
        if self.active:
            x.scatter_(1, self.sample_active(batch), 1.0)
        return x


class Bernoulli:
    """Inputs whose features are on independently with probability ``p``."""

    def __init__(self, m: int, p: float, seed: int, device: torch.device | str = "cpu",
                 draws: str = "torch") -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        check_draws(draws)
        self.m, self.p, self.draws = m, p, draws
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.stream = CounterStream(seed, "bernoulli")
        self.drawn = 0

    def sample(self, batch: int) -> torch.Tensor:
        if self.draws == "counter":
            rows = torch.arange(self.drawn, self.drawn + batch, device=self.device)
            self.drawn += batch
            return (self.stream.uniform(rows, self.m, device=self.device) < self.p).float()
        u = torch.rand(batch, self.m, generator=self.generator)
        return (u < self.p).float().to(self.device)

    def draw(self, batch: int) -> Batch:
        return Batch.of(self.sample(batch))


def all_inputs(m: int) -> torch.Tensor:
    """All 2^m boolean inputs, row r holding the bits of r (feature 0 = lowest bit)."""
    if not 0 < m <= 20:
        raise ValueError(f"enumerating all inputs needs 0 < m <= 20, got {m}")
    r = torch.arange(2**m).unsqueeze(1)
    return ((r >> torch.arange(m)) & 1).float()


class Duplicated:
    """Each feature of another sampler's inputs, repeated ``copies`` times side by side."""

    def __init__(self, sampler: Any, copies: int = 2) -> None:
        self.sampler, self.copies = sampler, copies

    def sample(self, batch: int) -> torch.Tensor:
        return self.draw(batch).dense()

    def draw(self, batch: int) -> Batch:
        inner = draw(self.sampler, batch)
        if inner._x is not None:
            return Batch.of(inner.dense().repeat_interleave(self.copies, dim=1))
        sample, feature = inner.pairs()
        copy = torch.arange(self.copies).repeat(sample.numel())
        on = torch.stack([sample.repeat_interleave(self.copies), feature.repeat_interleave(self.copies) * self.copies
                          + copy])
        return Batch(batch, inner.width * self.copies, inner.device, on=on)
