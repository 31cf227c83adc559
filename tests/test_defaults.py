"""Every built-in scenario at its defaults (seed 0), as ``superposim run NAME`` runs it: the
defaults pass their own checks, every number is finite, every figure draws and result.json reads
back as what was written. A scenario whose record says cost="minutes" is a slow test."""

import json

import pytest

import scenarios
from scenarios.engine.catalog import BUILTIN, catalog_entry
from scenarios.engine.result import Result


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
