"""Circuits in superposition: the placement's invariants, checked exactly, and the construction
against its exact circuit where nothing is shared."""

import pytest
import torch
from conftest import gen

from circuits.cis import cis_circuit, compile_cis, line_design, plane_capacity, small_circuits
from circuits.compile import compile_dedicated
from circuits.evaluate import evaluate
from circuits.spec import CircuitError


def test_line_design_shares_at_most_one_neuron():
    rows = line_design(1000, 30, 557, gen(0))
    assert rows.shape == (557, 30) and int(rows.max()) < 1000
    member = torch.zeros(557, 1000)
    member[torch.arange(557).repeat_interleave(30), rows.reshape(-1)] = 1
    assert torch.all(member.sum(1) == 30)  # distinct within a circuit
    shared = member @ member.T
    shared.fill_diagonal_(0)
    assert shared.max() == 1
    assert plane_capacity(1000, 30) == 31 * 32  # one block of 30 per line of the plane over Z_31
    with pytest.raises(CircuitError, match="at most 992"):
        line_design(1000, 30, 993, gen(0))


def test_big_circuit_gates_every_circuit_by_its_indicator():
    smalls = small_circuits(5, 3, 2, gen(1))
    big = cis_circuit(smalls)
    x = torch.zeros(2, 20)
    x[0, 4:8] = torch.tensor([1.0, 0.0, 1.0, 1.0])  # circuit 1 active with inputs 1, 0, 1
    values = evaluate(big, x)
    small_values = evaluate(smalls[1], x[:1, 4:7])
    for t in range(1, 3):
        assert torch.equal(values[t][0, 4:7], small_values[t][0])
        assert values[t][0, 7] == 1.0  # the indicator is carried along
        others = torch.cat([values[t][0, :4], values[t][0, 8:]])
        assert torch.all(others == 0) and torch.all(values[t][1] == 0)  # inactive: exactly 0


def test_one_active_circuit_alone_is_computed_exactly():
    # with a single circuit nothing is shared, so the large network must be exact
    smalls = small_circuits(1, 4, 3, gen(2))
    net = compile_cis(smalls, 1000, 6, gen(3))
    x = torch.cat([(torch.rand(64, 4, generator=gen(4)) < 0.5).float(), torch.ones(64, 1)], dim=1)
    for read, exact in zip(net.read_features(x), evaluate(net.circuit, x)):
        assert torch.allclose(read, exact, atol=1e-5)
    twin = compile_dedicated(net.circuit)
    for read, exact in zip(twin.read_features(x), evaluate(net.circuit, x)):
        assert torch.equal(read, exact)


def test_tracer_and_graph_take_the_large_network_unchanged():
    from circuits.graph import FeatureGraph
    from circuits.trace import trace_noise

    smalls = small_circuits(6, 3, 2, gen(5))
    net = compile_cis(smalls, 1000, 4, gen(6))
    x = torch.zeros(1, 24)
    x[0, 4:8] = torch.tensor([1.0, 1.0, 0.0, 1.0])  # circuit 1 active

    class OneInput:
        def sample(self, batch: int) -> torch.Tensor:
            return x.repeat(batch, 1)

    rows = trace_noise(net.circuit, {"cis": net.read_features, "twin": compile_dedicated(net.circuit).read_features},
                       OneInput(), 8, progress=False)
    by_hand = [((r - e) ** 2).mean().item() for r, e in zip(net.read_features(x), evaluate(net.circuit, x))]
    assert [r.mse for r in rows["cis"]] == pytest.approx(by_hand, rel=1e-5, abs=1e-12)
    assert by_hand[1] > 0  # the active circuit leaks into the inactive ones it shares neurons with
    assert all(r.mse == 0 for r in rows["twin"])
    fg = FeatureGraph.build(net)
    b = fg.blocks[0]
    # a small gate's read-out sees its own inputs with their gate weights, exactly
    gate = net.circuit.layers[0][4]  # circuit 1, gate 0
    for j, w in zip(gate.inputs, (1.0, 1.0) if gate.kind == "AND" else (1.0,) if gate.kind == "BUF" else (1.0, -1.0)):
        assert b.weight[4, j].item() == pytest.approx(w, abs=1e-5)
