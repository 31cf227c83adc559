"""Universal-AND: exact invariants of the construction and its error law at small sizes."""

import itertools

import pytest
import torch
from conftest import gen

from circuits import theory
from circuits.compile import compile_dedicated
from circuits.generators import all_pairs_and
from circuits.graph import FeatureGraph
from circuits.sampling import ExactlyActive
from circuits.spec import Circuit, CircuitError, Gate
from circuits.trace import trace_noise
from circuits.uand import and_reads, compile_uand

M, D, P = 24, 300, 0.3


def _net(d0=0, circuit=None):
    return compile_uand(circuit or all_pairs_and(M), D, P, d0, gen(7))


def test_construction_invariants():
    net = _net()
    conn = net.connections.to_dense()
    assert set(conn.unique().tolist()) <= {0.0, 1.0}
    assert abs(conn.mean().item() - P) < 0.02
    gram = conn.T @ conn  # neurons shared by each pair of inputs
    readout = net.readouts[1].dense()  # (pairs, d)
    for g, (i, j) in enumerate(itertools.combinations(range(M), 2)):
        shared = (conn[:, i] * conn[:, j]).nonzero().squeeze(1)
        assert net.shared_counts[g] == gram[i, j] == shared.numel()
        row = readout[g]
        assert torch.equal(row.nonzero().squeeze(1), shared)
        if shared.numel():
            assert torch.allclose(row[shared], torch.full((shared.numel(),), 1 / shared.numel()))
    block = net.network.blocks[0]
    assert torch.equal(block.read.dense(), conn) and torch.all(block.bias == -1)


def test_reads_by_hand_with_two_active_inputs():
    net = _net()
    conn = net.connections.to_dense()
    x = torch.zeros(1, M)
    x[0, [3, 11]] = 1
    reads = net.read_features(x)[1][0]
    pairs = list(itertools.combinations(range(M), 2))
    for g, (i, j) in enumerate(pairs):
        shared = (conn[:, i] * conn[:, j]).bool()
        if not shared.any():
            continue
        # a shared neuron outputs (active connected inputs - 1)_+
        want = (torch.relu(conn[shared] @ x[0] - 1)).mean()
        assert reads[g].item() == pytest.approx(want.item(), abs=1e-6)
    assert reads[pairs.index((3, 11))].item() == pytest.approx(1.0)
    # and the any-AND reader agrees with the compiled read-out
    subsets = torch.tensor([[[3, 11], [3, 5], [0, 1]]])
    direct, _ = and_reads(net, x, subsets)
    for col, (i, j) in enumerate(subsets[0].tolist()):
        assert direct[0, col].item() == pytest.approx(reads[pairs.index((min(i, j), max(i, j)))].item(), abs=1e-6)


def test_or_is_read_as_a_plus_b_minus_and():
    gates = [Gate("AND", (0, 1)), Gate("OR", (0, 1)), Gate("OR", (2, 5)), Gate("AND", (2, 5))]
    net = _net(circuit=Circuit(M, [gates]))
    x = ExactlyActive(M, 4, seed=2).sample(500)
    reads = net.read_features(x)[1]
    assert torch.allclose(reads[:, 1], x[:, 0] + x[:, 1] - reads[:, 0], atol=1e-5)
    assert torch.allclose(reads[:, 2], x[:, 2] + x[:, 5] - reads[:, 3], atol=1e-5)
    with pytest.raises(CircuitError, match="fan-in 2"):
        compile_uand(Circuit(M, [[Gate("OR", (0, 1)), Gate("AND", (0, 1, 2))]]), D, P)


def test_error_law_at_small_size():
    m, d, p, s = 200, 400, 0.2, 3
    net = compile_uand(Circuit(m, [[Gate("AND", (0, 1))]]), d, p, 0, gen(1))
    x = ExactlyActive(m, s, seed=3).sample(3000)
    g = gen(4)
    for on in (2, 1, 0):
        act = x > 0.5
        noise = torch.rand(3000, 16, m, generator=g)
        pick_on = torch.where(act[:, None], noise, torch.full_like(noise, 2)).topk(on, -1, largest=False).indices
        pick_off = torch.where(~act[:, None], noise, torch.full_like(noise, 2)).topk(2 - on, -1, largest=False).indices
        reads, counts = and_reads(net, x, torch.cat([pick_on, pick_off], -1))
        err = (reads - (1.0 if on == 2 else 0.0))[counts > 0]
        mean, std = theory.uand_case(on, 2, s, p, d)
        assert err.mean().item() == pytest.approx(mean, rel=0.15, abs=0.005)
        assert err.std().item() == pytest.approx(std, rel=0.15)


