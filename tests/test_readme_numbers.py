"""The numbers the README and the docs pages quote, recomputed: from the code where that is
cheap, from the stored sweep or the stored default runs (docs/runs, which test_defaults compares
with fresh runs) where it is not. A number that drifts from what they give fails here."""

import json
import math
import re
import statistics
from pathlib import Path

import pytest

import scenarios
from circuits.designs import make_design, placement_loads
from circuits.graph import FeatureGraph
from scenarios.engine.fits import t95
from scenarios.engine.store import Store

ROOT = Path(__file__).resolve().parent.parent
# the README and every page of the docs site, as one text
README = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))])


def _placement_rows() -> dict[tuple[int, int, int], list[str]]:
    rows = {}
    for line in README.splitlines():
        match = re.match(r"\| (\d+), (\d+), (\d+)( \(published\))? \|(.*)", line)
        if match:
            rows[tuple(int(g) for g in match.groups()[:3])] = [c.strip() for c in match.group(5).split("|")]
    return rows


@pytest.mark.parametrize("T,D,S", [(557, 1000, 6), (400, 800, 4), (900, 2000, 5)])
def test_placement_loads_are_the_designs_own(T, D, S):
    row = _placement_rows()[(T, D, S)]
    n = D // 4
    published = placement_loads(make_design(n, S, T, "progression"), n)
    transversal = placement_loads(make_design(n, S, T, "transversal"), n)
    used = transversal[transversal > 0]
    idle = int((transversal == 0).sum())
    assert row[0] == f"{int(published.min())} to {int(published.max())}"
    assert row[1] == f"{int(used.min())} to {int(used.max())} ({idle} of {n})"
    above = published > used.max()
    if above.any():
        share = float(above[make_design(n, S, T, "progression")].any(dim=1).float().mean())
        assert row[2] == f"{int(above.sum())} of {n} ({share:.0%})"
    else:
        assert row[2] == "none"


def test_the_graphs_intended_share_is_what_the_graph_gives():
    nets = scenarios.networks("circuit", seed=0, m=8, width=6, n=6)
    shares = [s for s in FeatureGraph.build(nets["superposed"]).intended_share_by_layer() if s is not None]
    assert " / ".join(f"{s:.3f}" for s in shares) + " by layer for" in README.replace("\n", " ")


def test_capacities_are_the_stored_sweeps():
    store = Store(ROOT / "docs" / "results" / "cis-capacity.sqlite")
    cells = store.cells()
    store.close()
    assert len(cells) == 8 and all(c["status"] == "done" for c in cells)
    for construction, column in (("2025", 2), ("2024", 3)):
        values = [c["summary"][f"capacity_T_measured_{construction}"] for c in cells]
        for i, D in enumerate((1000, 2000)):
            v = [x[i] for x in values]
            half = t95(len(v)) * statistics.stdev(v) / math.sqrt(len(v))
            quoted = f"{statistics.mean(v):.1f} ± {half:.1f} ({min(v)} to {max(v)})"
            row = next(line for line in README.splitlines() if line.startswith(f"| {D} | **"))
            assert quoted in row.split("|")[column].replace("**", ""), (D, construction, quoted)


def _sig(value: float) -> str:
    return f"{value:#.3g}".rstrip(".")


def _page(name: str) -> str:
    return " ".join((ROOT / "docs" / "scenarios" / f"{name}.md").read_text().split())


def _stored(name: str) -> dict:
    return json.loads((ROOT / "docs" / "runs" / name / "result.json").read_text())


def test_what_the_defaults_measure_is_what_they_measure():
    """The discussion on the sparsity and compounding-noise pages against their default runs (seed 0)."""
    rows = {r["active"]: r for r in _stored("sparsity")["rows"]}
    text = _page("sparsity")
    stds = " / ".join(_sig(rows[l]["interference_std"]) for l in (1, 4, 16, 64))
    assert f"inactive feature is {stds} for l = 1 / 4 / 16 / 64" in text
    fps = " / ".join(_sig(rows[l]["false_positives_per_sample"]) for l in (8, 16, 32, 64))
    assert f"false positives per sample {fps} for l = 8 / 16 / 32 / 64" in text
    noise = _stored("compounding-noise")["rows"]
    cleaned = ", ".join(_sig(r["mse_superposed"]) for r in noise if r["cleanup"] == "threshold")
    assert f"With clean-up it is {cleaned};" in _page("compounding-noise")


