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
