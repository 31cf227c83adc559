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
    sparse = [row for row in r.rows if row["sparsity"] == 0.99]
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
                      steps=2000, batch=512, eval_samples=50000)
    s = r.summary
    naive = s["predicted_naive_without_mixing"]
    assert naive == pytest.approx((40 - 20) / 40 / 6)  # half the features dropped, E[ReLU(x)^2] = 1/6
    assert s["loss_with_mixing"] < 0.9 * naive  # beats computing 20 functions and dropping 20
    assert s["loss_without_mixing"] > 0.95 * naive  # without the mixing matrix the gain is gone
    assert s["loss_naive"] > s["loss_with_mixing"]
    assert s["mixing_std"] == pytest.approx(s["predicted_mixing_std"], rel=0.1)  # M = I - W_E^T W_E


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
