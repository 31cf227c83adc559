"""The noise tracer against hand-computed sums and the closed forms of docs/theory.md."""

import math

import pytest
import torch
from conftest import gen

from circuits import theory
from circuits.compile import compile_dedicated, compile_superposed
from circuits.generators import random_circuit, relay
from circuits.metrics import Exact, LayerNoise, PerCircuit, boolean_decode
from circuits.readers import Chunk
from circuits.sampling import Batch, ExactlyActive
from circuits.spec import Circuit
from circuits.trace import trace_noise


def test_statistics_by_hand():
    read = torch.tensor([[0.9, 0.6, 0.1], [0.2, 0.4, 1.2]])
    truth = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    metric = LayerNoise([3])
    for rows in (slice(0, 1), slice(1, 2)):  # two batches of one sample
        batch = Batch.of(truth[rows])
        batch.exact = [Exact(1, 3, dense=truth[rows])]
        metric.begin(batch)
        metric.update(Chunk(0, slice(0, 1), slice(0, 3), read[rows]), batch)
        metric.end(batch)
    s = metric.compute()[0]
    on = [0.9, 0.4, 1.2]
    off = [0.6, 0.1, 0.2]
    assert s.active_per_sample == 1.5 and s.features == 3
    assert s.signal_mean == pytest.approx(sum(on) / 3)
    assert s.signal_std == pytest.approx(torch.tensor(on).std(unbiased=False).item(), rel=1e-5)
    assert s.interference_mean == pytest.approx(0.3)
    assert s.interference_std == pytest.approx(torch.tensor(off).std(unbiased=False).item(), rel=1e-5)
    sq = [0.01, 0.36, 0.01, 0.04, 0.36, 0.04]
    assert s.mse == pytest.approx(sum(sq) / 6)
    assert s.false_positives == 0.5  # 0.6 in sample 0
    assert s.false_negatives == 0.5  # 0.4 in sample 1
    assert s.any_wrong == 1.0


def test_chunks_of_a_batch_give_the_whole_batchs_statistics():
    read = torch.rand(4, 6, generator=gen(0))
    truth = (torch.rand(4, 6, generator=gen(1)) < 0.3).float()
    whole, parts = LayerNoise([6]), LayerNoise([6])
    batch = Batch.of(truth)
    batch.exact = [Exact(4, 6, dense=truth)]
    for metric, chunks in ((whole, [(slice(0, 4), slice(0, 6))]),
                           (parts, [(slice(0, 2), slice(0, 6)), (slice(2, 4), slice(0, 3)),
                                    (slice(2, 4), torch.tensor([5, 3, 4]))])):
        metric.begin(batch)
        for rows, cols in chunks:
            metric.update(Chunk(0, rows, cols, read[rows][:, cols]), batch)
        metric.end(batch)
    assert whole.compute()[0].to_dict() == pytest.approx(parts.compute()[0].to_dict())


@pytest.mark.parametrize("noise", [0.02, 0.2, 1.0])  # no row, some rows, every row with a false positive
def test_fused_statistics_match_the_direct_computation(noise):
    truth = torch.zeros(64, 40)
    truth.scatter_(1, torch.rand(64, 40, generator=gen(2)).argsort(1)[:, :3], 1.0)
    read = (truth + noise * torch.randn(64, 40, generator=gen(3))).T.contiguous().T  # not contiguous
    kept = read.clone()
    metric = LayerNoise([40])
    batch = Batch.of(truth)
    batch.exact = [Exact(64, 40, dense=truth)]
    metric.begin(batch)
    metric.update(Chunk(0, slice(0, 64), slice(0, 40), read), batch)
    metric.end(batch)
    s = metric.compute()[0]
    on, off = read[truth > 0.5].double(), read[truth < 0.5].double()
    wrong = ((read > 0.5) != (truth > 0.5))
    assert torch.equal(read, kept)  # the read-out is left as it was
    assert s.signal_mean == pytest.approx(on.mean().item(), rel=1e-6)
    # moments from float32 sums: a spread of 0.02 about a mean of 1 keeps about 3 digits
    assert s.signal_std == pytest.approx(on.std(unbiased=False).item(), rel=1e-3)
    assert s.interference_mean == pytest.approx(off.mean().item(), rel=1e-5, abs=1e-7)
    assert s.interference_std == pytest.approx(off.std(unbiased=False).item(), rel=1e-5)
    assert s.mse == pytest.approx(((read.double() - truth) ** 2).mean().item(), rel=1e-6)
    assert s.false_positives == ((read > 0.5) & (truth < 0.5)).sum().item() / 64
    assert s.false_negatives == ((read <= 0.5) & (truth > 0.5)).sum().item() / 64
    assert s.any_wrong == wrong.any(dim=1).double().mean().item()