def test_the_break_even_tables_are_the_stored_default_run_and_sweep():
    rows = _stored("break-even")["rows"]
    text = (ROOT / "docs" / "scenarios" / "break-even.md").read_text()
    flat = " ".join(text.split())
    cells = {int(m.group(1)): m.groups()[1:]
             for m in re.finditer(r"^\| (\d) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", text, re.M)}
    assert sorted(cells) == [1, 2, 3, 4]

    def row(form: str, l: int, L: int) -> dict:
        return next(r for r in rows if (r["form"], r["active"], r["layers"]) == (form, l, L))

    def quoted(form: str, l: int) -> str:
        ratios = [row(form, l, L)["ratio"] for L in (2, 4, 8)]
        return " / ".join("none up to 1.5" if v is None else f"{v:.2f}" for v in ratios)

    for l, quotes in cells.items():
        for form, quote in zip(("none", "step", "linear"), quotes):
            assert quote.strip() == quoted(form, l), (form, l)
    step = [r for r in rows if r["form"] == "step" and r["width"]]
    factor = max(max(r["wrong_per_sample"], r["predicted_wrong"]) / min(r["wrong_per_sample"], r["predicted_wrong"])
                 for r in step)
    assert f"within a factor of {math.ceil(factor)}," in flat
    runaway = row("step", 1, 8)
    assert (f"({runaway['wrong_failing']:.2f} wrong features measured against "
            f"{runaway['predicted_wrong_failing']:.3f} predicted at l = 1, L = 8, "
            f"{100 * (1 - runaway['width_failing'] / runaway['width']):.0f}% below") in flat
    corrected = [r["ratio_parameters"] for r in rows if r["ratio_parameters"] and r["form"] != "none"]
    assert f"{min(corrected):.0f} to {max(corrected):.0f} times" in flat

    from scenarios.engine.sweeps import SweepResult

    frame = SweepResult(ROOT / "docs" / "results" / "break-even.sqlite").to_pandas()
    default = frame[(frame["m"] == 2000) & (frame["seed"] == 0)]
    for r in rows:  # the sweep's default cell is the default run
        other = default[(default["form"] == r["form"]) & (default["active"] == r["active"])
                        & (default["layers"] == r["layers"])]["width"].iloc[0]
        assert (r["width"] is None and math.isnan(other)) or r["width"] == other

    def wins(form: str, L: int, m: int) -> int:
        best = 0
        for l in (1, 2, 3, 4):
            v = frame[(frame["form"] == form) & (frame["m"] == m) & (frame["layers"] == L)
                      & (frame["active"] == l)]["ratio"]
            if len(v) == 3 and v.notna().all() and (v < 1).all():
                best = l
        return best

    readme = " ".join((ROOT / "README.md").read_text().split())
    summary = _stored("break-even")["summary"]
    won = [v for form in ("step", "linear") for v in summary["break_even_active"][form]]
    assert f"wins for {min(won)} to {max(won)} features on" in readme
    assert f"break-even l at L = 8 is {', '.join(str(wins('step', 8, m)) for m in (1000, 2000, 4000))}." in readme
    assert f"l < m / (8 ln m) = {summary['post_break_even_active']:.0f}," in readme
    assert [wins("none", 4, m) for m in (1000, 2000, 4000)] == [0, 0, 1] and max(wins("none", 8, m) for m in
                                                                                  (1000, 2000, 4000)) == 0
    for form in ("none", "step", "linear"):
        line = f"| {form} | " + " | ".join(" / ".join(str(wins(form, L, m)) for m in (1000, 2000, 4000))
                                           for L in (2, 4, 8)) + " |"
        assert line in text, line


