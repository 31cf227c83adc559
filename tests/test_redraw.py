"""Figures are functions of a result: a stored run redraws to the same PNGs without recomputing."""

import dataclasses
import importlib
import json

import pytest
from test_pins import SMALL

import scenarios
from scenarios.cli import main
from scenarios.engine.catalog import BUILTIN
from scenarios.engine.result import Result


def _pngs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize("name", list(BUILTIN))
def test_redraw_gives_the_runs_own_figures(name, tmp_path, monkeypatch):
    result = scenarios.run(name, seed=0, **SMALL[name])
    out = tmp_path / "run"
    result.save(out)
    drawn, stored = _pngs(out), (out / "result.json").read_bytes()
    assert drawn, f"{name} drew no figure"
    for png in out.glob("*.png"):
        png.unlink()
    # nothing is recomputed: a redraw that ran the scenario's body would fail here
    module = importlib.import_module(BUILTIN[name])
    monkeypatch.setattr(module, "scenario", dataclasses.replace(module.scenario, body=None))
    assert main(["redraw", str(out)]) == 0
    assert _pngs(out) == drawn
    assert (out / "result.json").read_bytes() == stored


def test_a_result_json_round_trips_with_its_nonfinite_values(tmp_path):
    result = Result("x", {"a": [1, 2]}, 0, "v", [{"m": float("nan"), "k": 1}], {"s": {"t": float("inf")}},
                    data={"curve": [[1, float("-inf")]]})
    (tmp_path / "result.json").write_text(json.dumps(result.to_dict()))
    back = Result.load(tmp_path / "result.json")
    assert back.to_dict() == result.to_dict()
    assert back.rows[0]["m"] != back.rows[0]["m"] and back.summary["s"]["t"] == float("inf")
    assert back.data["curve"][0][1] == float("-inf")


def test_redraw_refuses_what_it_cannot_redraw(tmp_path, capsys):
    assert main(["redraw", str(tmp_path)]) == 2
    assert "holds no result.json" in capsys.readouterr().err
    (tmp_path / "result.json").write_text("{not json")
    assert main(["redraw", str(tmp_path)]) == 2
    assert "not a readable result.json" in capsys.readouterr().err
    body = scenarios.run("circuit", **SMALL["circuit"]).to_dict()
    (tmp_path / "result.json").write_text(json.dumps(body | {"scenario": "my-script"}))
    assert main(["redraw", str(tmp_path)]) == 2
    assert "name the script" in capsys.readouterr().err
    (tmp_path / "result.json").write_text(json.dumps(body))
    assert main(["redraw", str(tmp_path), "--scenario", "examples/my_relay.py"]) == 2
    assert "is a run of 'circuit', not of 'my-relay'" in capsys.readouterr().err


def test_figures_handed_back_the_earlier_way_are_refused_in_one_line(tmp_path, capsys):
    script = tmp_path / "old.py"
    script.write_text(
        "from scenarios import Outcome, Param, Scenario\n"
        "def body(p, ctx):\n"
        "    return Outcome([{'x': 1}], {}, {'fig': lambda: None})\n"
        "scenario = Scenario(name='old', description='figures the earlier way', params={'k': Param(1, 'k')},\n"
        "                    body=body)\n")
    assert main(["run", str(script), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "figures are declared on the scenario" in err[0]
    assert not (tmp_path / "out").exists()