def test_superposed_inputs_degrade_as_predicted():
    m, d, p, s = 300, 400, 0.2, 3
    stds = []
    for d0 in (1200, 300):
        net = compile_uand(Circuit(m, [[Gate("AND", (0, 1))]]), d, p, d0, gen(d0))
        x = ExactlyActive(m, s, seed=5).sample(3000)
        idx = torch.stack([(x > 0.5).float().topk(2, dim=1).indices], dim=1)  # the "11" pairs
        reads, counts = and_reads(net, x, idx)
        err = (reads - 1)[counts > 0]
        stds.append(err.std().item())
        assert err.std().item() == pytest.approx(theory.uand_case(2, 2, s, p, d, m, d0)[1], rel=0.15)
    assert stds[1] > stds[0]


def test_tracer_and_graph_take_uand_unchanged():
    circuit = all_pairs_and(M)
    net = _net()
    rows = trace_noise(circuit, {"u": net.read_features, "d": compile_dedicated(circuit).read_features},
                       ExactlyActive(M, 3, 1), 2000, progress=False)
    assert rows["d"][1].wrong_features == 0 and rows["d"][1].mse == 0
    # on-pairs read 1 + N with N ~ Bin(1, p): mean 1 + p
    assert rows["u"][1].signal_mean == pytest.approx(1 + P, rel=0.05)
    fg = FeatureGraph.build(net)
    b = fg.blocks[0]
    readable = net.shared_counts > 0
    # every shared neuron reads both inputs: intended weight exactly 1; others: the share of
    # shared neurons also connected to them, about p
    assert torch.allclose(b.weight[b.intended].reshape(-1, 2)[readable], torch.ones(int(readable.sum()), 2))
    assert b.weight[~b.intended].mean().item() == pytest.approx(P, rel=0.1)


def test_stacked_uand_corrects_between_layers():
    from circuits import theory
    from circuits.generators import random_circuit
    from circuits.uand import compile_uand_stack
    from layers import capture

    circuit = random_circuit(40, 3, 40, 2, ("AND", "OR"), gen(3))
    x = ExactlyActive(40, 2, seed=6).sample(300)
    naive = compile_uand_stack(circuit, 600, 0.2, "none", gen(8))
    fixed = compile_uand_stack(circuit, 600, 0.2, "cleanup", gen(8))
    assert naive.stream_of_layer == [0, 1, 2, 3] and fixed.stream_of_layer == [0, 1, 3, 5]
    reads_naive, reads_fixed = naive.read_features(x), fixed.read_features(x)
    # same draws, same first block: the first layer is read identically
    assert torch.allclose(reads_naive[1], reads_fixed[1], atol=1e-6)
    with capture(fixed.network, ["blocks.1.hook_out", "blocks.2.hook_pre"]) as seen:
        fixed.network(x)
    # the correction block writes h(read-out) of every gate of layer 1 onto its own direction
    assert torch.allclose(seen["blocks.1.hook_out"], theory.cleanup(reads_fixed[1]), atol=1e-5)
    # and the next U-AND block reads those clean values: neurons see (connected inputs) - 1
    block = fixed.network.blocks[2]
    conn = block.read.dense()[:600]
    assert torch.allclose(seen["blocks.2.hook_pre"][:, :600], seen["blocks.1.hook_out"] @ conn.T - 1, atol=1e-4)


def test_graph_follows_a_network_with_correction_blocks():
    from circuits.generators import copy_relay
    from circuits.uand import compile_uand_stack

    circuit = copy_relay(10, 2, gen(2))
    fixed = compile_uand_stack(circuit, 400, 0.3, "cleanup", gen(3))
    fg = FeatureGraph.build(fixed)
    assert len(fg.blocks) == 2 and fg.blocks[1].weight.shape == (20, 20)
    # layer 2 reads through the correction block: every intended edge carries weight
    assert torch.all(fg.blocks[1].weight[fg.blocks[1].intended].abs() > 0.1)
