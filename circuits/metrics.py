"""What the tracer measures, as metrics: each sees every chunk of read-outs a reader gives for a
batch, beside the batch's exact values, and keeps running sums (float64), so memory is bounded
by the batch, not by the number of samples.

A metric has ``begin(batch)``, ``update(chunk, batch)`` for every chunk, ``end(batch)`` and
``compute()``; the exact values of layer t are ``batch.exact[t]`` (an ``Exact``). Two metrics
are here: ``LayerNoise`` (per layer: signal and interference, MSE, false positives and
negatives) and ``PerCircuit`` (for networks of many small circuits: error of the active and of
the inactive circuits, on-indicators switched on, the worst error).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

import torch

from circuits.readers import Chunk
from circuits.sampling import Batch


class Exact:
    """The exact values of one layer of a batch: dense (size, width), or the on-pairs (2, nnz)
    of a boolean layer, each made from the other on first use."""

    def __init__(self, size: int, width: int, dense: torch.Tensor | None = None,
                 pairs: torch.Tensor | None = None) -> None:
        self.size, self.width, self._dense, self._pairs = size, width, dense, pairs

    def dense(self) -> torch.Tensor:
        if self._dense is None:
            assert self._pairs is not None
            x = torch.zeros(self.size, self.width)
            x[self._pairs[0], self._pairs[1]] = 1.0
            self._dense = x
        return self._dense

    def pairs(self) -> torch.Tensor:
        if self._pairs is None:
            self._pairs = torch.nonzero(self.dense() > 0.5).T.cpu()
        return self._pairs


class Metric(Protocol):
    def begin(self, batch: Batch) -> None: ...

    def update(self, chunk: Chunk, batch: Batch) -> None: ...

    def end(self, batch: Batch) -> None: ...

    def compute(self) -> object: ...


# ---- per-layer noise statistics ------------------------------------------------------------------


@dataclass(frozen=True)
class LayerNoiseStats:
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


@dataclass
class _NoiseSums:
    samples: float = 0.0
    on: float = 0.0
    sum_on: float = 0.0
    sq_on: float = 0.0
    sum_all: float = 0.0
    sq_all: float = 0.0
    sq_err: float = 0.0
    false_pos: float = 0.0
    false_neg: float = 0.0
    any_wrong: float = 0.0
    cells: float = 0.0


class LayerNoise:
    """Per layer: signal (reads of on-features) and interference (reads of off-features), mean
    and spread; MSE against the exact 0/1 values; wrong features per sample at the threshold 1/2;
    the fraction of samples with any wrong feature. Works on chunks of any shape: the exact
    values are read as on-pairs, so a streamed network's truth is never made dense."""

    def __init__(self, widths: list[int]) -> None:
        self.sums = [_NoiseSums() for _ in widths]
        self.wrong_rows: list[torch.Tensor] = []
        self.slots = [torch.full((m_t,), -1, dtype=torch.int64) for m_t in widths]  # feature -> column

    def begin(self, batch: Batch) -> None:
        self.wrong_rows = [torch.zeros(batch.size, dtype=torch.bool, device=batch.device) for _ in self.sums]

    def update(self, chunk: Chunk, batch: Batch) -> None:
        read, t = chunk.read.contiguous(), chunk.layer  # a view of it is written to below
        if read.numel() == 0:
            return
        on_index = _on_in_chunk(batch.exact[t].pairs(), chunk, self.slots[t]).to(read.device)
        flat = read.view(-1)
        on_vals = flat[on_index]  # few: inputs are sparse
        # The few on-cells are taken out (set to 0, restored below), so that every statistic of
        # the off-cells comes from three passes over the read-out: row maxima, sum, sum of squares.
        flat[on_index] = 0.0
        row_max = read.amax(dim=1)
        s_off, q_off = flat.sum(), torch.dot(flat, flat)
        rows_fp = row_max > 0.5
        hot = torch.nonzero(rows_fp).squeeze(1)
        # false positives live only in rows whose maximum passes 1/2; count there alone
        fp = torch.count_nonzero(read[hot] > 0.5) if hot.numel() < read.shape[0] else torch.count_nonzero(read > 0.5)
        flat[on_index] = on_vals
        misses = on_vals <= 0.5
        rows = self.wrong_rows[t].to(read.device)
        rows_wrong = rows_fp
        rows_wrong[torch.div(on_index[misses], read.shape[1], rounding_mode="floor")] = True
        rows[chunk.rows] |= rows_wrong
        self.wrong_rows[t] = rows
        n_on = on_vals.numel()
        fn = torch.count_nonzero(misses)
        s_on, q_on, miss_on = on_vals.sum(), torch.dot(on_vals, on_vals), torch.sum((on_vals - 1.0) ** 2)
        floats = torch.stack([s_on, q_on, s_off + s_on, q_off + q_on, q_off + miss_on])
        s_on_, q_on_, s_all_, q_all_, sq_err_ = floats.double().tolist()
        fp_, fn_ = torch.stack([fp, fn]).double().tolist()
        acc = self.sums[t]
        acc.on += n_on
        acc.cells += read.numel()
        acc.sum_on += s_on_
        acc.sq_on += q_on_
        acc.sum_all += s_all_
        acc.sq_all += q_all_
        acc.sq_err += sq_err_
        acc.false_pos += fp_
        acc.false_neg += fn_

    def end(self, batch: Batch) -> None:
        for acc, rows in zip(self.sums, self.wrong_rows):
            acc.samples += rows.numel()
            acc.any_wrong += float(torch.count_nonzero(rows))

    def compute(self) -> list[LayerNoiseStats]:
        return [_noise_stats(t, acc) for t, acc in enumerate(self.sums)]