def test_per_circuit_error_by_hand():
    # two circuits of two features (feature 1 the on-indicator); circuit 0 active
    exact = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    read = torch.tensor([[0.5, 0.9, 0.2, 0.7]])
    batch = Batch.of(exact, active=torch.tensor([[True, False]]))
    batch.exact = [Exact(1, 4, dense=exact)]
    metric = PerCircuit(1, 2, 2, boolean_decode(1))
    metric.update(Chunk(0, slice(0, 1), slice(0, 4), read), batch)
    s = metric.compute()[0]
    assert s.error_active == pytest.approx(0.25 + 0.01) and s.error_inactive == pytest.approx(0.04 + 0.49)
    assert s.on_error_active == pytest.approx(0.01) and s.on_error_inactive == pytest.approx(0.49)
    assert s.switched_on == 1 and s.active == 1 and s.inactive == 1
    assert s.worst_active == pytest.approx(0.26**0.5) and s.exact_norm_active == 2


def _trace(circuit, nets, m, l, samples, batch=4096, seed=1):
    readers = {net.name: net.read_features for net in nets}
    return trace_noise(circuit, readers, ExactlyActive(m, l, seed), samples, batch, progress=False)


def test_chunking_does_not_change_the_numbers():
    c = relay(64, 2, gen(0))
    net = compile_superposed(c, 16, "random", "none", gen(1))
    a = _trace(c, [net], 64, 3, 3000, batch=3000)["superposed"]
    b = _trace(c, [net], 64, 3, 3000, batch=700)["superposed"]
    for x, y in zip(a, b):
        assert x.mse == pytest.approx(y.mse, rel=1e-4)
        assert x.false_positives == y.false_positives


@pytest.mark.parametrize("l", [2, 8, 32])
def test_interference_std_is_sqrt_l_over_n(l):
    m, n = 1024, 128
    c = Circuit(m, [])
    net = compile_superposed(c, n, "random", "none", gen(l))
    s = _trace(c, [net], m, l, 4000)["superposed"][0]
    assert s.interference_std == pytest.approx(math.sqrt(l / n), rel=0.03)
    predicted = theory.false_positives(m, l, n)
    if predicted >= 0.5:
        assert s.false_positives == pytest.approx(predicted, rel=0.2)


def test_relay_without_cleanup_follows_the_recursion():
    m, n, l, depth = 512, 128, 2, 4
    c = relay(m, depth, gen(0))
    net = compile_superposed(c, n, "random", "none", gen(1))
    rows = _trace(c, [net], m, l, 8000)["superposed"]
    for row, predicted in zip(rows, theory.relay_mse(m, n, l, depth)):
        assert row.mse == pytest.approx(predicted, rel=0.10), row.layer


def test_relay_with_cleanup_stays_near_l_over_n():
    m, n, l, depth = 512, 256, 2, 3
    c = relay(m, depth, gen(0))
    net = compile_superposed(c, n, "random", "threshold", gen(1))
    rows = _trace(c, [net], m, l, 8000)["superposed"]
    flat = theory.cleanup_mse(m, n, l)
    mf_mse, _ = theory.mean_field_cleanup_relay(m, n, l, depth)
    for row, mf in zip(rows, mf_mse):
        assert row.mse == pytest.approx(flat, rel=0.15)
        assert row.mse == pytest.approx(mf, rel=0.05)


@pytest.mark.parametrize("gates", [None, ("AND",), ("OR",), ("AND", "OR", "BUF", "NOT")])
def test_dedicated_twin_is_exact_at_every_layer(gates):
    m = 128
    c = relay(m, 3, gen(0)) if gates is None else random_circuit(m, 3, m, 2, gates, gen(0))
    rows = _trace(c, [compile_dedicated(c)], m, 6, 2000)["dedicated"]
    for row in rows:
        assert row.mse == 0.0 and row.wrong_features == 0.0 and row.any_wrong == 0.0


def test_bad_sizes_are_refused():
    c = relay(8, 1, gen(0))
    with pytest.raises(ValueError, match="positive"):
        _trace(c, [compile_dedicated(c)], 8, 1, 0)


def test_any_linear_readout_can_be_traced():
    from circuits.trace import linear_reader
    from layers.weights import Dense

    c = relay(32, 2, gen(0))
    net = compile_superposed(c, 32, "identity", "none")
    # reading every layer with the zero matrix: every on-feature is a false negative, MSE = l/m
    zeros = [Dense(torch.zeros(32, 32)) for _ in range(3)]
    rows = trace_noise(c, {"zero": linear_reader(net.network, zeros)}, ExactlyActive(32, 4, 0), 500,
                       progress=False)["zero"]
    for row in rows:
        assert row.false_negatives == 4 and row.false_positives == 0 and row.mse == pytest.approx(4 / 32)