def test_the_rotation_capacity_at_the_published_error_is_the_stored_sweeps():
    from scenarios.engine.sweeps import SweepResult

    frame = SweepResult(ROOT / "docs" / "results" / "rotations-capacity.sqlite").to_pandas()
    layer5 = frame[frame["layer"] == 5].groupby(["z", "T"])["mse_active"].mean()
    text = (ROOT / "docs" / "scenarios" / "rotations-in-superposition.md").read_text()
    for z, published in ((1, 1.7), (2, 3.7), (3, 5.0)):
        by_T = layer5[z]
        within = [T for T in by_T.index if by_T[T] <= published]
        largest = max(within)
        following = min(T for T in by_T.index if T > largest)
        assert all(by_T[T] > published for T in by_T.index if T > largest)  # no T beyond it passes
        row = (f"| {z} | {published} | **{largest}** | {by_T[largest]:.2f} | {following} | "
               f"{by_T[following]:.2f} |")
        assert row in text, row


def test_the_capacity_against_depth_is_the_stored_sweeps():
    store = Store(ROOT / "docs" / "results" / "cis-depth.sqlite")
    cells = store.cells()
    store.close()
    text = (ROOT / "docs" / "scenarios" / "circuits-in-superposition.md").read_text()

    def col(L: int, construction: str, i: int) -> list[int]:
        return [c["summary"][f"capacity_T_measured_{construction}"][i] or 0 for c in cells if c["params"]["L"] == L]

    def quoted(v: list[int]) -> str:
        return f"{statistics.mean(v):.1f} ({min(v)} to {max(v)})"

    assert all(c["status"] == "done" for c in cells)
    assert sorted({c["params"]["L"] for c in cells}) == [5, 10, 20, 32, 50]
    for L in (5, 10, 20, 32, 50):
        small, large, old = col(L, "2025", 0), col(L, "2025", 1), col(L, "2024", 1)
        slope = math.log2(statistics.mean(large) / statistics.mean(small))
        row = f"| {L} | {quoted(small)} | {quoted(large)} | {slope:.2f} | {quoted(old)} |"
        assert row in text, row


def test_the_emulation_exponents_are_the_stored_sweep():
    from scenarios.engine.sweeps import SweepResult

    result = SweepResult(ROOT / "docs" / "results" / "emulation-capacity.sqlite")
    frame, summaries = result.to_pandas(), result.summaries()
    text = (ROOT / "docs" / "scenarios" / "emulation-capacity.md").read_text()
    flat = " ".join(text.split())

    def quoted(form: str, D: int) -> str:
        v = frame[(frame["form"] == form) & (frame["width"] == D)]["features"]
        return f"{v.mean():.0f} ({v.min()} to {v.max()})"

    law = frame[(frame["form"] == "step") & (frame["seed"] == 0)].set_index("width")["predicted_features"]
    for D in (500, 1000, 2000, 4000, 8000):
        row = f"| {D} | {quoted('linear', D)} | {quoted('step', D)} | {law[D]:.0f} | {D} |"
        assert row in text, row
    for form, name in (("linear", "linear read-out"), ("step", "step")):
        k = list(summaries[f"exponent_{form}"])
        half = t95(len(k)) * statistics.stdev(k) / math.sqrt(len(k))
        assert f"{statistics.mean(k):.2f} ± {half:.2f} for the {name}" in flat, form
        assert f"{statistics.mean(k):.2f} ± {half:.2f} for the {name}" in " ".join(
            (ROOT / "README.md").read_text().split()), form
    assert f"below the {summaries['ceiling_exponent'].iloc[0]:.2f} that D^2 / ln D has" in flat
    assert f"1.{round(100 * (summaries['predicted_exponent_step'].iloc[0] - 1))}, steeper" in flat
    default = _stored("emulation-capacity")["summary"]
    for form in ("step", "linear"):
        quoted = (f"{default[f'exponent_{form}']:.2f} [{default[f'exponent_low_{form}']:.2f}, "
                  f"{default[f'exponent_high_{form}']:.2f}] for the")
        assert quoted in flat, quoted
    means = frame[frame["form"] == "linear"].groupby("width")["features"].mean()
    local = [math.log2(means[2 * D] / means[D]) for D in (500, 1000, 2000, 4000)]
    assert f"({', '.join(f'{v:.2f}' for v in local[:3])} and {local[3]:.2f} between" in flat
    step = frame[frame["form"] == "step"].groupby("width")["features"].mean()
    assert (f"capacity grows as D^{math.log2(step[8000] / step[4000]):.2f} and the linear read-out's as "
            f"D^{local[3]:.2f}") in flat


