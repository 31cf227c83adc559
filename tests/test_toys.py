"""The field's toy models against their closed forms."""

import pytest

import scenarios
from circuits import theory
from circuits.readout import best_scale


def test_compressed_storage_follows_both_closed_forms_and_training_finds_the_dedicated_one():
    r = scenarios.run("compressed-storage", T=[200], D=[20, 80], p=[0.05, 0.2], samples=4000, steps=600)
    for row in r.rows:
        assert row["mse_random"] == pytest.approx(row["predicted_random"], rel=0.04)
        assert row["mse_dedicated"] == pytest.approx(row["predicted_dedicated"], rel=0.04)
        assert row["scale_random"] == pytest.approx(row["predicted_scale"], rel=0.05)
        # a linear autoencoder on independent features can do no better than keeping D of them
        assert row["mse_trained"] == pytest.approx(row["predicted_dedicated"], rel=0.05)
    assert r.summary["random_beats_dedicated"] == 0


def test_the_best_scale_is_least_squares():
    import torch

    reads = torch.tensor([1.0, 2.0, 0.0, -1.0])
    truth = torch.tensor([1.0, 3.0, 1.0, 0.0])
    assert best_scale(reads, truth) == pytest.approx((1 + 6 + 0 + 0) / (1 + 4 + 0 + 1))
    assert theory.storage_mse_random(100, 100, 0.1) == pytest.approx(0.05)
    assert theory.storage_mse_dedicated(100, 40, 0.5) == pytest.approx(0.25 * 0.6)


def test_five_features_in_two_dimensions_form_a_pentagon_when_sparse():
    r = scenarios.run("toy-models", sparsity=[0.0, 0.99], steps=3000)
    sparse = [row for row in r.rows if row.get("sparsity") == 0.99]
    assert r.summary["represented"][1] == 5
    assert all(a == pytest.approx(72.0, abs=5.0) for a in r.summary["angles"])  # a regular pentagon
    assert sum(r.summary["angles"]) == pytest.approx(360.0)
    assert all(row["dimensionality"] == pytest.approx(2 / 5, abs=0.03) for row in sparse)  # 2 dims, 5 features
    # dense features: no superposition, about one dimension per represented feature
    assert r.summary["dims_per_feature"][0] == pytest.approx(1.0, abs=0.1)
    # all five on a circle, longer than 1 to outrun the negative bias that filters interference
    assert all(1.0 < row["norm"] < 1.4 and row["bias"] < 0 for row in sparse)


def test_dimensionality_of_hand_made_geometries():
    import math

    import torch

    from scenarios.library.toys.toy_models import dimensionality, neighbour_angles

    theta = torch.arange(5) * 2 * math.pi / 5
    pentagon = torch.stack([theta.cos(), theta.sin()])
    assert torch.allclose(dimensionality(pentagon), torch.full((5,), 0.4), atol=1e-6)
    antipodal = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(dimensionality(antipodal), torch.tensor([0.5, 0.5, 1.0]))
    assert neighbour_angles(pentagon, torch.ones(5, dtype=torch.bool)) == pytest.approx([72.0] * 5)


