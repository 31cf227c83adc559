"""Every built-in scenario at its defaults (seed 0), as ``superposim run NAME`` runs it: the
defaults pass their own checks, every number is finite, every figure draws, result.json reads
back as what was written, and the copy the docs site shows (docs/runs/NAME) is what it gives.
A scenario whose record says cost="minutes" is a slow test."""

import json
import math
from pathlib import Path

import pytest

import scenarios
from scenarios.engine.catalog import BUILTIN, catalog_entry
from scenarios.engine.result import Result

DOCS_RUNS = Path(__file__).resolve().parent.parent / "docs" / "runs"


def _cases():
    for name in BUILTIN:
        slow = catalog_entry(name)["cost"] == "minutes"
        yield pytest.param(name, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("name", list(_cases()))
def test_every_scenario_runs_at_its_defaults(name, tmp_path):
    result = scenarios.run(name)
    assert result.rows and result.nonfinite == {}, f"{name}: {result.nonfinite}"
    if result.columns is not None:
        assert set().union(*result.rows) <= set(result.columns), f"{name}: a row key outside its columns"
    written = result.save(tmp_path / name)
    drawn = sorted(p.name for p in written if p.suffix == ".png")
    assert drawn and set(drawn) <= {f"{k}.png" for k in scenarios.load(name).figures}
    back = Result.load(tmp_path / name / "result.json")
    assert back.to_dict() == json.loads((tmp_path / name / "result.json").read_text()) == result.to_dict()
    # the docs site shows this run: its stored copy must be what the code gives today
    stored = json.loads((DOCS_RUNS / name / "result.json").read_text())
    fresh = result.to_dict()
    assert stored["params"] == fresh["params"], f"{name}: docs/runs holds other parameters; run `make docs-runs`"
    assert _close(stored["rows"], fresh["rows"]) and _close(stored["summary"], fresh["summary"]), \
        f"{name}: docs/runs/{name} no longer matches the code; run `make docs-runs`"


def _close(a, b) -> bool:
    """Equal structure, numbers equal to float rounding (another machine's BLAS may round differently)."""
    if isinstance(a, dict) and isinstance(b, dict):  # a time taken (*_seconds) is no result
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a if not k.endswith("_seconds"))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        numbers = isinstance(a, int | float) and isinstance(b, int | float)
        return numbers and math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9)
    return a == b
