"""The power-law fit against points drawn from a known law, and the integer searches against a
criterion with a known edge."""

import math
import random

import pytest

from scenarios.engine.fits import fit_power_law, t95
from scenarios.engine.search import largest_passing, largest_passing_from, smallest_passing


def test_the_fit_recovers_an_exact_power_law_with_a_zero_width_interval():
    x = [100, 200, 400, 800, 1600]
    fit = fit_power_law(x, [3.0 * v**1.5 for v in x])
    assert fit.exponent == pytest.approx(1.5, abs=1e-12) and fit.prefactor == pytest.approx(3.0, rel=1e-9)
    assert fit.high - fit.low == pytest.approx(0.0, abs=1e-9) and fit.points == 5
    assert fit(1000) == pytest.approx(3.0 * 1000**1.5, rel=1e-9)


def test_the_interval_of_a_noisy_fit_covers_the_true_slope_about_95_percent_of_the_time():
    rng = random.Random(0)
    x = [50 * 2 ** (k / 2) for k in range(8)]
    covered, trials = 0, 400
    for _ in range(trials):
        y = [0.5 * v**1.7 * math.exp(rng.gauss(0, 0.1)) for v in x]
        fit = fit_power_law(x, y)
        covered += fit.low <= 1.7 <= fit.high
        assert abs(fit.exponent - 1.7) < 0.2
    assert 0.91 < covered / trials < 0.99  # the t interval's 95%, within binomial noise of 400 trials


def test_the_fit_skips_missing_points_and_needs_two():
    assert fit_power_law([10, 20], [None, 5]) is None
    two = fit_power_law([10, 20, 40], [None, 4.0, 16.0])
    assert two.exponent == pytest.approx(2.0) and math.isnan(two.low) and two.points == 2
    assert t95(3) == pytest.approx(4.303)


@pytest.mark.parametrize("edge", [7, 100, 999])
def test_the_searches_bracket_a_known_edge_within_their_tolerance(edge):
    seen = []

    def below(k):  # passes up to the edge: largest passing is the edge
        seen.append(k)
        return k <= edge

    for bracket in (largest_passing(below, 1, 1000, 0.05), largest_passing_from(below, 300, 1, 1000, 0.05)):
        assert bracket.passing <= edge < (bracket.failing or 10**9)
        assert bracket.failing is None or bracket.failing - bracket.passing <= max(1, 0.05 * bracket.failing)
    bracket = smallest_passing(lambda k: k >= edge, 1, 1000, 0.05)
    assert bracket.failing < edge <= bracket.passing or bracket.passing == edge == 1
    assert bracket.passing - (bracket.failing or 0) <= max(1, 0.05 * bracket.passing)


def test_a_search_says_where_its_range_has_no_passing_end():
    assert largest_passing(lambda k: False, 5, 50).passing is None
    assert largest_passing_from(lambda k: True, 10, 5, 50).failing is None
    assert smallest_passing(lambda k: False, 5, 50).passing is None
    with pytest.raises(ValueError):
        largest_passing_from(lambda k: True, 60, 5, 50)