def test_the_capacity_against_width_is_the_stored_sweep():
    from scenarios.engine.fits import fit_power_law

    store = Store(ROOT / "docs" / "results" / "cis-width.sqlite")
    cells = sorted(store.cells(), key=lambda c: c["seed"])
    store.close()
    flat = " ".join((ROOT / "docs" / "scenarios" / "circuits-in-superposition.md").read_text().split())
    widths = [500, 1000, 2000, 4000, 8000]

    def col(construction: str, D: int) -> list:
        return [c["summary"][f"capacity_T_measured_{construction}"][0] for c in cells
                if c["params"]["capacity_D"] == [D]]

    def quoted(v: list) -> str:
        return "none" if not any(v) else f"{statistics.mean(v):.1f} ({min(v)} to {max(v)})"

    assert all(c["status"] == "done" for c in cells) and len(cells) == 15
    for D in widths:
        assert f"| {D} | {quoted(col('2025', D))} | {quoted(col('2024', D))} |" in flat, D
    for construction in ("2025", "2024"):
        k = [fit_power_law(widths, [col(construction, D)[s] for D in widths]).exponent for s in range(3)]
        half = t95(3) * statistics.stdev(k) / math.sqrt(3)
        assert f"{statistics.mean(k):.2f} ± {half:.2f} for the {construction}" in flat, construction
    means = [statistics.mean(col("2025", D)) for D in widths]
    both = fit_power_law(widths, [t * math.log(t) for t in means])
    assert f"T ln T grows as D^{both.exponent:.2f} [{both.low:.2f}, {both.high:.2f}]" in flat
    local = [math.log2(b / a) for a, b in zip(means, means[1:])]
    assert f"({', '.join(f'{v:.2f}' for v in local)})" in flat
    theory_k = [2 / (1 + 1 / math.log(t)) for t in means]
    assert f"{theory_k[0]:.2f} to {theory_k[-1]:.2f} over these widths" in flat


def test_the_indicator_bands_are_the_stored_sweep():
    from scenarios.engine.sweeps import SweepResult

    frame = SweepResult(ROOT / "docs" / "results" / "rotations-band.sqlite").to_pandas()
    mean = frame.groupby(["band", "layer"])[["switched_on", "mse_active", "mse_on_active",
                                             "predicted_mse_active"]].mean()
    text = (ROOT / "docs" / "scenarios" / "rotations-in-superposition.md").read_text()
    assert frame["seed"].nunique() == 4
    for band in ("0.25,0.75", "0.3,0.8", "0.4,0.8", "0.35,0.85", "0.3,0.9", "0.5,0.9"):
        x = mean.loc[band]
        row = (f"| {band.replace(',', ' to ')} | " + " / ".join(f"{x.loc[L].switched_on:.1f}" for L in (2, 3, 5, 10))
               + " | " + " / ".join(f"{x.loc[L].mse_active:.2f}" for L in (3, 5, 10)) + " | "
               + " / ".join(f"{x.loc[L].mse_on_active:.2f}" for L in (3, 5, 10)) + " |")
        assert row in text, row
    predicted = mean.loc["0.25,0.75"]["predicted_mse_active"]
    assert f"Eq. 6.55 gives {predicted[3]:.2f} / {predicted[5]:.2f} / {predicted[10]:.2f}" in text
    assert predicted[9] < 1 < predicted[10]  # "past about nine layers"
    assert mean.loc["0.5,0.9"]["mse_on_active"][8] > 0.98


def test_the_theory_quotes_the_linear_forms_second_order_errors_from_the_default_run():
    row = next(r for r in _stored("break-even")["rows"] if (r["form"], r["active"], r["layers"]) == ("linear", 1, 2))
    theory = " ".join((ROOT / "docs" / "theory.md").read_text().split())
    quoted = (f"yet {row['wrong_per_sample']:.2f} wrong features per sample are measured there "
              f"(m = 2000, D = {row['width']})")
    assert quoted in theory
    S, L = _stored("break-even")["params"]["S"], 2
    assert L * 1 <= S // 2  # two direct shares of six copies cannot pass 1/2


