"""Closed forms checked on values worked out by hand."""

import math

import pytest
import torch

from circuits import theory


def test_q_tail():
    assert theory.q_tail(0.0) == 0.5
    assert theory.q_tail(1.959964) == pytest.approx(0.025, rel=1e-5)


def test_relay_recursion_by_hand():
    # m/n = 3, l/n = 0.01: 0.01, 4 * 0.01 + 0.01, 4 * 0.05 + 0.01
    assert theory.relay_mse(300, 100, 1, 2) == pytest.approx([0.01, 0.05, 0.21])


def test_cleanup_h():
    x = torch.tensor([-1.0, 0.25, 0.5, 0.75, 2.0])
    assert theory.cleanup(x).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert theory.cleanup_mse_gaussian(1.0, 0.0, 1.0) == 0.0
    # N(0, 1): P(Z > 0.75) + E[h(Z)^2 on (0.25, 0.75)] lies between Q(0.75) and Q(0.25)
    v = theory.cleanup_mse_gaussian(0.0, 1.0, 0.0)
    assert theory.q_tail(0.75) < v < theory.q_tail(0.25)


def test_false_positives_and_threshold():
    assert theory.false_positives(1000, 0, 64) == 0.0
    assert theory.false_positives(1000, 16, 64) == pytest.approx(984 * theory.q_tail(1.0))
    assert theory.post_threshold(math.e**2, 16) == pytest.approx(1.0)


def test_mean_field_matches_the_recursion_where_nothing_leaks():
    # with n huge, interference is negligible: MSE = l/n at every layer, no wrong features
    mse, wrong = theory.mean_field_cleanup_relay(100, 10**7, 2, 3)
    assert mse == pytest.approx([2e-7] * 4, rel=1e-3)
    assert max(wrong) < 1e-12


def test_uand_law_reduces_to_theory():
    # d0 = 0, one input off: mean s' p, std sqrt(s' (1 - p) / (p d)) up to E[1/c] vs 1/(p^2 d)
    mean, std = theory.uand_case(1, 2, 3, 0.1, 1000)
    jensen = theory.mean_inverse_count(1000, 0.01) * 10
    assert mean == pytest.approx(0.2, abs=1e-6)
    assert std == pytest.approx(theory.uand_std(2, 0.1, 1000) * math.sqrt(jensen), rel=1e-6)
    assert 1.1 < jensen < 1.15
    # all inputs off: E[(N - 1)_+] with N ~ Bin(3, p) = 3p - 1 + (1 - p)^3
    assert theory.uand_case(0, 2, 3, 0.1, 1000)[0] == pytest.approx(0.3 - 1 + 0.9**3, abs=1e-9)


def test_uand_forms():
    assert theory.uand_mean(3, 0.1) == pytest.approx(0.3)
    assert theory.uand_std(3, 0.1, 1000) == pytest.approx(math.sqrt(3 * 0.9 / 100))
