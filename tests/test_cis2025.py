"""Circuits in superposition, 2025 construction: the placement's invariants, the small circuits
against their own definitions, the weights against their formulas, and the errors against the
closed forms of "Rotations in Superposition" where they hold."""

import math

import pytest
import torch
from conftest import gen

import scenarios
from circuits import cis2025, theory
from circuits.cis import cis_circuit, small_circuits
from circuits.cis2025 import build_cis2025, compile_boolean_cis2025, dedicated_network, first_layer, weight_layer
from circuits.compile import compile_dedicated
from circuits.designs import (
    design_capacity,
    make_design,
    mean_squared_overlap,
    overlaps,
    progression_capacity,
    transversal_capacity,
)
from circuits.evaluate import evaluate
from circuits.sampling import all_inputs
from circuits.small import (
    SmallCircuits,
    boolean_circuits,
    boolean_inputs,
    boolean_values,
    check_assumptions,
    robust_radius,
    rotation_circuits,
    rotation_inputs,
    rotation_readout,
)
from circuits.spec import CircuitError
from layers.pattern_blocks import PatternBlocks
from scenarios.engine.params import UsageError


def _valid(design: torch.Tensor, n: int, S: int) -> None:
    assert design.shape[1] == S and int(design.min()) >= 0 and int(design.max()) < n
    assert all(len(set(row.tolist())) == S for row in design)  # S distinct neurons per circuit
    shared = overlaps(design, n)
    shared.fill_diagonal_(0)
    assert shared.max() <= 1  # every pair of circuits shares at most one neuron


@pytest.mark.parametrize("n,S", [(250, 6), (100, 6), (50, 3), (37, 5), (60, 4), (97, 7), (12, 3), (30, 2)])
def test_every_family_shares_at_most_one_neuron_up_to_its_capacity(n, S):
    for family, cap in (("transversal", transversal_capacity(n, S)), ("progression", progression_capacity(n, S)),
                        ("best", design_capacity(n, S))):
        if cap:
            _valid(make_design(n, S, cap, family), n, S)
            with pytest.raises(CircuitError, match="holds at most"):
                make_design(n, S, cap + 1, family)


