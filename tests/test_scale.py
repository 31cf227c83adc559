"""Scale: directions made on demand, sparse inputs and truth, the streamed network, the chunk plan,
and the sparse builds of circuits in superposition and U-AND, each against its stored twin."""

import pytest
import torch
from conftest import gen

from circuits.cis2025 import build_cis2025
from circuits.compile import compile_dedicated, compile_superposed, superposed_directions
from circuits.evaluate import Evaluator, SparseEvaluator
from circuits.generators import random_circuit, relay
from circuits.sampling import Batch, ExactlyActive
from circuits.small import rotation_circuits
from circuits.spec import GATES, Circuit, CircuitError, Gate, GateArray
from circuits.streamed import CHUNK_BUDGET, ChunkedNetwork, StreamedSuperposed, plan_streamed
from circuits.trace import trace_noise
from circuits.uand import compile_uand, random_connections
from layers.embeddings import Directions, _row_seeds
from layers.weights import LowRankPlus, Sparse
from scenarios import UsageError, run

# ---- directions on demand -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["random", "sign", "identity"])
def test_rows_on_demand_equal_the_stored_matrix(kind):
    d = Directions(kind, 300, 64 if kind != "identity" else 300, seed=11)
    stored = d.dense()
    index = torch.tensor([299, 0, 17, 17, 150])
    assert torch.equal(d.rows(index), stored[index])
    assert torch.equal(torch.cat([rows for _, rows in d.chunks(77)]), stored)
    assert torch.allclose(stored.norm(dim=1), torch.ones(300))
    assert not torch.equal(Directions(kind, 300, stored.shape[1], seed=12).dense(), stored) or kind == "identity"


def test_row_seeds_never_repeat_within_a_network():
    # the mixer is a bijection of 32-bit integers: consecutive rows get distinct seeds
    seeds = _row_seeds(2**32 - 5, torch.arange(2**20))
    assert len(set(seeds)) == 2**20 and max(seeds) < 2**32
    circuit = relay(1000, 3, gen(0))
    dirs = superposed_directions(circuit, 16, "random", gen(1))
    ranges = sorted((d.seed, d.seed + d.m) for d in dirs)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(ranges, ranges[1:]))


def test_compiled_network_uses_the_directions_on_demand():
    circuit = relay(50, 2, gen(0))
    net = compile_superposed(circuit, 24, "random", "none", gen(3))
    dirs = superposed_directions(circuit, 24, "random", gen(3))
    for t, d in enumerate(dirs):
        assert torch.equal(net.directions(t), d.dense())


# ---- sparse inputs and exact values ------------------------------------------------------------


def test_sparse_sampler_draws_distinct_uniform_features():
    m, l, n = 12, 3, 30000
    active = ExactlyActive(m, l, seed=4).sample_active(n)
    assert active.shape == (n, l)
    assert (active.sort(dim=1).values.diff(dim=1) > 0).all()
    freq = torch.bincount(active.reshape(-1), minlength=m).double() / n
    assert torch.allclose(freq, torch.full((m,), l / m, dtype=torch.float64), atol=0.01)
    # the dense sample is the scatter of the same draws
    x = ExactlyActive(m, l, seed=4).sample(5)
    assert torch.equal(x.nonzero()[:, 1].view(5, l).sort(1).values, active[:5].sort(1).values)
    # many active features of few: drawn by another rule, still exactly l distinct
    dense = ExactlyActive(10, 7, seed=1).sample(200)
    assert (dense.sum(1) == 7).all()


def test_sparse_truth_equals_the_dense_evaluator():
    circuit = random_circuit(40, 4, 40, 3, ("AND", "OR", "BUF", "ANDNOT"), gen(2))
    active = ExactlyActive(40, 6, seed=0).sample_active(300)
    x = torch.zeros(300, 40).scatter_(1, active, 1.0)
    on = Batch.of(x).pairs()
    for dense, pairs in zip(Evaluator(circuit)(x), SparseEvaluator(circuit)(on)):
        assert torch.equal(dense.nonzero().T, pairs[:, torch.argsort(pairs[0] * dense.shape[1] + pairs[1])])
    with pytest.raises(ValueError, match="NOT gates"):
        SparseEvaluator(Circuit(2, [[Gate("NOT", (0,))]]))