def test_the_ground_truth_baselines_quoted_are_the_default_run():
    rows = _stored("ground-truth-baselines")["rows"]

    def row(n: int, target: str, method: str) -> dict:
        return next(r for r in rows if (r["n"], r["target"], r["method"]) == (n, target, method))

    for n, target in ((128, "features"), (32, "features"), (128, "components"), (32, "components")):
        r = row(n, target, "random")
        assert f"{r['mean_best_true']:.3g}" in README and f"{r['predicted_chance']:.3g}" in README
        assert abs(r["mean_best_true"] / r["predicted_chance"] - 1) < 0.01  # "within 1%"
        assert row(n, target, "true")["mean_best_true"] > 1 - 1e-5
    for n in (128, 32):
        assert row(n, "components", "svd")["recovered"] == 0  # "recovers none"
    assert row(128, "features", "sae")["recovered"] == 1
    assert f"{100 * row(32, 'features', 'sae')['recovered']:.1f}%" in README
    sharing = [r for r in rows if r["target"] == "circuit components"]
    assert [r["mean_best_true"] for r in sharing] == sorted((r["mean_best_true"] for r in sharing), reverse=True)
    for r in (sharing[0], sharing[-1]):
        assert f"{r['mean_best_true']:.3g} at {r['circuits_per_neuron']:.3g} circuits per neuron" in README


def test_the_scaling_exponents_quoted_are_the_default_run():
    fits = _stored("superposition-scaling")["summary"]["fits"]
    text = (ROOT / "docs" / "scenarios" / "superposition-scaling.md").read_text()
    quoted = {(float(m.group(1)), float(m.group(2))): m.groups()[2:]
              for m in re.finditer(r"^\| ([\d.]+) \| (-?[\d.]+) \| (\w+) \| (-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\] \|",
                                   text, re.M)}
    assert len(quoted) == len(fits) == 6
    for fit in fits:
        regime, exponent, low, high = quoted[(fit["alpha"], fit["weight_decay"])]
        assert (regime, exponent, low, high) == (fit["regime"], *(f"{fit[k]:.2f}" for k in ("exponent", "low", "high")))
    rows = _stored("superposition-scaling")["rows"]
    flat = " ".join(text.split())
    at = {(r["alpha"], r["weight_decay"], r["width"]): r for r in rows}
    strong = at[(1.0, -1.0, 20)]
    assert f"m = 20: {strong['loss']:.2e} against {strong['predicted_weak_loss']:.2e}".replace("e-04", "e-4") in flat
    for fit in fits:
        sel = [r["represented"] for r in rows if (r["alpha"], r["weight_decay"]) == (fit["alpha"], fit["weight_decay"])]
        shown = "100% at every m" if min(sel) == 1 else f"{100 * min(sel):g}% to {100 * max(sel):g}%"
        assert f"| {fit['alpha']:g} | {fit['weight_decay']:g} | {fit['regime']} |" in text
        assert any(line.startswith(f"| {fit['alpha']:g} | {fit['weight_decay']:g} |") and line.endswith(f"| {shown} |")
                   for line in text.splitlines())
    weak = [r["loss"] / r["predicted_weak_loss"] for r in rows if r["weight_decay"] == 1.0]
    assert f"pays {min(weak):.1f} to {max(weak):.1f} times the dedicated law" in flat
    overlap = [r["mean_sq_overlap"] * r["width"] for r in rows if r["weight_decay"] == -1.0]
    assert f"is {min(overlap):.2f} to {max(overlap):.2f} (1 for random directions)" in flat


def test_the_mixing_strength_table_is_the_default_run():
    rows = _stored("compressed-computation")["rows"]
    p_default = _stored("compressed-computation")["params"]["p_default"]
    curve = sorted((r for r in rows if r["p"] == p_default and r["variant"] in ("with_mixing", "without_mixing",
                                                                                 "scaled_mixing")),
                   key=lambda r: r["mixing_scale"])
    flat = _page("compressed-computation")
    assert "| std of M's entries | " + " | ".join(_sig(r["mixing_std"]) if r["mixing_std"] else "0"
                                                  for r in curve) + " |" in flat
    assert "| trained loss / p | " + " | ".join(_sig(r["loss_per_feature"]) for r in curve) + " |" in flat
    naive = sorted((r for r in rows if r["variant"] == "naive_scaled"), key=lambda r: r["mixing_scale"])
    assert "(measured " + ", ".join(f"{r['loss_per_feature']:.4f}" for r in naive) + " against " + \
        ", ".join(f"{r['predicted_naive_mixed']:.4f}" for r in naive) in flat


