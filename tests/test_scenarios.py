"""Each scenario at small sizes: its rows against the predictions it prints."""

import math

import pytest

import scenarios


def test_sparsity_rows_follow_theory():
    r = scenarios.run("sparsity", m=1024, n=128, active=[2, 8, 32], samples=3000,
                      capacity_n=[32, 64], capacity_probe=1024)
    for row in r.rows:
        assert row["interference_std"] == pytest.approx(row["predicted_std"], rel=0.03)
        assert row["dedicated_interference_std"] == 0.0
        assert row["jl_bound"] > row["interference_std"]
        if row["predicted_false_positives"] >= 0.5:
            assert row["false_positives_per_sample"] == pytest.approx(row["predicted_false_positives"], rel=0.2)
    s = r.summary
    assert s["rms_overlap"] == pytest.approx(s["predicted_rms_overlap"], rel=0.02)
    for measured, predicted in zip(s["capacity_measured"], s["capacity_predicted"]):
        assert measured == pytest.approx(predicted, rel=0.2)


def test_compounding_noise_rows():
    r = scenarios.run("compounding-noise", m=512, n=128, active=2, layers=3, samples=6000)
    none = [row for row in r.rows if row["cleanup"] == "none"]
    clean = [row for row in r.rows if row["cleanup"] == "threshold"]
    assert len(none) == len(clean) == 4
    for row in none:
        assert row["mse_superposed"] == pytest.approx(row["predicted_mse"], rel=0.10)
        assert row["neurons_superposed"] == (0 if row["layer"] == 0 else 512)
    for row in clean:
        assert row["mse_superposed"] == pytest.approx(row["predicted_mse_mean_field"], rel=0.08)
        assert row["neurons_superposed"] == (0 if row["layer"] == 0 else 1024)
    assert all(row["mse_dedicated"] == 0 and row["wrong_features_dedicated"] == 0 for row in r.rows)
    assert r.summary["growth_per_layer_none"] > 3  # (1 + m/n) = 5 per layer, asymptotically


@pytest.mark.parametrize("gate", ["and", "or", "mixed"])
def test_compounding_noise_other_gates_have_exact_dedicated_twin(gate):
    r = scenarios.run("compounding-noise", m=128, n=64, active=3, layers=2, samples=1000, gate=gate)
    assert all(row["mse_dedicated"] == 0 for row in r.rows)
    assert all(row["predicted_mse"] is None for row in r.rows)


def test_booleanish_rows_follow_the_gaussian_prediction():
    r = scenarios.run("booleanish", m=500, n=128, active=4, sigma_on=[0.0, 0.2], sigma_off=[0.0, 0.05],
                      samples=4000)
    for row in r.rows[:-1]:
        assert row["mse_cleaned_superposed"] == pytest.approx(row["predicted_cleaned_superposed"], rel=0.12)
        assert row["mse_cleaned_superposed"] < row["mse_raw_superposed"]
    cont = r.rows[-1]
    assert cont["setting"] == "continuous"
    # h destroys a continuous value even without superposition: E[(h(v) - v)^2], v ~ U(0, 1) = 1/48
    assert cont["mse_cleaned_active_dedicated"] == pytest.approx(1 / 48, rel=0.1)
    assert r.summary["readout_noise_std"] == pytest.approx(math.sqrt(4 / 128), rel=0.05)


def test_cost_ledger_orders_the_networks():
    r = scenarios.run("cost-ledger", m=256, n=128, layers=2, active=[1, 2, 4, 8], samples=1500)
    by = {row["network"]: row for row in r.rows}
    assert by["dedicated"]["max_active_measured"] == 256
    assert by["superposed_threshold"]["max_active_measured"] >= by["superposed_none"]["max_active_measured"]
    assert by["superposed_threshold"]["neurons_per_layer"] == 2 * by["superposed_none"]["neurons_per_layer"]
    assert by["superposed_none"]["stream_width"] == 128


def test_uand_scenario_follows_its_law():
    r = scenarios.run("u-and", m=300, d=600, p=0.15, active=3, samples=600, per_case=16, sweep_d=[300],
                      sweep_p=[0.3], sweep_d0=[0, 600], sweep_samples=300)
    assert [row["case"] for row in r.rows] == ["11", "10", "00"]
    for row in r.rows:
        assert row["mean_error"] == pytest.approx(row["predicted_mean"], rel=0.15, abs=0.01)
        assert row["std_error"] == pytest.approx(row["predicted_std"], rel=0.15)
    for pt in r.summary["sweep_d"] + r.summary["sweep_p"] + r.summary["sweep_d0"]:
        assert pt["std_on"] == pytest.approx(pt["predicted_std_on"], rel=0.15)
    basis, narrow = r.summary["sweep_d0"]
    assert narrow["std_on"] > basis["std_on"]  # superposed inputs add read noise
    assert r.summary["pairs"] == 300 * 299 // 2


def test_circuits_in_superposition_rows():
    r = scenarios.run("circuits-in-superposition", construction="2024", T=40, z=[1, 2], samples=200,
                      capacity_D=[1000], capacity_samples=50)
    for z in (1, 2):
        rows = [row for row in r.rows if row["active_circuits"] == z]
        assert len(rows) == 6 and rows[0]["mse_active"] == 0 and rows[0]["mse_inactive"] == 0
        # the first layer is fed exact values, so the additive law is exact there
        assert rows[1]["mse_active"] == pytest.approx(rows[1]["predicted_mse_active"], rel=1e-4, abs=1e-9)
        assert rows[1]["mse_inactive"] == pytest.approx(rows[1]["predicted_mse_inactive"], rel=1e-4, abs=1e-9)
        assert all(row["mse_dedicated"] == 0 for row in rows)
    assert r.summary["design_capacity"] == 992


def test_stacked_uand_fails_naively_and_holds_with_correction():
    r = scenarios.run("u-and-depth", k=150, d=3000, p=0.06, active=2, layers=3, samples=600)
    one, *later = r.rows[1:]
    # layer 1 reads exact inputs in both stacks: the single-layer law
    for name in ("naive", "corrected"):
        assert one[f"mse_{name}"] == pytest.approx(one["predicted_mse"], rel=0.15)
        assert one[f"interference_mean_{name}"] == pytest.approx(one["predicted_interference_mean"], rel=0.15)
    for row in later:
        assert row["mse_corrected"] == pytest.approx(row["predicted_mse"], rel=0.3)
        assert row["interference_mean_naive"] > 3 * row["predicted_interference_mean"]  # positive overlap drifts
        assert row["mse_naive"] > 10 * row["mse_corrected"]
        assert row["mse_dedicated"] == 0
    assert r.summary["first_failing_layer_naive"] == 2 and r.summary["first_failing_layer_corrected"] is None
