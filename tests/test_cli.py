"""The superposim command and the Python entry: contracts, determinism and bad input."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import scenarios
from scenarios.cli import main
from scenarios.engine.result import jsonable

SMALL = {"m": "40", "n": "16", "layers": "2", "width": "20", "samples": "500", "active": "2"}


def _sets(params):
    return [a for k, v in params.items() for a in ("--set", f"{k}={v}")]


def test_list_names_every_scenario(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("circuit", "sparsity", "booleanish", "compounding-noise", "cost-ledger"):
        assert any(line.startswith(name + " ") for line in out.splitlines())


def test_run_writes_result_json_equal_to_the_python_result(tmp_path, capsys):
    assert main(["run", "circuit", "--out", str(tmp_path), "--quiet", "--seed", "3", *_sets(SMALL)]) == 0
    saved = json.loads((tmp_path / "result.json").read_text())
    assert set(saved) == {"scenario", "params", "seed", "version", "rows", "summary"}
    assert saved["params"]["m"] == 40 and saved["params"]["cleanup"] == "threshold"
    assert (tmp_path / "wrong_features.png").stat().st_size > 1000
    result = scenarios.run("circuit", seed=3, **SMALL)
    assert result.to_dict() == saved
    assert "wrong_features_superposed" in capsys.readouterr().out


def test_same_seed_same_rows_other_seed_other_rows():
    a = scenarios.run("circuit", seed=1, **SMALL).rows
    b = scenarios.run("circuit", seed=1, **SMALL).rows
    c = scenarios.run("circuit", seed=2, **SMALL).rows
    assert a == b and a != c


def test_python_values_and_lists():
    r = scenarios.run("circuit", m=40, n=16, layers=1, width=10, samples=200, gates=["and", "not"])
    assert r.params["gates"] == ("and", "not")
    with pytest.raises(scenarios.UsageError, match="gates"):
        scenarios.run("circuit", gates="and,xor")


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "nope"], ["unknown scenario", "circuit"]),
        (["run", "circuit", "--set", "bogus=1"], ["unknown parameter", "embedding"]),
        (["run", "circuit", "--set", "n=abc"], ["n:", "int"]),
        (["run", "circuit", "--set", "n=0"], ["n:", ">= 1"]),
        (["run", "circuit", "--set", "active=500"], ["active", "m=200"]),
        (["run", "circuit", "--set", "embedding=identity"], ["identity", "n >= 200"]),
        (["run", "circuit", "--set", "embedding=fancy"], ["embedding", "random"]),
        (["run", "circuit", "--set", "fan_in=9", "--set", "width=5"], ["fan_in", "width=5"]),
        (["run", "circuit", "--set", "n"], ["KEY=VALUE"]),
        (["run", "circuit", "--device", "tpu"], ["device"]),
        (["run", "missing/script.py"], ["does not exist"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words, capsys):
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("superposim: error:")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_the_console_command_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "scenarios.cli", "run", "circuit", "--set", "layers=-1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["superposim: error: layers: must be >= 1, got -1"]


def test_a_user_script_runs_like_a_builtin(tmp_path):
    script = tmp_path / "mine.py"
    script.write_text(
        "from scenarios import Outcome, Param, Scenario\n"
        "def body(p, ctx):\n"
        "    return Outcome([{'x': p['k'] * 2, 'seed': ctx.seed}], {'done': True})\n"
        "scenario = Scenario(name='mine', description='doubles k', params={'k': Param(3, 'a number')}, body=body)\n"
    )
    assert main(["run", str(script), "--set", "k=5", "--seed", "7", "--out", str(tmp_path / "o")]) == 0
    saved = json.loads((tmp_path / "o" / "result.json").read_text())
    assert saved["rows"] == [{"x": 10, "seed": 7}] and saved["scenario"] == "mine"
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert main(["run", str(empty)]) == 2


def test_nan_is_never_written():
    with pytest.raises(ValueError, match="not a number"):
        jsonable({"rows": [{"mse": math.nan}]})


def test_saving_leaves_no_temporary_file_and_usual_permissions(tmp_path):
    import os

    r = scenarios.run("circuit", seed=0, **SMALL)
    r.save(tmp_path)
    names = sorted(p.name for p in Path(tmp_path).iterdir())
    assert names == [".superposim-run.json", "experiment.toml", "result.json", "wrong_features.png"]
    listed = json.loads((tmp_path / ".superposim-run.json").read_text())["files"]
    assert listed == ["result.json", "experiment.toml", "wrong_features.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o666 & ~umask
