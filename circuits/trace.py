"""The tracer: every reader (a network, its dedicated twin, probes, a streamed network) fed the
same sampled inputs batch by batch, each batch's exact values computed once, and every metric
(``circuits.metrics``) updated with each reader's read-outs. Memory is bounded by the batch.

``trace`` is the one tracer; ``trace_noise`` is it with the per-layer noise statistics of a
boolean circuit, the measurement most scenarios print.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from tqdm import tqdm

from circuits.evaluate import Evaluator, SparseEvaluator
from circuits.metrics import Exact, LayerNoise, LayerNoiseStats, Metric
from circuits.readers import ChunkReader, as_reader
from circuits.sampling import Batch, draw
from circuits.spec import Circuit
from layers.weights import Weight

# Anything that maps a batch of inputs to one (batch, m_t) read-out per layer.
Reader = Callable[[torch.Tensor], list[torch.Tensor]]
# The exact values of every layer of a batch.
Truth = Callable[[Batch], list[Exact]]


def linear_reader(network: Any, readouts: list[Weight]) -> Reader:
    """Read layer t as ``readouts[t](stream_t)`` (e.g. probes fitted to a network), for any
    module with a ``streams(x)`` method."""

    def read(x: torch.Tensor) -> list[torch.Tensor]:
        return [r(s) for s, r in zip(network.streams(x), readouts)]

    return read


def boolean_truth(circuit: Circuit, device: torch.device | str = "cpu", sparse: bool = False) -> Truth:
    """The exact values of a boolean circuit: dense (``Evaluator``), or as on-pairs
    (``SparseEvaluator``) for circuits too wide for a (batch, m) tensor."""
    if sparse:
        evaluator = SparseEvaluator(circuit)
        return lambda batch: [Exact(batch.size, m_t, pairs=on)
                              for m_t, on in zip(circuit.widths, evaluator(batch.pairs()))]
    dense = Evaluator(circuit, device)
    return lambda batch: [Exact(batch.size, m_t, dense=v) for m_t, v in zip(circuit.widths, dense(batch.dense()))]


@torch.no_grad()
def trace(
    readers: Mapping[str, ChunkReader | Reader],
    sampler: Any,
    samples: int,
    truth: Truth,
    metrics: Mapping[str, Mapping[str, Callable[[], Metric]]],
    batch_size: int = 4096,
    progress: bool = True,
    desc: str = "tracing",
    layers: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Each reader's metrics over ``samples`` inputs from ``sampler`` (anything with ``draw(b)`` or
    ``sample(b)``): ``{reader: {metric: metric.compute()}}``. ``metrics[reader]`` names the
    metrics of that reader and makes each (``each`` gives every reader the same ones); ``layers``
    (when given) is checked against what each reader reads."""
    if samples <= 0 or batch_size <= 0:
        raise ValueError(f"samples and batch_size must be positive, got {samples}, {batch_size}")
    if set(metrics) != set(readers):
        raise ValueError(f"metrics are given for {sorted(metrics)}, the readers are {sorted(readers)}")
    chunked = {name: as_reader(r) for name, r in readers.items()}
    state = {name: {key: make() for key, make in metrics[name].items()} for name in chunked}
    bar = tqdm(total=samples, unit="sample", disable=not progress, leave=False, desc=desc)
    done = 0
    while done < samples:
        size = min(batch_size, samples - done)
        batch = draw(sampler, size)
        batch.exact = truth(batch)
        for name, reader in chunked.items():
            for metric in state[name].values():
                metric.begin(batch)
            seen = set()
            for chunk in reader.read_chunks(batch):
                if layers is not None and chunk.layer >= layers:
                    raise ValueError(f"{name} reads layer {chunk.layer}, the circuit has {layers}")
                seen.add(chunk.layer)
                for metric in state[name].values():
                    metric.update(chunk, batch)
            if layers is not None and len(seen) != layers:
                raise ValueError(f"{name} reads {len(seen)} layers, the circuit has {layers}")
            for metric in state[name].values():
                metric.end(batch)
        done += size
        bar.update(size)
    bar.close()
    return {name: {key: metric.compute() for key, metric in ms.items()} for name, ms in state.items()}


def each(readers: Iterable[str], metrics: Mapping[str, Callable[[], Metric]]) -> dict[str, dict]:
    """The same metrics for every reader (a mapping of readers or their names)."""
    return {name: dict(metrics) for name in readers}


def trace_noise(
    circuit: Circuit,
    readers: Mapping[str, ChunkReader | Reader],
    sampler: Any,
    samples: int,
    batch_size: int = 4096,
    progress: bool = True,
    device: torch.device | str = "cpu",
    desc: str = "tracing",
) -> dict[str, list[LayerNoiseStats]]:
    """Per-layer read-out error (``metrics.LayerNoise``) of each reader (e.g. a superposed network
    and its dedicated twin) on the same ``samples`` inputs. When every reader reads in chunks (a
    streamed network), the exact values are kept as on-pairs, never a (batch, m) tensor."""
    sparse = bool(readers) and all(hasattr(r, "read_chunks") for r in readers.values())
    got = trace(readers, sampler, samples, boolean_truth(circuit, device, sparse),
                each(readers, {"noise": lambda: LayerNoise(circuit.widths)}), batch_size, progress, desc,
                len(circuit.widths))
    return {name: out["noise"] for name, out in got.items()}