def test_gate_arrays_read_as_gates_and_are_checked():
    inputs = torch.tensor([[0, 1], [2, -1], [1, 2]])
    kinds = torch.tensor([GATES.index("AND"), GATES.index("BUF"), GATES.index("ANDNOT")])
    array = GateArray(kinds, inputs)
    as_list = [Gate("AND", (0, 1)), Gate("BUF", (2,)), Gate("ANDNOT", (1, 2))]
    assert list(array) == as_list
    x = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    assert torch.equal(Evaluator(Circuit(3, [array]))(x)[1], Evaluator(Circuit(3, [as_list]))(x)[1])
    for bad, match in (([[0, 3], [2, -1], [1, 2]], "only 3"), ([[0, 0], [2, -1], [1, 2]], "same input twice"),
                       ([[0, -1], [2, -1], [1, 2]], "fan-in >= 2")):
        with pytest.raises(CircuitError, match=match):
            Circuit(3, [GateArray(kinds, torch.tensor(bad))])


# ---- the streamed network ----------------------------------------------------------------------


@pytest.mark.parametrize("gates", ["relay", "mixed"])
@pytest.mark.parametrize("cleanup", ["none", "threshold"])
def test_streamed_network_gives_the_stored_numbers(gates, cleanup):
    m, n = 230, 48
    circuit = relay(m, 3, gen(0)) if gates == "relay" else random_circuit(m, 3, m, 2, ("AND", "OR", "BUF"), gen(0))
    stored = compile_superposed(circuit, n, "random", cleanup, gen(1))
    dedicated = compile_dedicated(circuit)
    want = trace_noise(circuit, {"s": stored.read_features, "d": dedicated.read_features},
                       ExactlyActive(m, 4, 5), 700, batch_size=256, progress=False)
    streamed = StreamedSuperposed(circuit, n, "random", cleanup, gen(1), chunk=61)
    got = trace_noise(circuit, {"s": streamed, "d": ChunkedNetwork(dedicated, 2000)},
                      ExactlyActive(m, 4, 5), 700, batch_size=256, progress=False)
    assert streamed.fused == [gates == "relay"] * 3
    for name in "sd":
        for a, b in zip(want[name], got[name]):
            for key, value in a.to_dict().items():
                # float rounding (chunked products) may flip a read lying within ~1e-5 of 1/2: a
                # count may move by a sample or two in 700, every continuous statistic agrees
                counted = key in ("false_positives", "false_negatives", "wrong_features", "any_wrong")
                tol = dict(abs=2 / 700) if counted else dict(rel=1e-5, abs=1e-7)
                assert b.to_dict()[key] == pytest.approx(value, **tol), (name, a.layer, key)
    assert streamed.cost().parameters == stored.cost().parameters
    assert streamed.cost().neurons == stored.cost().neurons


def test_streamed_chunks_read_every_feature_once():
    circuit = random_circuit(90, 2, 90, 2, ("AND", "OR"), gen(1))
    net = StreamedSuperposed(circuit, 20, "random", "threshold", gen(2), chunk=25)
    active = ExactlyActive(90, 3, 0).sample_active(7)
    stored = compile_superposed(circuit, 20, "random", "threshold", gen(2))
    x = torch.zeros(7, 90).scatter_(1, active, 1.0)
    want = stored.read_features(x)
    got = [torch.full_like(w, float("nan")) for w in want]
    for chunk in net.read_chunks(Batch.of(x)):
        cols = chunk.features if isinstance(chunk.features, slice) else chunk.features
        assert torch.isnan(got[chunk.layer][chunk.rows, cols]).all()  # not read before
        got[chunk.layer][chunk.rows, cols] = chunk.read
    for w, g in zip(want, got):
        assert torch.allclose(w, g, atol=1e-5)


def test_chunk_plan_keeps_memory_flat_in_m():
    plans = [plan_streamed([m] * 4, 1024, 1, 512, 4) for m in (10**5, 10**6, 10**7)]
    assert all(p.per_chunk <= CHUNK_BUDGET for p in plans)
    assert len({p.chunk for p in plans}) == 1 and len({p.per_chunk for p in plans}) == 1
    # what grows with m is only the index tensors, a few bytes per feature
    assert (plans[2].bytes - plans[1].bytes) / (9 * 10**6 * 4) < 200
    small = plan_streamed([100] * 3, 64, 2, 10, 2)
    assert small.chunk == 100 and small.batch == 10


def test_compounding_noise_on_demand_matches_stored_and_refuses_what_cannot_fit():
    common = dict(m=300, n=40, layers=3, samples=500, progress=False)
    a = run("compounding-noise", storage="stored", **common)
    b = run("compounding-noise", storage="on-demand", **common)
    assert (a.summary["storage"], b.summary["storage"]) == ("stored", "on-demand")
    for ra, rb in zip(a.rows, b.rows):
        for key, value in ra.items():
            assert rb[key] == (pytest.approx(value, rel=1e-5, abs=1e-7) if isinstance(value, float) else value)
    with pytest.raises(UsageError, match="memory needed"):
        run("compounding-noise", m=10**12, n=1024, layers=3, samples=512, progress=False)


