"""Experiment files: a run or a sweep from TOML, flags over the file, and every run's resolved
experiment.toml repeating it exactly."""

import json
import tomllib
from pathlib import Path

import pytest

from scenarios.cli import main
from scenarios.engine.experiment import experiment_text
from scenarios.engine.sweeps import SweepResult

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"m": 40, "n": 24, "layers": 2, "width": 16, "samples": 300}


def _file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _params(extra: str = "") -> str:
    return "[params]\n" + "".join(f"{k} = {v}\n" for k, v in SMALL.items()) + extra


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_run_from_a_file_is_the_run_from_flags_and_its_experiment_repeats_it(tmp_path):
    config = _file(tmp_path / "exp.toml", 'scenario = "circuit"\nseed = 3\n' + _params('gates = ["and", "not"]\n'))
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    flags = [f"--set={k}={v}" for k, v in SMALL.items()] + ["--set", "gates=and,not", "--seed", "3"]
    assert main(["run", "circuit", *flags, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert main(["run", "--config", str(tmp_path / "a" / "experiment.toml"), "--out", str(tmp_path / "c"),
                 "--quiet"]) == 0
    a, b, c = ((tmp_path / d / "result.json").read_bytes() for d in "abc")
    assert a == b == c
    resolved = tomllib.loads((tmp_path / "a" / "experiment.toml").read_text())
    assert resolved["scenario"] == "circuit" and resolved["seed"] == 3
    assert resolved["params"] == json.loads(a)["params"]  # every parameter, resolved


def test_flags_override_the_file(tmp_path):
    config = _file(tmp_path / "exp.toml", 'scenario = "circuit"\nseed = 3\n' + _params())
    assert main(["run", "--config", str(config), "--set", "m=50", "--seed", "4", "--out", str(tmp_path / "a"),
                 "--quiet"]) == 0
    body = json.loads((tmp_path / "a" / "result.json").read_text())
    assert body["params"]["m"] == 50 and body["params"]["n"] == 24 and body["seed"] == 4


def test_a_scripts_experiment_names_the_script(tmp_path):
    script = ROOT / "examples" / "my_relay.py"
    assert main(["run", str(script), "--set", "m=64", "--set", "samples=200", "--out", str(tmp_path / "a"),
                 "--quiet"]) == 0
    resolved = tomllib.loads((tmp_path / "a" / "experiment.toml").read_text())
    assert resolved["scenario"] == str(script)
    assert main(["run", "--config", str(tmp_path / "a" / "experiment.toml"), "--out", str(tmp_path / "b"),
                 "--quiet"]) == 0
    assert (tmp_path / "a" / "result.json").read_bytes() == (tmp_path / "b" / "result.json").read_bytes()


@pytest.mark.parametrize("text, said", [
    ('scenario = "circuit"\nsede = 3\n', "unknown key 'sede'"),
    ('scenario = "circuit"\nseed = "x"\n', "seed: expected an integer"),
    ('scenario = "circuit"\n[params]\nmm = 3\n', "[params]: unknown parameter 'mm'"),
    ('scenario = "circuit"\n[params]\nm = 0\n', "[params]: m: must be >= 1"),
    ('scenario = "circuit"\n[params]\nm = 3\n[params.x]\ny = 1\n', "params.x: expected a value"),
    ('scenario = "circuit\n', "is not readable TOML"),
    ('[params]\nm = 3\n', "give --config FILE"),
])
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(tmp_path, capsys, text, said):
    config = _file(tmp_path / "bad.toml", text)
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    line = _one_error(capsys)
    assert said in line and (str(config) in line or "give --config" in said)
    assert not (tmp_path / "out").exists()


def test_a_sweep_from_a_file_is_the_sweep_from_flags(tmp_path, capsys):
    fixed = {"m": 40, "n": 24, "layers": 1, "width": 10, "samples": 100}
    body = "".join(f"{k} = {v}\n" for k, v in fixed.items())
    config = _file(tmp_path / "sw.toml", f'scenario = "circuit"\nseeds = "0-1"\nstore = "{tmp_path / "a.sqlite"}"\n'
                                         f"jobs = 1\n[params]\n{body}[grid]\nactive = [1, 2]\n")
    assert main(["sweep", "--config", str(config), "--quiet"]) == 0
    flags = [f"--set={k}={v}" for k, v in fixed.items()]
    assert main(["sweep", "circuit", *flags, "--grid", "active=1,2", "--seeds", "0-1", "--jobs", "1",
                 "--store", str(tmp_path / "b.sqlite"), "--quiet"]) == 0
    rows = [SweepResult(tmp_path / f"{s}.sqlite").to_pandas().drop(columns=["seconds"], errors="ignore")
            for s in "ab"]
    assert rows[0].sort_values(list(rows[0].columns)).reset_index(drop=True).equals(
        rows[1].sort_values(list(rows[1].columns)).reset_index(drop=True))
    bad = _file(tmp_path / "bad.toml", f'scenario = "circuit"\nstore = "{tmp_path / "c.sqlite"}"\n[grid]\nactive = 2\n')
    capsys.readouterr()
    assert main(["sweep", "--config", str(bad)]) == 2
    assert "grid.active: expected a non-empty list" in _one_error(capsys)


def test_every_kind_of_value_writes_as_toml_that_reads_back():
    params = {"i": 3, "f": 1e-09, "g": 0.05, "big": 1e20, "b": True, "s": 'a "quoted" \\ é', "l": (1, 2),
              "ls": ("and", "or"), "lf": (0.1, 2.0)}
    back = tomllib.loads(experiment_text("x", 0, params))
    assert back["params"] == {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