def test_compressed_computation_beats_naive_only_through_the_mixing_matrix():
    r = scenarios.run("compressed-computation", features=40, neurons=20, embed=400, p=[0.02], p_default=0.02,
                      steps=2000, batch=512, eval_samples=50000, mixing_scale=[0.5, 4.0])
    s = r.summary
    naive = s["predicted_naive_without_mixing"]
    assert naive == pytest.approx((40 - 20) / 40 / 6)  # half the features dropped, E[ReLU(x)^2] = 1/6
    assert s["loss_with_mixing"] < 0.9 * naive  # beats computing 20 functions and dropping 20
    assert s["loss_without_mixing"] > 0.95 * naive  # without the mixing matrix the gain is gone
    assert s["loss_naive"] > s["loss_with_mixing"]
    assert s["mixing_std"] == pytest.approx(s["predicted_mixing_std"], rel=0.1)  # M = I - W_E^T W_E
    # the naive solution on mixed labels pays the dropped ReLUs plus all of M x, in closed form
    for row in r.rows:
        if row["variant"] in ("naive_baseline", "naive_scaled"):
            assert row["loss_per_feature"] == pytest.approx(row["predicted_naive_mixed"], rel=0.05)
    # the gain is U-shaped in the mixing strength: none without mixing, lost again when M is large
    trained = {row["mixing_scale"]: row["loss_per_feature"] for row in r.rows
               if row["variant"] in ("with_mixing", "without_mixing", "scaled_mixing")}
    assert s["best_mixing_scale"] in (0.5, 1.0) and trained[4.0] > trained[s["best_mixing_scale"]] * 1.2


def test_a_trained_layer_computes_every_and_densely_where_the_hand_built_one_cannot():
    r = scenarios.run("trained-u-and", m=12, d=[3, 16], steps=1500, samples=4000)
    small, big = r.rows
    assert big["wrong_features_trained"] == 0 and big["wrong_features_trained"] < big["wrong_features_handbuilt"]
    assert small["wrong_features_trained"] > 0  # fewer neurons, more errors: it trades one for the other
    assert big["density"] > 5 * big["density_handbuilt"]  # every neuron serves (almost) every AND
    assert big["intended_share_trained"] < big["intended_share_handbuilt"]
    for row in r.rows:  # every neuron is in exactly one class for every AND
        assert row["class_a"] + row["class_b"] + row["class_c"] == pytest.approx(row["d"])
    assert r.summary["pairs"] == 66 and r.summary["smallest_exact_d"] == 16
    sup = scenarios.run("trained-u-and", m=8, d=[16], d0=6, steps=800, samples=2000)  # inputs in superposition
    assert sup.rows[0]["wrong_features_trained"] < 1


def test_class_and_binarity_measures_on_hand_made_weights():
    import torch

    from circuits.generators import all_pairs_and
    from scenarios.library.toys.trained_u_and import binarity, classes

    w = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]])  # two neurons with binary weights
    assert binarity(w) == pytest.approx(1.0)
    u = torch.ones(6, 2)
    got = classes(all_pairs_and(4), w, u)
    # pairs (0,1),(0,2),(0,3),(1,2),(1,3),(2,3): neuron 0 high on {0,1}, neuron 1 on {1,2,3}
    assert got["class_a"] == pytest.approx((1 + 0 + 0 + 1 + 1 + 1) / 6)
    assert got["class_c"] == pytest.approx((0 + 0 + 0 + 0 + 0 + 1) / 6)



def test_the_weak_superposition_law_is_the_loss_of_keeping_the_frequent_features():
    """A hand-set model that keeps the m most frequent features exactly (unit rows on the basis)
    and outputs the mean p_i for every other one, evaluated like a trained one, pays the closed
    form (1/n) sum_{i > m} (4/3 p_i - p_i^2)."""
    import torch

    from scenarios.engine.params import resolve
    from scenarios.engine.registry import Context
    from scenarios.library.toys import superposition_scaling as ss

    n, m = 60, 6
    p = resolve(ss.PARAMS, dict(features=n, widths=[m], alpha=[0.3, 1.0], weight_decay=[0.0],
                                eval_samples=200_000))
    w = torch.zeros(2, n, m)
    w[:, torch.arange(m), torch.arange(m)] = 1.0
    b = torch.stack([torch.cat([torch.zeros(m), ss.frequencies(n, a)[m:].float()]) for a in p.alpha])
    measured = ss.evaluate(p, Context(seed=3, device=torch.device("cpu")), w, b, torch.tensor([0, 1]))
    for k, a in enumerate(p.alpha):
        assert float(measured[k]) == pytest.approx(ss.predicted_weak_loss(ss.frequencies(n, a), m), rel=0.03)
    # the tail sum is the integral of i^-(1 + alpha) from m to n, to O(1/m): about m^-alpha, cut off at n
    n, alpha = 100_000, 0.5
    probs = ss.frequencies(n, alpha)
    ratio = ss.predicted_weak_loss(probs, 400) / ss.predicted_weak_loss(probs, 100)
    assert ratio == pytest.approx((400**-alpha - n**-alpha) / (100**-alpha - n**-alpha), rel=0.01)