def test_the_two_in_one_phase_figures_quoted_are_the_default_run():
    cells = [r for r in _stored("toy-models")["rows"] if "phase" in r]
    agree = sum(r["phase"] == r["predicted_phase"] for r in cells)
    flat = _page("toy-models")
    assert f"in {agree} of {len(cells)} cells ({100 * agree / len(cells):.0f}%)" in flat
    wrong = sorted(r["loss"] / r["predicted_antipodal_loss"] for r in cells if r["phase"] != r["predicted_phase"])
    assert f"{wrong[1]:.1f} to {wrong[-1]:.1f} times the antipodal pair's" in flat


def test_the_readme_quotes_the_trained_toys_default_runs():
    flat = " ".join(README.split())
    fit = {(f["alpha"], f["weight_decay"]): f for f in _stored("superposition-scaling")["summary"]["fits"]}
    assert f"falls as m^{fit[(0.5, -1.0)]['exponent']:.2f} and m^{fit[(1.0, -1.0)]['exponent']:.2f}" in flat
    assert f"({fit[(0.5, 1.0)]['exponent']:.2f} against -0.5 at alpha = 0.5)" in flat
    rows = _stored("superposition-scaling")["rows"]
    wins = []
    for alpha in (0.5, 1.0):
        strong = [r for r in rows if (r["alpha"], r["weight_decay"]) == (alpha, -1.0)]
        wins.append(min(r["width"] for r in strong
                        if all(s["loss"] < s["predicted_weak_loss"] for s in strong if s["width"] >= r["width"])))
    assert f"beating the dedicated model of the same width from m = {min(wins)} to {max(wins)} on" in flat
    paper = json.loads((ROOT / "docs" / "results" / "superposition-scaling-1000" / "result.json").read_text())
    strong = next(f for f in paper["summary"]["fits"] if f["weight_decay"] == -1.0)
    assert paper["params"]["features"] == 1000 and paper["params"]["widths"] == [10, 16, 25, 40, 63, 100]
    assert f"widths 10 to 100 it is {strong['exponent']:.2f} [{strong['low']:.2f}, {strong['high']:.2f}]" in flat
    cells = [r for r in _stored("toy-models")["rows"] if "phase" in r]
    agree = sum(r["phase"] == r["predicted_phase"] for r in cells) / len(cells)
    assert f"is the closed form's in {100 * agree:.0f}% of the cells" in flat
    gain = _stored("compressed-computation")["summary"]["gain_at_best_mixing"]
    assert f"({100 * gain:.0f}% below naive)" in flat
    d0 = json.loads((ROOT / "docs" / "results" / "trained-u-and-d0-10" / "result.json").read_text())["rows"]
    first = min(r["d"] for r in d0 if r["wrong_features_trained"] < r["wrong_features_no_hidden"])
    assert f"the trained layer beats it from {first} neurons on" in flat