# ---- sparse builds -----------------------------------------------------------------------------


def test_capped_cis_weights_are_sparse_plus_rank_d_and_compute_the_same():
    small = rotation_circuits(200, 3, gen(5))
    net = build_cis2025(small, 2000, 3, "capped", gen(6))
    block = net.network.blocks[1]
    assert isinstance(block.read, LowRankPlus) and isinstance(block.read.base, Sparse)
    assert block.read.left.shape == (2000, small.d)
    x = torch.randn(5, 2000)
    assert torch.allclose(block(x), torch.relu(x @ block.read.dense().T + block.bias), atol=1e-5)
    # the capped form's dense W: every entry of a group pair whose mean weight is non-zero
    W = block.read.dense()
    identity_write = block.hidden  # the write is the identity, counted by its diagonal
    assert block.nonzero_parameters() == int(W.count_nonzero()) + int(block.bias.count_nonzero()) + identity_write


def test_uand_wiring_is_drawn_as_coordinate_lists():
    conn = random_connections(300, 1000, 0.05, gen(0), chunk_elements=10_000)
    assert conn.is_sparse and conn.shape == (300, 1000)
    assert abs(conn._nnz() / (300 * 1000) - 0.05) < 0.003
    net = compile_uand(Circuit(1000, [[Gate("AND", (0, 1))]]), 300, 0.05, 0, gen(1))
    assert torch.equal(net.network.blocks[0].read.dense(), net.connections.to_dense())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the script runs for real")
def test_device_parity_script_skips_cleanly_without_a_gpu():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "benchmarks/device_parity.py"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "no CUDA device: skipped"


def test_device_parity_cases_are_valid_runs():
    from benchmarks.device_parity import CASES, LARGE
    from scenarios.engine.registry import _prepare

    for name, params in list(CASES.values()) + list(LARGE.values()):
        _prepare(name, 0, "cpu", False, params)  # resolves and checks every parameter


def test_sparse_inputs_are_embedded_by_gathering_with_the_dense_products_result():
    circuit = relay(2000, 1, gen(0))
    net = compile_superposed(circuit, 96, "random", "none", gen(1)).network
    sparse = ExactlyActive(2000, 5, 3).sample(64) * 0.7  # a few non-zeros per row, any value
    dense = torch.rand(8, 2000)
    for x in (sparse, dense):
        assert torch.allclose(net.streams(x)[0], x @ net.embed.matrix.T, atol=1e-5)


def test_small_batches_multiply_csr_weights_by_gather_and_scatter(monkeypatch):
    import layers.weights as weights

    dense = torch.randn(300, 500) * (torch.rand(300, 500) < 0.02)  # (out, in), a few per row
    weight = weights.compact(dense)
    assert isinstance(weight, weights.Sparse)
    x = torch.randn(7, 500)
    gathered = weight(x)
    monkeypatch.setattr(weights, "GATHER_ELEMENTS", 0)
    assert torch.allclose(gathered, weight(x), atol=1e-5)
    assert torch.allclose(gathered, x @ dense.T, atol=1e-5)


def test_cis_memory_guard_follows_the_weights_stored_form():
    from circuits.cis2025 import weight_bytes

    # few linked pairs per block: sparse, a few bytes per pair; many: dense D^2 floats; past
    # 64 MiB of either, block by block: T d^2 small weights, T S neurons each way, k linked pairs
    sparse_stored, _ = weight_bytes(T=1000, D=20000, d=10, S=6)
    dense_stored, _ = weight_bytes(T=500, D=4000, d=10, S=6)
    block_stored, _ = weight_bytes(T=20000, D=20000, d=10, S=6)
    # CSR (index 8 + value 4 bytes per entry, 8 per row) and the two rank-d factors
    assert sparse_stored == 12 * 100 * 1000 * 36 + 8 * 20001 + 2 * 4 * 20000 * 10 and dense_stored == 4 * 4000**2
    assert block_stored == 4 * 20000 * 100 + 16 * 20000 * 6 + 12 * 20000 * 36 + 8 * 2000  # not 4 D^2 = 1.6 GB
    small = rotation_circuits(300, 2, gen(1))
    net = build_cis2025(small, 4000, 3, "capped", gen(2))  # 300 x 9 pairs in 1000^2: sparse
    bound, _ = weight_bytes(300, 4000, small.d, 3)
    for block in net.network.blocks[1:]:  # the estimate bounds what is stored
        assert isinstance(block.read, (Sparse, LowRankPlus)) and block.read.nbytes <= bound
    with pytest.raises(UsageError, match="memory needed"):  # 64 layers of 4 10^6 circuits: hundreds of GB
        run("circuits-in-superposition", T=4_000_000, D=1_048_570, L=64, progress=False)
