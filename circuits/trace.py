"""The noise tracer: layer by layer, how far each network's read-out is from the exact values.

Samples stream through in batches; only running sums (float64) are kept, so memory is bounded
by the batch, not by the number of samples. Every network is fed the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
from tqdm import tqdm

from circuits.evaluate import Evaluator, SparseEvaluator
from circuits.sampling import ExactlyActive
from circuits.spec import Circuit
from circuits.streamed import Chunk
from layers.weights import Weight

# Anything that maps a batch of inputs to one (batch, m_t) read-out per layer.
Reader = Callable[[torch.Tensor], list[torch.Tensor]]


def linear_reader(network: torch.nn.Module, readouts: list[Weight]) -> Reader:
    """Read layer t as ``readouts[t](stream_t)`` (e.g. probes fitted to a network), for any
    module with a ``streams(x)`` method."""

    def read(x: torch.Tensor) -> list[torch.Tensor]:
        return [r(s) for s, r in zip(network.streams(x), readouts)]

    return read


class Sampler(Protocol):
    """What the samplers of circuits.sampling provide."""

    def sample(self, batch: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class LayerNoise:
    """Read-out error of one network at one layer, over all sampled inputs."""

    layer: int
    features: int
    active_per_sample: float  # exact number of on-features per sample
    signal_mean: float  # read-out on active features
    signal_std: float
    interference_mean: float  # read-out on inactive features
    interference_std: float
    mse: float  # per feature, read-out against the exact value
    false_positives: float  # per sample: off-features read above 1/2
    false_negatives: float  # per sample: on-features read at or below 1/2
    any_wrong: float  # fraction of samples with at least one wrong feature

    @property
    def wrong_features(self) -> float:
        return self.false_positives + self.false_negatives

    def to_dict(self) -> dict:
        return asdict(self) | {"wrong_features": self.wrong_features}


class _Sums:
    """Running sums for one network at one layer; a batch may arrive in chunks (some samples,
    some features), between ``begin`` and ``end``."""

    def __init__(self) -> None:
        self.v = torch.zeros(11, dtype=torch.float64)
        self.wrong_rows: torch.Tensor | None = None

    def add(self, read: torch.Tensor, truth: torch.Tensor, on_index: torch.Tensor | None = None) -> None:
        """Add a batch of read-outs and their exact 0/1 values. ``on_index`` (flat positions of
        the on-features) may be passed in when several networks share the same truth."""
        self.begin(read.shape[0], read.device)
        self.add_chunk(read, on_positions(truth) if on_index is None else on_index, slice(0, read.shape[0]))
        self.end()

    def begin(self, batch: int, device: torch.device) -> None:
        self.wrong_rows = torch.zeros(batch, dtype=torch.bool, device=device)

    def add_chunk(self, read: torch.Tensor, on_index: torch.Tensor, rows: slice) -> None:
        """Read-outs of samples ``rows`` on some features, with the flat positions of the
        on-features in ``read``; every other feature read is exactly 0."""
        flat = read.reshape(-1)
        on_vals = flat[on_index]  # few: inputs are sparse
        above = read > 0.5
        wrong = above.clone().reshape(-1)
        wrong[on_index] = on_vals <= 0.5
        self.wrong_rows[rows] |= wrong.view(read.shape).any(dim=1)
        hits = torch.count_nonzero(on_vals > 0.5)
        n_on = on_vals.numel()
        s_on = on_vals.sum()
        q_all = torch.dot(flat, flat)
        floats = torch.stack(
            [s_on, torch.dot(on_vals, on_vals), flat.sum(), q_all, q_all - 2 * s_on + n_on]
        ).to(torch.float64)
        counts = torch.stack([torch.count_nonzero(above) - hits, n_on - hits]).to(torch.float64)
        self.v[1] += n_on
        self.v[10] += read.numel()
        self.v[[2, 3, 4, 5, 6]] += floats.cpu()
        self.v[[7, 8]] += counts.cpu()

    def end(self) -> None:
        self.v[0] += self.wrong_rows.numel()
        self.v[9] += float(torch.count_nonzero(self.wrong_rows))
        self.wrong_rows = None

    def finish(self, layer: int) -> LayerNoise:
        n, n_on, s_on, q_on, s_all, q_all, sq_err, fp, fn, anyw, cells = self.v.tolist()
        n_off = cells - n_on
        s_off, q_off = s_all - s_on, q_all - q_on

        def mean_std(count: float, s: float, q: float) -> tuple[float, float]:
            if count == 0:
                return 0.0, 0.0
            mean = s / count
            return mean, math.sqrt(max(q / count - mean * mean, 0.0))

        sig_m, sig_s = mean_std(n_on, s_on, q_on)
        int_m, int_s = mean_std(n_off, s_off, q_off)
        return LayerNoise(
            layer=layer,
            features=int(cells / n),
            active_per_sample=n_on / n,
            signal_mean=sig_m,
            signal_std=sig_s,
            interference_mean=int_m,
            interference_std=int_s,
            mse=sq_err / cells,
            false_positives=fp / n,
            false_negatives=fn / n,
            any_wrong=anyw / n,
        )


def on_positions(truth: torch.Tensor) -> torch.Tensor:
    """Flat positions of the on-features (value > 1/2) of a batch of exact values."""
    return torch.nonzero(truth.reshape(-1) > 0.5).squeeze(1)


@torch.no_grad()
def trace_noise(
    circuit: Circuit,
    readers: Mapping[str, Reader],
    sampler: Sampler,
    samples: int,
    batch_size: int = 4096,
    progress: bool = True,
    device: torch.device | str = "cpu",
    desc: str = "tracing",
) -> dict[str, list[LayerNoise]]:
    """Per-layer read-out error of each reader (e.g. a superposed network and its dedicated
    twin) on the same ``samples`` inputs drawn from ``sampler``."""
    if samples <= 0 or batch_size <= 0:
        raise ValueError(f"samples and batch_size must be positive, got {samples}, {batch_size}")
    evaluator = Evaluator(circuit, device)
    sums = {name: [_Sums() for _ in range(circuit.depth + 1)] for name in readers}
    bar = tqdm(total=samples, unit="sample", disable=not progress, leave=False, desc=desc)
    done = 0
    while done < samples:
        batch = min(batch_size, samples - done)
        x = sampler.sample(batch)
        truth = evaluator(x)
        on = [on_positions(exact) for exact in truth]
        for name, reader in readers.items():
            reads = reader(x)
            if len(reads) != len(truth):
                raise ValueError(f"{name} reads {len(reads)} layers, the circuit has {len(truth)}")
            for t, (acc, read) in enumerate(zip(sums[name], reads)):
                acc.add(read, truth[t], on[t])
        done += batch
        bar.update(batch)
    bar.close()
    return {name: [acc.finish(t) for t, acc in enumerate(layers)] for name, layers in sums.items()}


class ChunkReader(Protocol):
    """A network read chunk by chunk (``circuits.streamed``): every (layer, feature, sample)
    read-out exactly once per call, in any order."""

    def read_chunks(self, active: torch.Tensor) -> Iterator[Chunk]: ...


@torch.no_grad()
def trace_streamed(
    circuit: Circuit,
    readers: Mapping[str, ChunkReader],
    sampler: ExactlyActive,
    samples: int,
    batch_size: int = 4096,
    progress: bool = True,
    desc: str = "tracing",
) -> dict[str, list[LayerNoise]]:
    """``trace_noise`` for networks too wide to read whole: inputs are drawn as active indices,
    exact values are kept as on-pairs (``SparseEvaluator``) and read-outs arrive in chunks, so
    nothing of size (batch, m) is made. Same statistics as ``trace_noise`` on the same inputs."""
    if samples <= 0 or batch_size <= 0:
        raise ValueError(f"samples and batch_size must be positive, got {samples}, {batch_size}")
    evaluator = SparseEvaluator(circuit)
    sums = {name: [_Sums() for _ in range(circuit.depth + 1)] for name in readers}
    slots = [torch.full((m_t,), -1, dtype=torch.int64) for m_t in circuit.widths]  # feature -> column
    # progress in read-outs made, chunk by chunk: a batch of a wide network takes minutes
    bar = tqdm(total=samples * sum(circuit.widths) * len(readers), unit="read", unit_scale=True,
               disable=not progress, leave=False, desc=desc)
    done = 0
    while done < samples:
        batch = min(batch_size, samples - done)
        active = sampler.sample_active(batch)
        on = evaluator(active)
        for name, reader in readers.items():
            layers = sums[name]
            for acc in layers:
                acc.begin(batch, sampler.device)
            for chunk in reader.read_chunks(active):
                index = _on_in_chunk(on[chunk.layer], chunk, slots[chunk.layer])
                layers[chunk.layer].add_chunk(chunk.read, index.to(chunk.read.device), chunk.rows)
                bar.update(chunk.read.numel())
            for acc in layers:
                acc.end()
        done += batch
    bar.close()
    return {name: [acc.finish(t) for t, acc in enumerate(layers)] for name, layers in sums.items()}


def _on_in_chunk(on: torch.Tensor, chunk: Chunk, slot: torch.Tensor) -> torch.Tensor:
    """Flat positions in ``chunk.read`` of the on-pairs (sample, feature) that fall in it."""
    sample, feature = on
    if isinstance(chunk.features, slice):
        column = feature - chunk.features.start
        width = chunk.features.stop - chunk.features.start
        inside = (column >= 0) & (column < width)
    else:
        features = chunk.features.cpu()
        width = features.numel()
        slot[features] = torch.arange(width)
        column = slot[feature]
        slot[features] = -1
        inside = column >= 0
    inside &= (sample >= chunk.rows.start) & (sample < chunk.rows.stop)
    return (sample[inside] - chunk.rows.start) * width + column[inside]
