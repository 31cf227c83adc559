"""Threads for the size of the work: small tensors run faster on one thread, because on a busy
machine every extra thread waits for a core at each of thousands of tiny steps (a toy model's
training took 16 minutes on two threads against 154 s on one)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# Below this many elements in a step's largest tensor one thread does it faster.
ONE_THREAD_BELOW = 1 << 20


def threads_for(elements: int) -> int:
    """The number of threads for a step whose largest tensor has ``elements`` entries."""
    return 1 if elements < ONE_THREAD_BELOW else torch.get_num_threads()


@contextmanager
def sized_threads(elements: int) -> Iterator[int]:
    """Run the block on ``threads_for(elements)`` threads, then restore the setting."""
    before = torch.get_num_threads()
    n = threads_for(elements)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
