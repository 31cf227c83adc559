"""Compiled networks against exhaustive truth tables, and what they cost."""

import pytest
import torch
from conftest import gen

from circuits.compile import compile_dedicated, compile_superposed, gate_neurons
from circuits.evaluate import evaluate
from circuits.gates import KINDS, gate_pre
from circuits.generators import random_circuit, relay, xor_circuit
from circuits.sampling import ExactlyActive, all_inputs
from layers.weights import Identity, Sparse

CASES = [(m, fan_in, seed) for m in (4, 7, 10) for fan_in in (2, 3, 4) for seed in range(2)]


@pytest.mark.parametrize("m, fan_in, seed", CASES)
def test_exact_on_every_input(m, fan_in, seed):
    circuit = random_circuit(m, 4, m, fan_in, ("AND", "OR", "BUF", "NOT", "ANDNOT"), gen(seed))
    x = all_inputs(m)
    truth = evaluate(circuit, x)
    networks = [
        compile_dedicated(circuit),
        compile_superposed(circuit, m, "identity", "none"),
        compile_superposed(circuit, m, "identity", "threshold"),
    ]
    for net in networks:
        for t, (read, exact) in enumerate(zip(net.read_features(x), truth)):
            err = (read - exact).abs().max().item()
            assert err < 1e-5, f"{net.name} layer {t}: max error {err}"


def test_xor_compiles_exactly():
    c = xor_circuit()
    out = compile_dedicated(c).read_features(all_inputs(2))[-1][:, 0]
    assert out.tolist() == [0.0, 1.0, 1.0, 0.0]


def test_superposed_makes_interference_errors_where_dedicated_makes_none():
    circuit = random_circuit(200, 3, 200, 2, ("AND", "OR"), gen(0))
    x = ExactlyActive(200, 3, seed=1).sample(2000)
    truth = evaluate(circuit, x)
    sup = compile_superposed(circuit, 32, "random", "none", gen(1))
    ded = compile_dedicated(circuit)
    wrong_sup = sum(((r > 0.5) != (t > 0.5)).sum().item() for r, t in zip(sup.read_features(x), truth))
    wrong_ded = sum(((r > 0.5) != (t > 0.5)).sum().item() for r, t in zip(ded.read_features(x), truth))
    assert wrong_ded == 0
    assert wrong_sup > 1000  # tens of thousands at these sizes; anything near zero is a bug


def test_gate_neurons_compute_their_gate_on_booleans():
    import itertools

    exact = {"AND": all, "OR": any, "BUF": lambda v: v[0], "NOT": lambda v: not v[0],
             "ANDNOT": lambda v: v[0] and not v[1]}
    for kind, k in [("AND", 2), ("AND", 4), ("OR", 2), ("OR", 3), ("BUF", 1), ("NOT", 1), ("ANDNOT", 2)]:
        signs, bias = gate_pre(kind, k)
        for cleanup in ("none", "threshold"):
            for bits in itertools.product((0, 1), repeat=k):
                z = sum(s * b for s, b in zip(signs, bits)) + bias
                out = 0.0
                for scale, offset, relu, c in gate_neurons(kind, cleanup):
                    pre = torch.tensor(scale * z + offset)
                    out += c * float(torch.relu(pre) if relu else pre)
                assert out == float(bool(exact[kind](bits))), (kind, k, cleanup, bits)
                assert KINDS[kind].truth(bits) == bool(exact[kind](bits))  # the table's own truth
    assert set(KINDS) == set(exact)


def test_cost_counts_neurons_and_widths():
    circuit = random_circuit(12, 2, 9, 2, ("AND", "OR", "NOT"), gen(2))
    per_gate = {"AND": 1, "OR": 2, "NOT": 1}
    ded = compile_dedicated(circuit).cost()
    assert ded.neurons == [sum(per_gate[g.kind] for g in layer) for layer in circuit.layers]
    assert ded.stream_widths == [12, 9, 9]
    sup = compile_superposed(circuit, 5, "random", "threshold", gen(0)).cost()
    assert sup.neurons == [18, 18] and sup.stream_widths == [5, 5, 5]
    # embedding 5x12, then per block: read 18x5, bias 18, write 5x18
    assert sup.parameters == 60 + 2 * (90 + 18 + 90)


def test_dedicated_relay_is_stored_sparse():
    net = compile_dedicated(relay(300, 2, gen(0))).network
    assert isinstance(net.embed, Identity) and isinstance(net.blocks[0].write, Identity)
    assert isinstance(net.blocks[0].read, Sparse)
