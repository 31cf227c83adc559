"""Circuit specs, validation, generators and exact evaluation against a per-sample oracle."""

import itertools

import networkx as nx
import pytest
import torch
from conftest import gen

from circuits.evaluate import evaluate
from circuits.gates import fan_in_of
from circuits.generators import all_pairs_and, random_circuit, relay, xor_circuit
from circuits.sampling import Bernoulli, ExactlyActive, all_inputs
from circuits.spec import Circuit, CircuitError, Gate


def oracle(circuit: Circuit, bits: list[int]) -> list[list[int]]:
    """Plain-Python evaluation, one sample at a time."""
    layers = [list(bits)]
    for gates in circuit.layers:
        prev = layers[-1]
        out = []
        for g in gates:
            vals = [prev[j] for j in g.inputs]
            out.append({"AND": int(all(vals)), "OR": int(any(vals)), "BUF": vals[0], "NOT": 1 - vals[0],
                        "ANDNOT": int(vals[0] and not vals[-1])}[g.kind])
        layers.append(out)
    return layers


@pytest.mark.parametrize("seed", range(6))
def test_batched_evaluation_matches_oracle_on_every_input(seed):
    c = random_circuit(6, 4, 7, 2 + seed % 3, ("AND", "OR", "BUF", "NOT", "ANDNOT"), gen(seed))
    x = all_inputs(6)
    values = evaluate(c, x)
    for r in range(x.shape[0]):
        expected = oracle(c, [int(b) for b in x[r]])
        for t, layer in enumerate(expected):
            assert values[t][r].tolist() == [float(v) for v in layer]


def test_xor_truth_table():
    out = evaluate(xor_circuit(), all_inputs(2))[-1][:, 0].tolist()
    assert out == [0.0, 1.0, 1.0, 0.0]


def test_graph_round_trip_and_attributes():
    c = random_circuit(5, 3, 4, 2, ("AND", "OR", "NOT", "ANDNOT"), gen(1))
    g = c.graph()
    assert g.nodes[(0, 3)]["gate"] == "INPUT" and g.nodes[(2, 1)]["layer"] == 2
    assert g.number_of_edges() == sum(gate.fan_in for layer in c.layers for gate in layer)
    assert Circuit.from_graph(g).layers == c.layers


def _graph(edges, nodes):
    g = nx.DiGraph()
    for node, (layer, gate) in nodes.items():
        g.add_node(node, layer=layer, gate=gate)
    g.add_edges_from(edges)
    return g


BASE = {"a": (0, "INPUT"), "b": (0, "INPUT"), "g": (1, "AND"), "h": (2, "BUF")}


@pytest.mark.parametrize(
    "edges, nodes, message",
    [
        ([("a", "g"), ("b", "g"), ("g", "h"), ("h", "g")], BASE, "cycle"),
        ([("a", "g"), ("b", "g"), ("h", "g")], BASE, "later layer"),
        ([("a", "g"), ("b", "g"), ("g", "h")], {**BASE, "h": (2, "XOR")}, "unknown gate"),
        ([("a", "g"), ("b", "g")], BASE, "fan-in 0"),
        ([("a", "g"), ("b", "g"), ("g", "h"), ("z", "h")], BASE, "missing node"),
        ([("a", "g"), ("b", "g"), ("a", "h")], BASE, "read only layer 1"),
        ([("a", "g"), ("g", "h")], BASE, "fan-in >= 2"),
    ],
)
def test_invalid_graphs_are_refused_with_the_reason(edges, nodes, message):
    with pytest.raises(CircuitError, match=message):
        Circuit.from_graph(_graph(edges, nodes))


def test_invalid_layered_gates():
    with pytest.raises(CircuitError, match="reads feature 5"):
        Circuit(3, [[Gate("AND", (0, 5))]])
    with pytest.raises(CircuitError, match="exactly one input"):
        Circuit(3, [[Gate("NOT", (0, 1))]])
    with pytest.raises(CircuitError, match="same input twice"):
        Circuit(3, [[Gate("OR", (1, 1))]])


def test_generators():
    r = relay(10, 3, gen(0))
    for layer in r.layers:
        assert sorted(g.inputs[0] for g in layer) == list(range(10))
        assert all(g.kind == "BUF" for g in layer)
    pairs = all_pairs_and(6)
    assert len(pairs.layers[0]) == 15
    assert {g.inputs for g in pairs.layers[0]} == set(itertools.combinations(range(6), 2))
    a = random_circuit(20, 3, 8, 3, ("AND", "OR"), gen(5))
    b = random_circuit(20, 3, 8, 3, ("AND", "OR"), gen(5))
    assert a.layers == b.layers
    assert all(g.fan_in == 3 for layer in a.layers for g in layer)
    with pytest.raises(CircuitError, match="exceeds"):
        random_circuit(20, 2, 2, 3, ("AND",), gen(0))


def test_samplers():
    x = ExactlyActive(50, 7, seed=3).sample(1000)
    assert torch.all(x.sum(1) == 7)
    assert torch.equal(x, ExactlyActive(50, 7, seed=3).sample(1000))
    assert not torch.equal(x, ExactlyActive(50, 7, seed=4).sample(1000))
    # each feature is on with probability l/m: 7/50 = 0.14, std of the mean over 1000 ~ 0.011
    assert torch.allclose(x.mean(0), torch.full((50,), 0.14), atol=0.05)
    y = Bernoulli(100, 0.05, seed=1).sample(20000)
    assert abs(float(y.mean()) - 0.05) < 0.002
    inputs = all_inputs(5)
    assert inputs.shape == (32, 5) and len({tuple(r.tolist()) for r in inputs}) == 32


@pytest.mark.parametrize("gates,fan_in", [(("AND", "BUF", "NOT"), 2), (("AND", "OR", "ANDNOT", "BUF"), 3),
                                          (("BUF", "NOT"), 2), (("ANDNOT",), 2)])
def test_random_circuits_are_the_gates_their_draws_name(gates, fan_in):
    """The arrays random_circuit builds at once are the gates made one by one from the same draws:
    the first inputs of a random permutation, sorted but for ANDNOT."""
    for seed in range(3):
        g = gen(seed)
        layers, prev = [], 12
        for _ in range(3):
            picks = torch.randint(0, len(gates), (10,), generator=g)
            need = max(fan_in_of(k, fan_in) for k in gates)
            order = torch.rand(10, prev, generator=g).argsort(dim=1)[:, :need]
            layer = []
            for i in range(10):
                kind = gates[int(picks[i])]
                chosen = [int(j) for j in order[i, : fan_in_of(kind, fan_in)]]
                layer.append(Gate(kind, tuple(chosen if kind == "ANDNOT" else sorted(chosen))))
            layers.append(layer)
            prev = 10
        built = random_circuit(12, 3, 10, fan_in, gates, gen(seed))
        assert [list(layer) for layer in built.layers] == layers
