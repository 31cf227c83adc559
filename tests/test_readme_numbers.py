"""The numbers the README and the docs pages quote, recomputed: from the code where that is
cheap, from the stored sweep or the stored default runs (docs/runs, which test_defaults compares
with fresh runs) where it is not. A number that drifts from what they give fails here."""

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
    import json

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


def test_the_break_even_table_is_the_stored_default_run():
    rows = _stored("break-even")["rows"]
    text = (ROOT / "docs" / "scenarios" / "break-even.md").read_text()
    cells = {int(m.group(1)): (m.group(2), m.group(3))
             for m in re.finditer(r"^\| (\d) \| ([^|]+) \| ([^|]+) \|$", text, re.M)}
    assert sorted(cells) == [1, 2, 3, 4]

    def quoted(form: str, l: int) -> str:
        ratios = [next(r["ratio"] for r in rows if (r["form"], r["active"], r["layers"]) == (form, l, L))
                  for L in (2, 4, 8)]
        return " / ".join("none up to 1.5" if v is None else f"{v:.2f}" for v in ratios)

    for l, (step, linear) in cells.items():
        assert step.strip().replace("step, ", "") == quoted("step", l), l
        assert linear.strip() == quoted("linear", l), l
    summary = _stored("break-even")["summary"]["break_even_active"]
    assert f"is {', '.join(map(str, summary['step']))} for the step form" in " ".join(text.split())
    assert f"and {', '.join(map(str, summary['linear']))}\nfor the linear one" in text or \
        f"and {', '.join(map(str, summary['linear']))} for the linear one" in " ".join(text.split())


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

    assert all(c["status"] == "done" for c in cells) and sorted({c["params"]["L"] for c in cells}) == [5, 10, 20, 32]
    for L in (5, 10, 20, 32):
        small, large, old = col(L, "2025", 0), col(L, "2025", 1), col(L, "2024", 1)
        slope = math.log2(statistics.mean(large) / statistics.mean(small))
        row = f"| {L} | {quoted(small)} | {quoted(large)} | {slope:.2f} | {quoted(old)} |"
        assert row in text, row
