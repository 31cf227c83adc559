"""compile_superposed's network at sizes whose matrices cannot be stored.

``StreamedSuperposed`` computes the same network as ``compile_superposed`` (same seeds, same
directions, same neurons) without holding any m x n matrix: each layer is a pass over chunks of
its gates, the directions of a chunk are made on demand (``layers.Directions``), the input
stream is written by gathering the active directions, and a gate chunk whose outputs are mostly
0 (after clean-up) writes only its non-zero outputs. Memory is bounded by the chunk, and
``plan_streamed`` sizes the chunk and states the memory it takes, from one formula.

Read-outs come out chunk by chunk (``circuits.readers.Chunk``), for the tracer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import torch
from einops import reduce

from circuits.compile import CLEANUPS, CompiledNetwork, Cost, LayerNeurons, layer_neurons, superposed_directions
from circuits.readers import Chunk
from circuits.sampling import Batch
from circuits.spec import Circuit, gate_arrays
from layers.embeddings import Directions

T = TypeVar("T")

FLOAT = 4  # bytes
INDEX = 8
MiB = 2**20
CHUNK_BUDGET = 256 * MiB  # what one chunk's buffers may take
MAX_BATCH = 4096  # samples per pass (each pass makes every direction once)
PROCESS = 400 * MiB  # Python, torch and the rest of the process


@dataclass(frozen=True)
class ChunkPlan:
    """How a streamed run is cut, and the memory that takes (bytes)."""

    batch: int  # samples per pass
    chunk: int  # gates (features) per chunk
    fixed: int  # held for the whole run: index tensors of the circuit, O(m)
    per_batch: int  # streams and on-pairs of one batch
    per_chunk: int  # directions, reads and neurons of one chunk
    twin: int  # the dedicated twin's streams on a sub-batch of batch x chunk floats each

    @property
    def bytes(self) -> int:
        return PROCESS + self.fixed + self.per_batch + self.per_chunk + self.twin


def plan_streamed(widths: list[int], n: int, fan_in: int, samples: int, active: int,
                  budget: int = CHUNK_BUDGET) -> ChunkPlan:
    """The chunk size that keeps one chunk's buffers within ``budget``, and the run's memory.

    Per gate of a chunk: the directions read (fan_in rows) and written (one row), n floats each,
    and per sample its reads, neurons (two per gate, before and after the ReLU) and output.
    Per feature and layer, held throughout: the circuit's kinds and inputs, the sparse
    evaluator's reader lists and the twin's weights (about 100 bytes); for the widest layer, its
    neurons while they are laid out (two per gate, about 140 bytes each). The dedicated twin
    runs on sub-batches of batch x chunk floats per tensor (``ChunkedNetwork``), each layer's
    stream and read-out alive at once."""
    m = max(widths)
    batch = max(1, min(samples, MAX_BATCH))
    per_gate = FLOAT * ((fan_in + 1) * n + batch * (fan_in + 2 * 2 + 1))
    chunk = int(max(64, min(m, budget // per_gate)))
    fixed = sum(widths) * (16 + 40 + 40) + m * 2 * 140
    per_batch = FLOAT * 3 * batch * n + INDEX * 2 * batch * active * (len(widths) + 4)
    twin = FLOAT * batch * chunk * (2 * len(widths) + 2)
    return ChunkPlan(batch, chunk, fixed, per_batch, chunk * per_gate, twin)


@dataclass(frozen=True)
class _Shape:
    """What makes a layer's neurons cheap to compute: one input edge per neuron, the same
    number of neurons per gate, all ReLU or all linear."""

    one_edge: bool
    per_gate: int  # 0 when gates differ
    all_relu: bool
    all_linear: bool

    @classmethod
    def of(cls, ln: LayerNeurons) -> _Shape:
        counts = ln.first_neuron.diff()
        per_gate = int(counts[0]) if bool((counts == counts[0]).all()) else 0
        return cls(bool((ln.first_edge.diff() == 1).all()), per_gate, bool(ln.relu.all()), not bool(ln.relu.any()))


class StreamedSuperposed:
    """The superposed network of ``compile_superposed(circuit, n, embedding, cleanup, generator)``,
    computed chunk by chunk."""

    def __init__(self, circuit: Circuit, n: int, embedding: str = "random", cleanup: str = "none",
                 generator: torch.Generator | None = None, chunk: int = 4096,
                 device: torch.device | str = "cpu", draws: str = "torch") -> None:
        if cleanup not in CLEANUPS:
            raise ValueError(f"unknown cleanup {cleanup!r}; choose one of {', '.join(CLEANUPS)}")
        if chunk <= 0:
            raise ValueError(f"chunk must be positive, got {chunk}")
        self.circuit, self.n, self.cleanup, self.chunk = circuit, n, cleanup, chunk
        self.device = torch.device(device)
        self.directions = superposed_directions(circuit, n, embedding, generator, draws)
        # where directions are made: counter draws on the device itself, torch draws on the CPU
        self.draw_device = self.device if draws == "counter" else torch.device("cpu")
        # where every feature of layer t is read by exactly one gate of layer t + 1 (a relay), the
        # reads that feed the gates are all the reads of layer t: no separate pass is needed
        self.fused = []
        for t, layer in enumerate(circuit.layers):
            _, inputs, _ = gate_arrays(layer)
            used = inputs[inputs >= 0]
            once = used.numel() == circuit.widths[t] and bool(
                (torch.bincount(used, minlength=circuit.widths[t]) == 1).all())
            self.fused.append(once)

    def cost(self) -> Cost:
        """What the stored network would spend: its read and write weights are dense n x neurons
        and its embedding n x m (the non-zeros are not counted)."""
        n, widths = self.n, self.circuit.widths
        neurons = [int(layer_neurons(layer, self.cleanup).hidden) for layer in self.circuit.layers]
        parameters = widths[0] * n + sum(h * (2 * n + 1) for h in neurons)
        return Cost(neurons, [n] * len(widths), parameters, None)

    @torch.no_grad()
    def read_chunks(self, inputs: Batch) -> Iterator[Chunk]:
        """Every layer's read-outs, chunk by chunk, for a batch of 0/1 inputs (its on-pairs)."""
        batch = inputs.size
        rows = slice(0, batch)
        dev = self.device
        # the input stream: the sum of each sample's active directions, gathered
        stream = torch.zeros(batch, self.n, device=dev)
        sample, feature = inputs.pairs()
        if feature.numel():
            unique, inverse = torch.unique(feature, return_inverse=True)
            vectors = self.directions[0].rows(unique, dev)
            stream.index_add_(0, sample.to(dev), vectors[inverse.to(dev)])
        for t, layer in enumerate(self.circuit.layers):
            ln = layer_neurons(layer, self.cleanup)
            shape = _Shape.of(ln)
            phi_in, phi_out = self.directions[t], self.directions[t + 1]
            new = torch.zeros(batch, self.n, device=dev)
            bounds = [(s, min(s + self.chunk, len(layer))) for s in range(0, len(layer), self.chunk)]
            # linear gates write every output: their write directions are made ahead too
            jobs = [partial(self._gate_chunk_rows, ln, s, e, phi_in, phi_out if shape.all_linear else None,
                            self.draw_device) for s, e in bounds]
            for (s, e), (features, position, phi_read, phi_write) in zip(bounds, _made_ahead(jobs)):
                a, b = int(ln.first_neuron[s]), int(ln.first_neuron[e])
                ea, eb = int(ln.first_edge[a]), int(ln.first_edge[b])
                read = stream @ phi_read.to(dev).T
                if self.fused[t]:
                    yield Chunk(t, rows, features.to(dev), read)
                pre = self._neurons_in(ln, read, position, a, b, ea, eb, shape)
                if shape.all_relu:
                    post = torch.relu_(pre)
                elif shape.all_linear:
                    post = pre
                else:
                    post = torch.where(ln.relu[a:b].to(dev), torch.relu(pre), pre)
                post *= ln.out_coef[a:b].to(dev)
                if shape.per_gate:  # gates of q neurons each, side by side
                    out = reduce(post, "b (g q) -> b g", "sum", q=shape.per_gate)
                else:
                    out = torch.zeros(batch, e - s, device=dev).index_add_(1, (ln.gate[a:b] - s).to(dev), post)
                live = torch.nonzero(out.ne(0).any(dim=0)).squeeze(1)
                if live.numel() == e - s:
                    new += out @ (phi_out.span(s, e, self.draw_device) if phi_write is None else phi_write).to(dev)
                elif live.numel():  # write only the gates that are on somewhere in the batch
                    new += out[:, live] @ phi_out.rows(live.cpu() + s, dev)
            if not self.fused[t]:
                yield from self._layer_reads(t, stream)
            stream = new
        yield from self._layer_reads(self.circuit.depth, stream)

    @staticmethod
    def _gate_chunk_rows(ln: LayerNeurons, s: int, e: int, phi_in: Directions, phi_out: Directions | None,
                         where: torch.device):
        """Gates s..e-1: the features they read, where each edge's feature sits among them, and
        the directions read (and written, when ``phi_out`` is given)."""
        a, b = int(ln.first_neuron[s]), int(ln.first_neuron[e])
        ea, eb = int(ln.first_edge[a]), int(ln.first_edge[b])
        features, position = torch.unique(ln.edge_input[ea:eb], return_inverse=True)
        return features, position, phi_in.rows(features, where), None if phi_out is None else phi_out.span(s, e, where)

    def _neurons_in(self, ln: LayerNeurons, read: torch.Tensor, position: torch.Tensor, a: int, b: int,
                    ea: int, eb: int, shape: _Shape) -> torch.Tensor:
        """Pre-activations of neurons a..b-1 from the reads of their inputs (edges ea..eb-1)."""
        dev = self.device
        terms = read.index_select(1, position.to(dev)).mul_(ln.edge_weight[ea:eb].to(dev))
        if shape.one_edge:  # edge j feeds neuron a + j
            pre = terms
        else:
            neuron = (ln.edge_neuron[ea:eb] - a).to(dev)
            pre = torch.zeros(read.shape[0], b - a, device=dev).index_add_(1, neuron, terms)
        return pre.add_(ln.bias[a:b].to(dev))

    def _layer_reads(self, t: int, stream: torch.Tensor) -> Iterator[Chunk]:
        phi = self.directions[t]
        bounds = [(s, min(s + self.chunk, phi.m)) for s in range(0, phi.m, self.chunk)]
        for (s, e), rows in zip(bounds, _made_ahead([partial(phi.span, s, e, self.draw_device) for s, e in bounds])):
            yield Chunk(t, slice(0, stream.shape[0]), slice(s, e), stream @ rows.to(self.device).T)