def test_capacity_matches_the_published_rule_and_beats_it():
    # the published progression rule holds T = 557 at D/d = 250, S = 6 ("Rotations in Superposition")
    assert progression_capacity(250, 6) == 557
    assert design_capacity(250, 6) >= 557
    assert transversal_capacity(250, 6) == 41 * 41 + 6 * (41 // 6)  # p = 41: lines of Z_41 on 6 columns
    for n in range(4, 300, 7):
        for S in range(2, 9):
            assert (design_capacity(n, S) or 0) >= progression_capacity(n, S)
    assert design_capacity(40, 2) == 40 * 39 // 2  # S = 2: every pair of neurons
    assert design_capacity(10, 1) is None  # S = 1: any number, reusing neurons


def test_mean_squared_overlap_from_degrees_equals_the_pairwise_count():
    design = make_design(100, 6, 80, "progression")
    shared = overlaps(design, 100)
    shared.fill_diagonal_(0)
    by_pairs = float((shared / 6).pow(2).sum()) / (80 * 79)
    assert mean_squared_overlap(design, 100) == pytest.approx(by_pairs, rel=1e-12)


# ---- small circuits ---------------------------------------------------------------------------

def test_rotation_circuits_rotate_while_on_and_stay_zero_while_off():
    small = rotation_circuits(7, 5, gen(0))
    which = torch.tensor([[3], [5]])
    angle = torch.tensor([[0.3], [2.0]])
    states = small.run(which, rotation_inputs(angle))
    theta = torch.atan2(small.weights[0, :, 3, 2], small.weights[0, :, 2, 2])  # sin, cos of each circuit
    for layer, a in enumerate(states):
        alpha, x = rotation_readout(a)
        assert torch.allclose(alpha, torch.ones_like(alpha))
        expect = angle + layer * theta[which]
        assert torch.allclose(x, torch.stack([expect.cos(), expect.sin()], dim=-1), atol=1e-5)
    off = small.run(which, torch.zeros(2, 1, 4))
    assert all(torch.equal(a, torch.zeros_like(a)) for a in off)


def test_boolean_circuits_match_their_truth_tables_and_share_one_bias():
    smalls = small_circuits(4, 3, 3, gen(1))
    small = boolean_circuits(smalls)
    assert small.d == 8 and torch.equal(small.bias, torch.tensor([[-0.5, -1.5] * 4] * 3))
    bits = all_inputs(3)  # every input of a 3-input circuit
    for t, circuit in enumerate(smalls):
        exact = evaluate(circuit, bits)
        values = torch.cat([torch.ones(len(bits), 1), bits], dim=1)  # value 0: the on-indicator
        states = small.run(torch.full((len(bits), 1), t), boolean_inputs(values)[:, None, :])
        for layer in range(1, 4):
            got = boolean_values(states[layer][:, 0])
            assert torch.equal(got[:, 0], torch.ones(len(bits)))
            assert torch.equal(got[:, 1:], exact[layer])
        off = small.run(torch.tensor([[t]]), torch.zeros(1, 1, 8))
        assert all(torch.equal(a, torch.zeros_like(a)) for a in off)


def test_assumptions_are_checked_and_named():
    rot = rotation_circuits(5, 2, gen(2))
    # the on-indicator row [2, -2, 0, 0] with bias -0.5 is the weakest: 0.5 / sqrt(8)
    assert float(robust_radius(rot).min()) == pytest.approx(0.5 / math.sqrt(8), rel=1e-6)
    check_assumptions(rot, 0.15)
    with pytest.raises(CircuitError, match="deviation below 0.2 does not switch"):
        check_assumptions(rot, 0.2)
    bias = rot.bias.clone()
    bias[1, 2] = 0.1
    with pytest.raises(CircuitError, match="inactive circuit is exactly 0.*layer 2 neuron 2"):
        check_assumptions(SmallCircuits(rot.weights, bias), 0.01)
    with pytest.raises(CircuitError, match="one bias vector per layer"):
        SmallCircuits(rot.weights, torch.zeros(2, 5, 4))
    with pytest.raises(CircuitError, match="finite"):
        SmallCircuits(rot.weights * float("nan"), rot.bias)


# ---- the large network --------------------------------------------------------------------------

def _reference_weights(w, rows, cols, n, form):
    """W^l by its definition, one circuit and one entry at a time."""
    T, d, _ = w.shape
    S = rows.shape[1]
    w = w.double()
    hot_r, hot_c = torch.zeros(T, n, dtype=torch.float64), torch.zeros(T, n, dtype=torch.float64)
    hot_r.scatter_(1, rows, 1.0)
    hot_c.scatter_(1, cols, 1.0)
    outer = torch.einsum("tn,tm->tnm", hot_r, hot_c)
    W = torch.zeros(d, d, n, n, dtype=torch.float64)
    if form == "plain":
        for t in range(T):
            W += w[t][:, :, None, None] * outer[t] / S
    else:
        mean = w.mean(0)
        connected = outer.sum(0).clamp(max=1)
        leak = sum(float(hot_r[t] @ connected @ hot_c[u]) for t in range(T) for u in range(T) if t != u)
        chi = leak / (S * (T * (T - 1) * S * S - leak))
        capped = connected / S - chi * (1 - connected)
        # chi balances the cross-circuit leak of the mean weights: E_(t != u) <e_t| Wcal |e_u> = 0
        cross = sum(float(hot_r[t] @ capped @ hot_c[u]) for t in range(T) for u in range(T) if t != u)
        assert abs(cross) < 1e-9
        assert all(float(hot_r[t] @ capped @ hot_c[t]) / S == pytest.approx(1.0) for t in range(T))
        W = mean[:, :, None, None] * capped
        for t in range(T):
            W += (w[t] - mean)[:, :, None, None] * outer[t] / S
    return W.permute(0, 2, 1, 3).reshape(d * n, d * n)


@pytest.mark.parametrize("n", [20, 160])  # stored dense, and sparse with the rank-d part apart
@pytest.mark.parametrize("form", ["plain", "capped"])
def test_weights_follow_their_definition(form, n):
    T, S = 25, 3
    w = rotation_circuits(T, 1, gen(3)).weights[0]
    rows = make_design(n, S, T)[torch.randperm(T, generator=gen(4))]
    cols = make_design(n, S, T)
    W = weight_layer(w, rows, cols, n, form)[0].dense()
    assert torch.allclose(W.double(), _reference_weights(w, rows, cols, n, form), atol=1e-5)


@pytest.mark.parametrize("form", ["plain", "capped"])
def test_block_by_block_weights_are_the_stored_ones(form):
    T, S, n = 25, 3, 40
    w = rotation_circuits(T, 1, gen(3)).weights[0]
    rows = make_design(n, S, T)[torch.randperm(T, generator=gen(4))]
    cols = make_design(n, S, T)
    stored, chi = weight_layer(w, rows, cols, n, form)
    blocks, chi_blocks = weight_layer(w, rows, cols, n, form, structured=True)
    assert isinstance(blocks, PatternBlocks) and chi_blocks == chi
    assert torch.allclose(blocks.dense().double(), _reference_weights(w, rows, cols, n, form), atol=1e-5)
    assert blocks.nonzeros() == stored.nonzeros()
    x = torch.randn(7, 4 * n, generator=gen(5)).relu()
    assert torch.allclose(blocks(x), stored(x), atol=1e-5)
    first, first_blocks = first_layer(w, rows, n), first_layer(w, rows, n, structured=True)
    a = torch.randn(7, T * 4, generator=gen(6))
    assert torch.equal(first_blocks.dense(), first.dense()) and first_blocks.nonzeros() == first.nonzeros()
    assert torch.allclose(first_blocks(a), first(a), atol=1e-5)


@pytest.mark.parametrize("name,kw", [
    ("rotations-in-superposition", dict(T=150, D=1000, L=3, z=[1, 2], samples=300)),
    ("circuits-in-superposition", dict(T=40, D=600, L=3, z=[1, 2], samples=200, capacity_D=[600],
                                       capacity_samples=50)),
])
def test_scenarios_give_the_same_numbers_with_weights_applied_block_by_block(name, kw, monkeypatch):
    stored = scenarios.run(name, **kw)
    monkeypatch.setattr(cis2025, "STRUCTURED_ABOVE", -1)  # every layer block by block
    blocks = scenarios.run(name, **kw)
    # the boolean network reads some features at exactly 1/2 (a step pair at its midpoint), where
    # float rounding decides "switched on": there only the errors are compared
    ties = {"switched_on"} if name == "circuits-in-superposition" else set()
    for a, b in zip(stored.rows, blocks.rows):
        for key, value in a.items():
            if isinstance(value, float) and key not in ties:
                assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key  # float rounding: sums reordered
    assert blocks.summary["params_large"] == stored.summary["params_large"]
    if name == "rotations-in-superposition":  # the placement, chi and counts: exactly the same
        assert blocks.summary == stored.summary


def test_the_inputs_of_a_seed_do_not_depend_on_the_batch(monkeypatch):
    from scenarios.library.constructions import circuits_in_superposition as cis_scenario

    kw = dict(T=40, D=600, L=3, z=[2], samples=300, capacity_D=[600], capacity_samples=50)
    whole = scenarios.run("circuits-in-superposition", **kw)
    monkeypatch.setattr(cis_scenario, "BATCH_BYTES", 37 * cis_scenario._sample_bytes(40, 600, 4, 3, 10))
    assert cis_scenario.batch_size(40, 600, 4, 3, 10) == 37  # passes of 37 samples, inputs drawn 256 at a time
    parts = scenarios.run("circuits-in-superposition", **kw)
    for a, b in zip(whole.rows, parts.rows):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("form", ["plain", "capped"])
def test_one_circuit_alone_is_computed_exactly(form):
    small = rotation_circuits(1, 6, gen(5))
    net = build_cis2025(small, 40, 3, form, gen(6))
    which = torch.zeros(8, 1, dtype=torch.long)
    a0 = rotation_inputs(torch.rand(8, 1, generator=gen(7)) * 6.28)
    exact, streams = small.run(which, a0), net.network.streams(net.inputs(which, a0))
    for layer in range(1, 7):
        assert torch.allclose(net.unembed(streams[layer], layer), exact[layer], atol=1e-5)
    twin = dedicated_network(small).streams(net.inputs(which, a0))
    assert all(torch.allclose(s.view(8, 1, 4), e, atol=1e-6) for s, e in zip(twin, exact))


def test_layer_one_inactive_error_is_the_placement_overlap():
    # every circuit active once (z = 1): an inactive circuit reads (1/S) x_u through its one shared
    # neuron, so its mean |x_hat|^2 is exactly E_(t != u) (<e_t|e_u>/S)^2 of the placement
    T, D, S = 200, 400, 5
    small = rotation_circuits(T, 1, gen(8))
    net = build_cis2025(small, D, S, "capped", gen(9))
    which = torch.arange(T)[:, None]
    a0 = rotation_inputs(torch.rand(T, 1, generator=gen(10)) * 6.28)
    est = net.unembed(net.network.streams(net.inputs(which, a0))[1], 1)
    _, x = rotation_readout(est)
    inactive = ~torch.eye(T, dtype=torch.bool)
    measured = float((x**2).sum(2)[inactive].mean())
    exact = mean_squared_overlap(net.patterns[0], D // 4)
    assert measured == pytest.approx(exact, rel=1e-4)
    assert exact == pytest.approx(theory.cis_overlap(T, D, 4, S), rel=0.1)  # the post's d/D - 1/(S T)


def test_rotations_follow_eq_6_55_at_layer_two():
    r = scenarios.run("rotations-in-superposition", T=300, D=2000, L=2, z=[1, 2], samples=2000)
    for row in r.rows:
        if row["layer"] >= 1:
            assert row["mse_active"] == pytest.approx(row["predicted_mse_active"], rel=0.15, abs=1e-4)
        if row["layer"] == 1:
            assert row["mse_inactive"] == pytest.approx(row["predicted_mse_inactive"], rel=0.1)
            assert row["switched_on"] == 0
        assert row["mse_dedicated"] < 1e-10
    assert r.summary["design"] == "transversal" and r.summary["capacity"] >= r.summary["capacity_progression"]


def test_plain_weights_break_down_where_capped_ones_hold():
    # assumption 4 (uncorrelated circuits) fails for the rotations: their mean weights add up
    # over every circuit sharing a neuron unless they go through the capped matrix
    kw = dict(T=300, D=1000, L=3, z=[1], samples=300)
    capped = scenarios.run("rotations-in-superposition", weights="capped", **kw).rows[-1]
    plain = scenarios.run("rotations-in-superposition", weights="plain", **kw).rows[-1]
    assert plain["mse_active"] > 10 * capped["mse_active"] and plain["switched_on"] > 10 * capped["switched_on"]


def test_refusals_name_the_limit():
    with pytest.raises(UsageError, match="holds at most 557 circuits"):
        scenarios.run("rotations-in-superposition", T=558, design="progression")
    with pytest.raises(UsageError, match="multiple of d=4"):
        scenarios.run("rotations-in-superposition", D=1002)


# ---- boolean small circuits as a compiled network ---------------------------------------------

def _one_active(T: int, g: int, t: int, bits: list[float]) -> torch.Tensor:
    x = torch.zeros(1, T * (g + 1))
    x[0, t * (g + 1):(t + 1) * (g + 1)] = torch.tensor(bits + [1.0])
    return x


def test_boolean_network_reads_what_the_construction_holds_and_feeds_tracer_and_graph():
    from circuits.graph import FeatureGraph
    from circuits.trace import trace_noise

    one = small_circuits(1, 3, 3, gen(13))
    alone = compile_boolean_cis2025(one, 8 * 10, 4, "capped", gen(14))
    for bits in all_inputs(3).tolist():  # nothing shared: exact on every input
        x = _one_active(1, 3, 0, bits)
        for read, exact in zip(alone.read_features(x), evaluate(alone.circuit, x)):
            assert torch.allclose(read, exact, atol=1e-5)
    smalls = small_circuits(12, 3, 3, gen(11))
    net = compile_boolean_cis2025(smalls, 8 * 40, 4, "capped", gen(12))
    assert net.circuit.widths == cis_circuit(smalls).widths
    x = torch.cat([_one_active(12, 3, t, [1.0, 0.0, 1.0]) for t in range(12)])
    reads, streams = net.read_features(x), net.network.streams(x)
    for layer in range(1, 4):  # the compiled read-outs are the values of the un-embedded step pairs
        held = boolean_values(net.cis.unembed(streams[layer], layer))  # (batch, T, on + gates)
        assert torch.allclose(reads[layer].view(12, 12, 4), torch.cat([held[:, :, 1:], held[:, :, :1]], 2), atol=1e-6)
    x = _one_active(12, 3, 5, [1.0, 1.0, 0.0])

    class OneInput:
        def sample(self, batch: int) -> torch.Tensor:
            return x.repeat(batch, 1)

    twin = compile_dedicated(net.circuit)
    rows = trace_noise(net.circuit, {"cis": net.read_features, "twin": twin.read_features}, OneInput(), 4,
                       progress=False)
    by_hand = [((r - e) ** 2).mean().item() for r, e in zip(net.read_features(x), evaluate(net.circuit, x))]
    assert [r.mse for r in rows["cis"]] == pytest.approx(by_hand, rel=1e-5, abs=1e-12)
    assert all(r.mse == 0 for r in rows["twin"])
    # the graph's first block: each gate sees its inputs with slope h'(1/2) = 2 times the sign of
    # its pre-activation; the indicator carries the constant (-1 for AND, +1 for NOT)
    fg = FeatureGraph.build(net)
    weight = fg.blocks[0].weight
    for k, gate in enumerate(net.circuit.layers[0][:4]):
        on = (k // 4) * 4 + 3
        if gate.kind == "AND":
            expect = {gate.inputs[0]: 2.0, gate.inputs[1]: 2.0, on: -2.0}
        elif gate.kind == "ANDNOT":
            expect = {gate.inputs[0]: 2.0, gate.inputs[1]: -2.0}
        else:
            expect = {gate.inputs[0]: 2.0}
        for j, w in expect.items():
            assert weight[k, j].item() == pytest.approx(w, abs=1e-5)


def test_circuits_in_superposition_2025_beats_2024():
    kw = dict(T=40, z=[2], L=4, samples=300, capacity_D=[1000], capacity_samples=100)
    new = scenarios.run("circuits-in-superposition", construction="2025", **kw)
    old = scenarios.run("circuits-in-superposition", construction="2024", **kw)
    assert new.rows[-1]["mse_active"] < old.rows[-1]["mse_active"] / 3
    s = new.summary
    assert s["capacity_T_measured_2025"][0] > 2 * s["capacity_T_measured_2024"][0]
    assert s["capacity_T_design_2025"] == [design_capacity(100, 6)]
    # layer 1 is fed exact values, so its own error is the prediction there
    one = new.rows[1]
    assert one["mse_active"] == pytest.approx(one["predicted_mse_active"], rel=1e-4, abs=1e-9)


def test_a_users_mlp_goes_through_as_the_readme_shows():
    gen_ = torch.Generator().manual_seed(0)
    L, T, d = 3, 200, 4
    weights = torch.randn(L, T, d, d, generator=gen_) * 0.7
    bias = torch.full((L, d), -0.1)
    small = SmallCircuits(weights, bias)
    check_assumptions(small, margin=0.02)
    net = build_cis2025(small, D=800, S=4, form="capped", generator=gen_)
    which = torch.tensor([[3, 17]])
    a0 = 1 + torch.rand(1, 2, d, generator=gen_)
    streams = net.network.streams(net.inputs(which, a0))
    estimate = net.unembed(streams[L], L)
    exact = small.run(which, a0)[L]
    assert estimate.shape == (1, T, d)
    # the active circuits are read close to their exact states, the inactive ones close to 0
    err_active = (estimate[0, which[0]] - exact[0]).pow(2).mean()
    inactive = torch.ones(T, dtype=torch.bool)
    inactive[which[0]] = False
    assert exact.pow(2).mean() > 1 and err_active < 0.05 * exact.pow(2).mean()
    assert estimate[0, inactive].pow(2).mean() < 0.1 * exact.pow(2).mean()  # overlaps, propagated
    with pytest.raises(CircuitError, match="deviation below 0.05"):
        check_assumptions(small, margin=0.05)


def test_the_summary_names_the_family_that_was_built():
    from circuits.designs import chosen_family

    assert [chosen_family(50, S, 40) for S in (1, 2, 3)] == ["reuse", "pairs", "transversal"]
    assert chosen_family(50, 2, 40, "transversal") == "transversal"
    for S, family in ((1, "reuse"), (2, "pairs")):
        r = scenarios.run("rotations-in-superposition", T=30, D=200, S=S, L=2, z=[1], samples=50)
        assert r.summary["design"] == family


@pytest.mark.parametrize("band", [(0.25, 0.75), (0.4, 0.8), (0.5, 0.9)])
def test_the_indicator_resets_on_its_band_and_the_rotation_is_unchanged(band):
    # a small circuit alone: its indicator read alpha is reset to 0 below the band's low end and
    # to 1 above its high end, linearly between; the vector rotates as with the published step
    from circuits.small import indicator_step, rotation_weights

    k, b0, b1 = indicator_step(band)
    alpha = torch.tensor([0.0, band[0] - 0.01, (band[0] + band[1]) / 2, band[1] + 0.01, 1.0, 1.2])
    h = torch.relu(k * alpha + b0) - torch.relu(k * alpha + b1)
    assert torch.allclose(h, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0, 1.0]), atol=1e-6)
    small = rotation_circuits(3, 4, gen(11), band)
    published = rotation_circuits(3, 4, gen(11))
    which = torch.arange(3)[None, :].expand(5, 3)
    a0 = rotation_inputs(torch.rand(5, 3, generator=gen(12)) * 6.28)
    for state, reference in zip(small.run(which, a0), published.run(which, a0)):
        (on, x), (_, x_published) = rotation_readout(state), rotation_readout(reference)
        assert torch.allclose(x, x_published, atol=1e-5) and torch.allclose(on, torch.ones(5, 3), atol=1e-6)
    assert torch.equal(rotation_weights(torch.zeros(1), band)[0, 0, :2], torch.tensor([k, -k]))
    with pytest.raises(CircuitError):
        rotation_circuits(2, 2, gen(0), (0.8, 0.4))
