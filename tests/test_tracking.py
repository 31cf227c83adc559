"""--log wandb: a run and a sweep reach Weights & Biases (offline mode) whole; without wandb,
one line naming the install command."""

import json
import sys

import pytest

from scenarios.cli.main import main


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def _record(logged, keys, wait: float = 60.0) -> bytes:
    """The run's record file, where wandb keeps config and summary. wandb's own service process
    writes it, and on a loaded machine it can still be flushing when finish() returns: wait for
    the keys (a bounded wait; what is then missing fails the test)."""
    import time

    deadline = time.monotonic() + wait
    while True:
        record = next(logged.glob("*.wandb")).read_bytes()
        if all(k.encode() in record for k in keys) or time.monotonic() > deadline:
            return record
        time.sleep(0.5)


def _one_run(folder):
    runs = sorted((folder / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    return runs[0]


def test_a_run_reaches_wandb_with_its_config_rows_summary_and_figures(offline, capsys):
    out = offline / "run"
    assert main(["run", "sparsity", "--set", "samples=2000", "--set", "m=128", "--out", str(out), "--quiet",
                 "--log", "wandb"]) == 0
    assert "logged to wandb: " in capsys.readouterr().out
    logged, result = _one_run(offline), json.loads((out / "result.json").read_text())
    (table,) = (logged / "files" / "media" / "table").glob("rows_*.table.json")
    table = json.loads(table.read_text())
    assert len(table["data"]) == len(result["rows"])
    first = dict(zip(table["columns"], table["data"][0]))
    assert first == {k: result["rows"][0][k] for k in table["columns"]}
    figures = {p.name.split("_")[0] for p in (logged / "files" / "media" / "images" / "figures").glob("*.png")}
    assert figures == {p.stem for p in out.glob("*.png")} and figures
    record = _record(logged, [k for k, v in result["summary"].items() if isinstance(v, float)])
    for key, value in result["summary"].items():
        if isinstance(value, float):
            assert key.encode() in record and json.dumps(value).encode() in record
    assert b'"m"' in record or b"m" in record


def test_a_sweep_reaches_wandb_as_one_table_of_every_row(offline, capsys):
    store = offline / "s.sqlite"
    assert main(["sweep", "sparsity", "--grid", "m=64,128", "--set", "samples=1000", "--seeds", "0-1",
                 "--store", str(store), "--jobs", "1", "--quiet", "--log", "wandb"]) == 0
    logged = _one_run(offline)
    (table,) = (logged / "files" / "media" / "table").glob("rows_*.table.json")
    table = json.loads(table.read_text())
    assert {"m", "seed"} <= set(table["columns"])
    seeds_and_m = {(row[table["columns"].index("m")], row[table["columns"].index("seed")]) for row in table["data"]}
    assert seeds_and_m == {(64, 0), (64, 1), (128, 0), (128, 1)}


def test_without_wandb_one_line_names_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    assert main(["run", "sparsity", "--out", str(tmp_path / "r"), "--log", "wandb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'superposim[wandb]'" in err[0]
    assert not (tmp_path / "r").exists()  # refused before any work
    assert main(["run", "sparsity", "--out", str(tmp_path / "r"), "--log", "mlflow"]) == 2
    assert "--log: 'mlflow' is not one of wandb" in capsys.readouterr().err