def test_the_longer_training_quoted_is_the_stored_run():
    long = json.loads((ROOT / "docs" / "results" / "superposition-scaling-12000-steps" / "result.json").read_text())
    assert long["params"]["steps"] == 12000 and long["params"]["features"] == 200
    fit = next(f for f in long["summary"]["fits"] if f["weight_decay"] == -1.0)
    flat = " ".join(_page("superposition-scaling").split())
    assert f"to {fit['exponent']:.2f} [{fit['low']:.2f}, {fit['high']:.2f}]" in flat
    widest = {r["width"]: r for r in _stored("superposition-scaling")["rows"]
              if (r["alpha"], r["weight_decay"]) == (1.0, -1.0)}[32]
    widest_long = next(r for r in long["rows"] if r["width"] == 32)
    assert f"({widest['loss']:.1e} to {widest_long['loss']:.1e} at m = 32)".replace("e-05", "e-5").replace(
        "e-06", "e-6") in flat
    overlap = [r["mean_sq_overlap"] * r["width"] for r in long["rows"]]
    assert f"stays near 1 ({min(overlap):.2f} to {max(overlap):.1f})" in flat
    more = json.loads((ROOT / "docs" / "results" / "superposition-scaling-1000-features" / "result.json").read_text())
    assert more["params"]["features"] == 1000 and more["params"]["widths"] == [5, 8, 12, 20, 32]
    fit = next(f for f in more["summary"]["fits"] if f["weight_decay"] == -1.0)
    assert f"the strong exponent is {fit['exponent']:.2f} [{fit['low']:.2f}, {fit['high']:.2f}] (stored in" in flat
    paper = json.loads((ROOT / "docs" / "results" / "superposition-scaling-1000" / "result.json").read_text())
    strong = {r["width"]: r for r in paper["rows"] if r["weight_decay"] == -1.0}
    for m in (10, 100):
        quote = f"{strong[m]['loss']:.2e} against {strong[m]['predicted_weak_loss']:.2e} at m = {m}"
        assert re.sub(r"e-0(\d)", r"e-\1", quote) in flat
    assert all(r["loss"] > r["predicted_weak_loss"] for r in strong.values())
    fit = next(f for f in paper["summary"]["fits"] if f["weight_decay"] == -1.0)
    assert f"{fit['exponent']:.2f} [{fit['low']:.2f}, {fit['high']:.2f}], the paper's -1 within its interval" in flat
    assert fit["low"] <= -1 <= fit["high"]


def test_the_trained_u_and_baselines_quoted_are_the_stored_runs():
    flat = _page("trained-u-and")
    assert _stored("trained-u-and")["summary"]["wrong_features_no_hidden"] == 0.0
    assert "`wrong_features_no_hidden` is 0 in the default run" in flat
    assert all(r["wrong_features_trained"] >= r["wrong_features_no_hidden"] for r in _stored("trained-u-and")["rows"])
    runs = {name: json.loads((ROOT / "docs" / "results" / f"trained-u-and-{name}" / "result.json").read_text())
            for name in ("d0-10", "mse")}
    assert runs["d0-10"]["params"]["d0"] == 10 and runs["mse"]["params"]["loss"] == "mse"
    d0, mse = runs["d0-10"], runs["mse"]

    def g(v: float) -> str:
        return f"{v:.2g}"

    assert f"baseline reads {g(d0['summary']['wrong_features_no_hidden'])} ANDs wrong per input" in flat
    assert "the trained layer reads " + ", ".join(g(r["wrong_features_trained"]) for r in d0["rows"]) in flat
    beats = [r["d"] for r in d0["rows"] if r["wrong_features_trained"] < r["wrong_features_no_hidden"]]
    assert beats == [r["d"] for r in d0["rows"] if r["d"] >= 12] and "from 12 neurons on it beats" in flat
    hand = [r["wrong_features_handbuilt"] for r in d0["rows"]]
    assert f"reads {min(hand):.0f} to {max(hand):.0f} wrong" in flat
    dens, r2 = [r["density"] for r in d0["rows"]], [r["class_r2"] for r in d0["rows"]]
    assert f"({min(dens):.2f} to {max(dens):.2f} of the output weights" in flat
    assert f"explain {min(r2):.2f} to {max(r2):.2f} of its" in flat
    assert f"reads no AND right ({g(mse['summary']['wrong_features_no_hidden'])} wrong per input" in flat
    assert "but trained it reads " + ", ".join(g(r["wrong_features_trained"]) for r in mse["rows"]) in flat
    linear = (mse["summary"]["error_no_hidden"], mse["summary"]["predicted_error_no_hidden"])
    assert f"{linear[0]:.2g} per AND measured against {linear[1]:.2g} in closed form" in flat
    copying = [g(r["wrong_features_copying"]) for r in _stored("trained-u-and")["rows"]]
    assert f"it reads {', '.join(copying[:4])} wrong at d = 4, 6, 8, 12 and {copying[4]} from d = 20 = m" in flat
    default = {r["d"]: r for r in _stored("trained-u-and")["rows"]}
    first = min(d for d, r in default.items() if r["wrong_features_trained"] < r["wrong_features_copying"])
    assert first == 6 and f"beats it from 6 neurons on ({default[6]['wrong_features_trained']:.2f}" in flat
    assert f"against {default[6]['wrong_features_copying']:.2f}): it packs" in flat
    assert f"12 neurons at {default[12]['wrong_features_trained']:.3f} wrong" in flat
    assert f"is {g(d0['rows'][-1]['wrong_features_copying'])} at d = 20, and absent below" in flat
    assert all(r["wrong_features_copying"] is None for r in d0["rows"][:-1])