def _made_ahead(jobs: Sequence[Callable[[], T]]) -> Iterator[T]:
    """Each job's result in turn, the next one made in a worker thread meanwhile: drawing the
    next chunk's directions (one core, Python-bound) overlaps the current chunk's products."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        if not jobs:
            return
        pending = pool.submit(jobs[0])
        for k in range(len(jobs)):
            result = pending.result()
            if k + 1 < len(jobs):
                pending = pool.submit(jobs[k + 1])
            yield result


class ChunkedNetwork:
    """A stored CompiledNetwork (such as the dedicated twin) read on sub-batches of samples, so
    that its (samples, width) streams stay within about ``elements`` floats each."""

    def __init__(self, net: CompiledNetwork, elements: int, device: torch.device | str = "cpu") -> None:
        self.net, self.device = net, torch.device(device)
        widest = max(net.network.stream_widths + net.network.neurons() + net.circuit.widths)
        self.sub = max(1, elements // widest)

    @torch.no_grad()
    def read_chunks(self, inputs: Batch) -> Iterator[Chunk]:
        """Sub-batch by sub-batch, from the batch's on-pairs (sorted by sample): no (batch, m)
        tensor is made."""
        sample, feature = inputs.pairs()
        for a in range(0, inputs.size, self.sub):
            b = min(a + self.sub, inputs.size)
            lo, hi = torch.searchsorted(sample, torch.tensor([a, b])).tolist()
            x = torch.zeros(b - a, self.net.circuit.n_inputs, device=self.device)
            x[(sample[lo:hi] - a).to(self.device), feature[lo:hi].to(self.device)] = 1.0
            for t, read in enumerate(self.net.read_features(x)):
                yield Chunk(t, slice(a, b), slice(0, read.shape[1]), read)
