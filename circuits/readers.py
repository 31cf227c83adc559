"""What the tracer reads: a network's read-outs of a batch, as chunks.

Every network the tracer measures is a ``ChunkReader``: stored networks, probes and trained
models through ``DenseReader`` (one chunk per layer), streamed networks chunk by chunk, so one
tracer and one set of metrics serve them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

from circuits.sampling import Batch


@dataclass(frozen=True)
class Chunk:
    """Read-outs of some features of one layer for some samples: ``read[i, j]`` is feature
    ``features[j]`` (a tensor, or a slice of consecutive features) of sample ``rows.start + i``."""

    layer: int
    rows: slice
    features: torch.Tensor | slice
    read: torch.Tensor


class ChunkReader(Protocol):
    """Every (layer, feature, sample) read-out of a batch exactly once, in any order."""

    def read_chunks(self, batch: Batch) -> Iterator[Chunk]: ...


class DenseReader:
    """A reader from a function of the dense inputs to one (batch, m_t) read-out per layer (a
    network's ``read_features``, probes, any model): each layer is one chunk."""

    def __init__(self, read: Callable[[torch.Tensor], list[torch.Tensor]]) -> None:
        self.read = read

    def read_chunks(self, batch: Batch) -> Iterator[Chunk]:
        for t, read in enumerate(self.read(batch.dense())):
            yield Chunk(t, slice(0, batch.size), slice(0, read.shape[1]), read)


def as_reader(reader: ChunkReader | Callable[[torch.Tensor], list[torch.Tensor]]) -> ChunkReader:
    """A chunk reader as it is; a function of the dense inputs wrapped in ``DenseReader``."""
    return reader if hasattr(reader, "read_chunks") else DenseReader(reader)