def test_weight_decay_shrinks_or_grows_rows_towards_unit_norm():
    import torch

    from scenarios.library.toys import superposition_scaling as ss

    w = torch.tensor([[[2.0, 0.0], [0.0, 0.5]], [[2.0, 0.0], [0.0, 0.5]]])
    ss.decay_(w, torch.tensor([-1.0, 1.0]), lr=0.1)
    assert w[0].norm(dim=1).tolist() == pytest.approx([2 - 0.1 * (2 - 1), 0.5 + 0.1 * (1 - 0.5)], rel=1e-6)
    assert w[1].norm(dim=1).tolist() == pytest.approx([2 * 0.9, 0.5 * 0.9], rel=1e-6)


def test_overlaps_of_hand_made_rows():
    import torch

    from scenarios.library.toys import superposition_scaling as ss

    assert ss.overlap_stats(torch.eye(4)) == (1.0, 0.0)
    share, overlap = ss.overlap_stats(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 0.1]]))
    assert share == pytest.approx(2 / 3) and overlap == pytest.approx(1.0)


def test_weight_decay_moves_the_toy_between_strong_and_weak_superposition():
    """Small and short, but the two regimes already separate: growth keeps a row for every
    feature, decay keeps at most one per dimension."""
    r = scenarios.run("superposition-scaling", features=64, widths=[4, 8], alpha=[1.0], weight_decay=[-1.0, 1.0],
                      steps=1500, batch=256, eval_samples=8192)
    regimes = {f["weight_decay"]: f["regime"] for f in r.summary["fits"]}
    assert regimes == {-1.0: "strong", 1.0: "weak"}
    for row in r.rows:
        if row["weight_decay"] == -1.0:
            # strongly superposed rows overlap like random directions in R^m, within a factor 2
            assert 0.5 / row["width"] < row["mean_sq_overlap"] < 2 / row["width"]
    for gamma in (-1.0, 1.0):
        narrow, wide = (row["loss"] for row in r.rows if row["weight_decay"] == gamma)
        assert wide < narrow / 2  # twice the width: at least half the loss in either regime here


def test_the_two_in_one_boundary_is_where_the_closed_form_losses_cross():
    from circuits.theory import two_in_one_boundary, two_in_one_losses

    for density in (0.01, 0.1, 0.3, 0.5):
        low, high = two_in_one_boundary(density)
        at_low, at_high = two_in_one_losses(density, low), two_in_one_losses(density, high)
        assert at_low["antipodal"] == pytest.approx(at_low["dedicated_to_1"], rel=1e-12)
        assert at_high["antipodal"] == pytest.approx(at_high["dedicated_to_2"], rel=1e-12)
        for r, wins in ((low / 1.5, "dedicated_to_1"), (low * 1.5, "antipodal"), (high / 1.5, "antipodal"),
                        (high * 1.5, "dedicated_to_2")):
            losses = two_in_one_losses(density, r)
            assert min(losses, key=losses.get) == wins
    assert two_in_one_boundary(4 / 7) is None  # from there on the antipodal pair never wins