def test_the_squared_error_chase_quoted_is_the_stored_runs():
    """The squared-error layer against the dedicated solution's closed form, at every stored width
    below one neuron per AND; the commoner-AND run against the copy."""
    flat = _page("trained-u-and")
    runs = {name: json.loads((ROOT / "docs" / "results" / f"trained-u-and-{name}" / "result.json").read_text())
            for name in ("mse", "mse-wide", "mse-active-8")}
    assert runs["mse-wide"]["params"]["d"] == [4, 8, 20, 50, 100, 190, 400]
    assert runs["mse-active-8"]["params"]["active"] == 8
    rows = runs["mse"]["rows"] + [r for r in runs["mse-wide"]["rows"] if r["d"] > 20]
    below = [r for r in runs["mse"]["rows"] + runs["mse-wide"]["rows"] if r["d"] <= 100]
    worst = max(abs(r["error_trained"] / r["predicted_error_dedicated"] - 1) for r in below)
    assert worst < 0.02 and "within 2% of that solution's at every width from 4 to 100" in flat
    assert "within 2% from 4 to 100 neurons" in " ".join((ROOT / "README.md").read_text().split())
    by_d = {r["d"]: r for r in rows}
    for d in (4, 100):
        r = by_d[d]
        assert f"{r['error_trained']:.5f} against {r['predicted_error_dedicated']:.5f} at d = {d}" in flat
    assert by_d[190]["wrong_features_trained"] == 0 and by_d[190]["predicted_error_dedicated"] == 0
    dens = [r["density"] for r in runs["mse"]["rows"]]
    assert f"sparse ({100 * min(dens):.0f} to {100 * max(dens):.0f}% of its weights" in flat
    bce = [r["density"] for r in _stored("trained-u-and")["rows"]]
    assert f"against {100 * min(bce):.0f} to {100 * max(bce):.0f}% with" in flat
    a8 = {r["d"]: r for r in runs["mse-active-8"]["rows"]}
    dens = [r["density"] for r in a8.values()]
    assert f"dense ({min(dens):.2f} to {max(dens):.2f} of its output" in flat
    r = a8[12]
    assert f"({r['error_trained']:.3f} against {r['predicted_error_dedicated']:.3f} per AND at d = 12)" in flat
    copy, trained = r["wrong_features_copying"], r["wrong_features_trained"]
    assert f"({copy:.0f} ANDs wrong per input against the trained {trained:.1f} at d = 12" in flat
    assert runs["mse-active-8"]["summary"]["wrong_features_no_hidden"] == 0
    assert f"0 and {a8[20]['wrong_features_trained']:.0e} at d = 20" in flat and a8[20]["wrong_features_copying"] == 0
    s = runs["mse-active-8"]["summary"]
    assert f"{a8[20]['error_trained']:.4f} per AND against {s['predicted_error_no_hidden']:.4f} in closed form" in flat



@pytest.mark.slow
def test_the_counter_draws_quoted_are_six_default_runs_each_way():
    def last_layer(draws: str) -> tuple[float, float]:
        values = [scenarios.run("compounding-noise", seed=s, draws=draws).summary["mse_last_layer_none"]
                  for s in range(6)]
        return statistics.mean(values), statistics.stdev(values)

    (counter, counter_sd), (torch_draws, torch_sd) = last_layer("counter"), last_layer("torch")
    predicted = [r for r in _stored("compounding-noise")["rows"] if r["cleanup"] == "none"][-1]["predicted_mse"]
    speed = " ".join((ROOT / "docs" / "speed.md").read_text().split())
    assert (f"averages {counter:.1f} +- {counter_sd / math.sqrt(6):.1f} with counter draws and "
            f"{torch_draws:.1f} +- {torch_sd / math.sqrt(6):.1f} with torch draws, against the prediction "
            f"{predicted:.1f} (one seed's spread is {counter_sd:.1f} and {torch_sd:.1f})") in speed
