"""A list of optional tensors a module owns: each is a buffer, so it moves with the module."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn


class TensorList(nn.Module):
    """``items[i]`` is a tensor or None; ``.to(device)`` moves every tensor with its owner."""

    def __init__(self, items: Sequence[torch.Tensor | None]) -> None:
        super().__init__()
        self.count = len(items)
        for i, item in enumerate(items):
            self.register_buffer(f"item{i}", item)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> torch.Tensor | None:
        if not -self.count <= i < self.count:
            raise IndexError(f"index {i} out of range for {self.count} tensors")
        return getattr(self, f"item{i % self.count}")

    def __iter__(self) -> Iterator[torch.Tensor | None]:
        return (self[i] for i in range(self.count))