def test_the_two_in_one_closed_forms_are_the_losses_of_their_weights():
    import torch

    from circuits.theory import two_in_one_losses

    gen = torch.Generator().manual_seed(0)
    density, r = 0.3, 0.7
    n = 2_000_000  # the antipodal loss lives on the 9% of samples with both on: its error is 0.3% here
    x = torch.rand(n, 2, generator=gen, dtype=torch.float64) * (torch.rand(n, 2, generator=gen) < density)
    importance = torch.tensor([1.0, r], dtype=torch.float64)

    def loss(w: list[float], b: list[float]) -> float:
        w_, b_ = torch.tensor(w, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        out = torch.relu((x @ w_)[:, None] * w_ + b_)
        return float((importance * (x - out) ** 2).sum(1).mean())

    closed = two_in_one_losses(density, r)
    assert loss([1.0, 0.0], [0.0, density / 2]) == pytest.approx(closed["dedicated_to_1"], rel=0.02)
    assert loss([0.0, 1.0], [density / 2, 0.0]) == pytest.approx(closed["dedicated_to_2"], rel=0.02)
    assert loss([1.0, -1.0], [0.0, 0.0]) == pytest.approx(closed["antipodal"], rel=0.02)


def test_cells_far_from_the_two_in_one_boundary_train_into_their_phase():
    from scenarios.library.toys.toy_models import classify

    assert [classify(*w) for w in ((1, -0.9), (1, 0.9), (0.1, -1), (1, 0.2), (0.3, 0.2))] == \
        ["antipodal", "other", "dedicated_to_2", "dedicated_to_1", "other"]
    r = scenarios.run("toy-models", features=2, dims=1, sparsity=[0.5], instances=3, steps=1500, phase_grid=3)
    phase = {(row["density"], row["relative_importance"]): row["phase"] for row in r.rows if "phase" in row}
    assert phase[(0.01, 1.0)] == "antipodal"  # sparse, equal importance: superposition
    assert phase[(1.0, 0.1)] == "dedicated_to_1"  # dense: the dimension goes to the more important
    assert phase[(1.0, 10.0)] == "dedicated_to_2"
    for row in r.rows:
        if row.get("phase") in ("dedicated_to_1", "dedicated_to_2"):  # a dedicated cell learns its closed form
            assert row["loss"] == pytest.approx(row["predicted_dedicated_loss"], rel=0.1)


def test_the_no_hidden_baseline_reads_every_and_on_the_basis_and_fails_where_it_cannot_threshold():
    """With 0/1 inputs on the basis every AND is a threshold on its two inputs' sum, so a model
    without hidden neurons reads them all: a trained layer that does no better computes nothing.
    Fitted by squared error it cannot put 1 on the sum 2 and 0 on the sums 0 and 1 (a line), and
    with the inputs in superposition in fewer dimensions than features it no longer sees each sum."""
    import torch

    from circuits.generators import all_pairs_and
    from layers import make_embedding
    from scenarios.engine.params import resolve
    from scenarios.engine.registry import Context
    from scenarios.library.toys import trained_u_and as tu

    ctx = Context(seed=0, device=torch.device("cpu"))

    def wrong(**given) -> float:
        # a larger learning rate than the default gives the baseline its large weights in fewer steps
        p = resolve(tu.PARAMS, dict(m=12, steps=400, lr=0.05, samples=3000) | given)
        circuit = all_pairs_and(p.m)
        phi = make_embedding("random", p.m, p.d0, ctx.generator("embedding")) if p.d0 else None
        return tu.no_hidden_reads(p, circuit, phi, *tu.train_no_hidden(p, circuit, phi, ctx), 7)[0]

    assert wrong() == 0.0
    assert wrong(active=3) == 0.0  # any number on: x_i + x_j = 2 still marks the AND
    assert wrong(loss="mse") == 1.0  # reads no AND right: the one true AND per input is missed
    assert wrong(d0=5) > 0.05


def test_the_copying_solution_is_the_linear_read_once_it_has_its_neurons():
    """Copying k of m basis inputs through ReLUs, with the exact threshold x_i + x_j > 3/2 on the
    copies, misses exactly the ANDs with an uncopied input: with two inputs on, a share
    1 - C(k, 2) / C(m, 2) of inputs has its one AND missed. In superposition, 2 d0 neurons copy the
    signed stream and reproduce the linear read exactly."""
    import math

    import torch

    from circuits.generators import all_pairs_and
    from circuits.sampling import ExactlyActive
    from circuits.trace import trace_noise
    from layers import make_embedding
    from scenarios.library.toys import trained_u_and as tu

    m = 10
    circuit = all_pairs_and(m)
    ii, jj = tu._pairs(circuit)
    v = torch.zeros(len(ii), m)
    v[torch.arange(len(ii)), ii] = 1.0
    v[torch.arange(len(ii)), jj] = 1.0
    c = torch.full((len(ii),), -1.5)
    for k in (4, 7, 10, 13):
        net = tu.as_copying(circuit, None, v, c, k, bce=True)
        assert net.cost().neurons == [k]
        wrong = trace_noise(circuit, {"c": net.read_features}, ExactlyActive(m, 2, 3), 20000,
                            progress=False)["c"][1].wrong_features
        expect = 1 - math.comb(min(k, m), 2) / math.comb(m, 2)
        assert wrong == pytest.approx(expect, abs=4 * math.sqrt(expect * (1 - expect) / 20000) + 1e-12)
    assert tu.copying_neurons(m, 0) == m and tu.copying_neurons(m, 4) == 8
    phi = make_embedding("random", m, 4, torch.Generator().manual_seed(1))
    v = torch.randn(len(ii), 4, generator=torch.Generator().manual_seed(2))
    x = ExactlyActive(m, 3, 5).sample(64)
    full = tu.as_copying(circuit, phi, v, c, 8, bce=False).read_features(x)[1]
    assert torch.allclose(full, x @ phi @ v.T + c, atol=1e-5)
    half = tu.as_copying(circuit, phi, v, c, 5, bce=False).read_features(x)[1]  # two coordinates copied
    assert torch.allclose(half, x @ phi[:, :2] @ v[:, :2].T + c, atol=1e-5)


def test_the_best_linear_read_of_an_and_is_affine_in_its_two_inputs_sum():
    """The closed-form squared error of the best linear read (affine in x_i + x_j by symmetry)
    against a least-squares fit on every input and a constant, over sampled inputs."""
    import torch

    from circuits.sampling import ExactlyActive
    from circuits.theory import linear_and_mse

    for m, active in ((12, 2), (12, 4), (30, 3)):
        x = ExactlyActive(m, active, 11).sample(200_000).double()
        target = x[:, 0] * x[:, 1]
        design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        coef = torch.linalg.lstsq(design, target[:, None]).solution
        fitted = float(((design @ coef)[:, 0] - target).pow(2).mean())
        assert fitted == pytest.approx(linear_and_mse(m, active), rel=0.03)
    assert linear_and_mse(12, 12) == 0.0  # every AND on: a constant reads it


def test_the_dedicated_solution_computes_one_and_per_neuron_and_leaves_the_rest_at_their_mean():
    """d neurons ReLU(x_i + x_j - 1) on d of the pairs, the other ANDs read as the constant q:
    the measured squared error per AND against the closed form, on sampled inputs."""
    import torch

    from circuits.sampling import ExactlyActive
    from circuits.theory import dedicated_and_mse

    m, active = 10, 3
    pairs = torch.combinations(torch.arange(m))
    q = active * (active - 1) / (m * (m - 1))
    x = ExactlyActive(m, active, 4).sample(100_000)
    target = x[:, pairs[:, 0]] * x[:, pairs[:, 1]]
    for d in (0, 7, 30, 45, 60):
        k = min(d, len(pairs))
        read = torch.full_like(target, q)
        read[:, :k] = torch.relu(x[:, pairs[:k, 0]] + x[:, pairs[:k, 1]] - 1)
        assert float((read - target).pow(2).mean()) == pytest.approx(dedicated_and_mse(m, active, d), rel=0.03,
                                                                     abs=1e-9)
