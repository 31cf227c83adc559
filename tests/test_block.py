"""Block-structured computation: exact for one active circuit at any depth, each weight entry
owned by one circuit, and the failure for two active circuits."""

import pytest
import torch
from conftest import gen

import scenarios
from circuits.block import block_circuits, compile_block, gate_coefficients
from circuits.compile import compile_dedicated
from circuits.evaluate import evaluate
from circuits.graph import FeatureGraph
from circuits.spec import CircuitError
from circuits.trace import trace_noise


def test_one_active_circuit_is_exact_at_depth_ten():
    r = scenarios.run("block-superposition", D=40, d=4, L=10, z=[1, 2], samples=300)
    one = [row for row in r.rows if row["z"] == 1]
    assert len(one) == 11 and all(row["mse_active"] == 0 for row in one)
    B, T = 10, 100
    for row in one:
        # the B - 1 inactive circuits whose block is live read the active circuit's values, nobody else
        assert row["switched_on"] == B - 1
        assert row["mse_inactive"] == pytest.approx(row["predicted_mse_inactive"], rel=1e-9)
        assert row["mse_dedicated"] == 0
    assert r.summary["T"] == T and r.summary["one_hot_width"] == 2 * B
    two = [row for row in r.rows if row["z"] == 2]
    assert two[-1]["mse_active"] > 0.1  # cross-circuit weights write into the live blocks


def test_every_weight_entry_belongs_to_one_circuit():
    D, d = 15, 3
    smalls = block_circuits(D, d, 4, gen(0))
    net = compile_block(smalls, D)
    for layer, block in enumerate(net.network.blocks):
        W = block.read.dense()[:D, :D]
        owned = sum(int(gate_coefficients(s, layer).count_nonzero()) for s in smalls)
        assert int(W.count_nonzero()) == owned  # no two circuits add into one entry


def test_tracer_and_graph_take_the_block_network():
    D, d = 12, 3
    smalls = block_circuits(D, d, 3, gen(1))
    net = compile_block(smalls, D)
    T = len(smalls)
    x = torch.zeros(1, T * d)
    t = 6
    x[0, t * d:(t + 1) * d] = torch.tensor([1.0, 0.0, 1.0])  # circuit 6 on, inputs 1, 0

    class OneInput:
        def sample(self, batch: int) -> torch.Tensor:
            return x.repeat(batch, 1)

    rows = trace_noise(net.circuit, {"block": net.read_features, "twin": compile_dedicated(net.circuit).read_features},
                       OneInput(), 4, progress=False)
    exact = evaluate(net.circuit, x)
    by_hand = [((r - e) ** 2).mean().item() for r, e in zip(net.read_features(x), exact)]
    assert [r.mse for r in rows["block"]] == pytest.approx(by_hand, rel=1e-6, abs=1e-12)
    own = slice(t * d, (t + 1) * d)
    assert all(torch.equal(r[:, own], e[:, own]) for r, e in zip(net.read_features(x), exact))
    weight = FeatureGraph.build(net).blocks[1].weight
    coef = gate_coefficients(smalls[t], 1)
    assert torch.equal(weight[own, own], coef)  # the circuit's own weights, exactly


def test_sizes_are_checked():
    with pytest.raises(CircuitError, match=r"exactly \(D/d\)\^2 = 16"):
        compile_block(block_circuits(12, 3, 2, gen(2))[:15], 12)
    with pytest.raises(scenarios.UsageError, match="multiple of d=4"):
        scenarios.run("block-superposition", D=42)
