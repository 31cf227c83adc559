"""Property tests: any small circuit hypothesis can draw, compiled dedicated and superposed on the
identity embedding (with and without clean-up), reads every gate of every layer exactly on every
input, against a truth table computed gate by gate in plain Python."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuits.compile import compile_dedicated, compile_superposed
from circuits.gates import GATES, KINDS
from circuits.sampling import all_inputs
from circuits.spec import Circuit, Gate

TRUTH = {
    "AND": lambda v: all(v),
    "OR": lambda v: any(v),
    "BUF": lambda v: v[0],
    "NOT": lambda v: not v[0],
    "ANDNOT": lambda v: v[0] and not v[1],
}


@st.composite
def circuits(draw) -> Circuit:
    m = draw(st.integers(1, 6))
    layers, prev = [], m
    for _ in range(draw(st.integers(1, 3))):
        kinds = [k for k in GATES if (KINDS[k].fixed_fan_in or 2) <= prev]
        layer = []
        for _ in range(draw(st.integers(1, 5))):
            kind = draw(st.sampled_from(kinds))
            k = KINDS[kind].fixed_fan_in or draw(st.integers(2, min(prev, 4)))
            inputs = draw(st.permutations(range(prev)))[:k]
            layer.append(Gate(kind, tuple(inputs)))
        layers.append(layer)
        prev = len(layer)
    return Circuit(m, layers)


def truth_table(circuit: Circuit, x) -> list[list[list[bool]]]:
    """[input][layer][feature], layer 0 the inputs (the rows of ``x``)."""
    table = []
    for bits in x.tolist():
        values = [[b > 0.5 for b in bits]]
        for layer in circuit.layers:
            values.append([bool(TRUTH[g.kind]([values[-1][j] for j in g.inputs])) for g in layer])
        table.append(values)
    return table


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(circuits())
def test_every_compiled_network_computes_any_small_circuit_exactly(circuit):
    x = all_inputs(circuit.n_inputs)
    table = truth_table(circuit, x)
    assert len(table) == 2**circuit.n_inputs and len({tuple(r[0]) for r in table}) == len(table)
    width = max(circuit.widths)
    networks = [compile_dedicated(circuit), compile_superposed(circuit, width, "identity", "none"),
                compile_superposed(circuit, width, "identity", "threshold")]
    for net in networks:
        for t, read in enumerate(net.read_features(x)):
            exact = [[float(row[t][i]) for i in range(circuit.widths[t])] for row in table]
            assert read.tolist() == exact or (read - read.new_tensor(exact)).abs().max() < 1e-5, (net.name, t)