def _noise_stats(layer: int, a: _NoiseSums) -> LayerNoiseStats:
    n, n_off = a.samples, a.cells - a.on
    s_off, q_off = a.sum_all - a.sum_on, a.sq_all - a.sq_on

    def mean_std(count: float, s: float, q: float) -> tuple[float, float]:
        if count == 0:
            return 0.0, 0.0
        mean = s / count
        return mean, math.sqrt(max(q / count - mean * mean, 0.0))

    sig_m, sig_s = mean_std(a.on, a.sum_on, a.sq_on)
    int_m, int_s = mean_std(n_off, s_off, q_off)
    return LayerNoiseStats(layer=layer, features=int(a.cells / n), active_per_sample=a.on / n, signal_mean=sig_m,
                           signal_std=sig_s, interference_mean=int_m, interference_std=int_s, mse=a.sq_err / a.cells,
                           false_positives=a.false_pos / n, false_negatives=a.false_neg / n, any_wrong=a.any_wrong / n)


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


# ---- per circuit ----------------------------------------------------------------------------------

# A decoding of one layer's read-outs grouped by circuit, (batch, T, d) -> (the on-indicator
# (batch, T), the state (batch, T, k)): the error of a circuit is the squared distance of its state
# from the exact one, summed over k.
Decode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def boolean_decode(on_feature: int) -> Decode:
    """Boolean small circuits: the state is every feature, the indicator is feature ``on_feature``."""
    return lambda v: (v[:, :, on_feature], v)


@dataclass(frozen=True)
class CircuitStats:
    """Per layer, sums over every sampled input: squared state error of the active and the
    inactive circuits, squared indicator error of each, inactive circuits whose indicator reads
    above 1/2, the exact active states' squared norm, the largest active error (not squared), and
    the counts of active and inactive circuits."""

    error_active: float
    error_inactive: float
    on_error_active: float
    on_error_inactive: float
    switched_on: float
    exact_norm_active: float
    worst_active: float
    active: float
    inactive: float


class PerCircuit:
    """Error per circuit for a network of T small circuits of width d each (features grouped by
    circuit), split by whether the circuit is active in the input (``batch.extra["active"]``,
    (batch, T) bool). Reads come whole per layer (a ``DenseReader``)."""

    def __init__(self, layers: int, T: int, d: int, decode: Decode) -> None:
        self.T, self.d, self.decode = T, d, decode
        self.sums = torch.zeros(layers, 8, dtype=torch.float64)
        self.worst = torch.zeros(layers, dtype=torch.float64)

    def begin(self, batch: Batch) -> None:
        pass

    def update(self, chunk: Chunk, batch: Batch) -> None:
        t, b = chunk.layer, batch.size
        if not isinstance(chunk.features, slice) or chunk.rows != slice(0, b):
            raise ValueError("a per-circuit metric needs every read-out of a layer in one chunk")
        active = batch.extra["active"]
        inactive = ~active
        on, state = self.decode(chunk.read.view(b, self.T, self.d))
        true_on, true_state = self.decode(batch.exact[t].dense().view(b, self.T, self.d))
        err = ((state - true_state).double() ** 2).sum(2)  # (b, T)
        on_err = (on - true_on).double() ** 2
        self.sums[t] += torch.stack([
            (err * active).sum(), (err * inactive).sum(), (on_err * active).sum(), (on_err * inactive).sum(),
            ((on > 0.5) & inactive).sum().double(), ((true_state.double() ** 2).sum(2) * active).sum(),
            active.sum().double(), inactive.sum().double()]).cpu()
        if bool(active.any()):
            self.worst[t] = max(self.worst[t], err[active].sqrt().max().cpu())

    def end(self, batch: Batch) -> None:
        pass

    def compute(self) -> list[CircuitStats]:
        out = []
        for t in range(self.sums.shape[0]):
            e_a, e_i, o_a, o_i, switched, norm, n_a, n_i = self.sums[t].tolist()
            out.append(CircuitStats(e_a, e_i, o_a, o_i, switched, norm, float(self.worst[t]), n_a, n_i))
        return out


class ActiveUnits:
    """Per layer, the fraction of a read-out's entries above ``threshold``, summed over samples
    (read from a network's streams: how many neurons a layer switches on)."""

    def __init__(self, layers: int, threshold: float = 1e-4) -> None:
        self.threshold = threshold
        self.sums = [0.0] * layers

    def begin(self, batch: Batch) -> None:
        pass

    def update(self, chunk: Chunk, batch: Batch) -> None:
        self.sums[chunk.layer] += float((chunk.read > self.threshold).float().mean(1).sum().double())

    def end(self, batch: Batch) -> None:
        pass

    def compute(self) -> list[float]:
        return list(self.sums)
