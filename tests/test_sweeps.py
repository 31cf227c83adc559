"""Sweeps: cells, the resumable store, identical numbers on every backend, intervals, reports."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scenarios
from scenarios.cli import main
from scenarios.engine import report
from scenarios.engine.fits import t95
from scenarios.engine.params import UsageError
from scenarios.engine.store import Store
from scenarios.engine.sweeps import parse_grid, parse_seeds

ROOT = Path(__file__).resolve().parent.parent
RELAY = str(ROOT / "examples" / "my_relay.py")
SMALL = dict(m=32, layers=1, samples=50)

FLAKY = '''
from scenarios import Outcome, Param, Scenario

def body(p, ctx):
    if p["x"] == 2:
        raise ValueError("x=2 breaks on purpose\\nsecond line")
    return Outcome([{"x": p["x"], "value": p["x"] * 10 + ctx.seed}], {"double": 2 * p["x"]})

scenario = Scenario(name="flaky", description="fails for x=2", params={"x": Param(1, "a number", low=0)}, body=body)
'''


def test_seeds_and_grids_parse_as_documented():
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("5,1,2-3") == [5, 1, 2, 3]
    for bad in ("", "a", "3-x", "-1", "1,1"):
        with pytest.raises(UsageError, match="--seeds"):
            parse_seeds(bad)
    spec = scenarios.load("sparsity").params
    assert parse_grid(spec, {"n": "32,64", "active": "1,2+4"}) == {"n": [32, 64], "active": [(1,), (2, 4)]}
    with pytest.raises(UsageError, match="unknown parameter 'q'"):
        parse_grid(spec, {"q": "1"})
    with pytest.raises(UsageError, match="n: must be >= 1"):
        parse_grid(spec, {"n": "0,4"})
    with pytest.raises(UsageError, match="given twice"):
        parse_grid(spec, {"n": "4,4"})


def test_a_failing_cell_is_recorded_and_retried_and_never_stops_the_others(tmp_path):
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY)
    store = tmp_path / "s.sqlite"
    result = scenarios.sweep(str(script), {"x": [1, 2, 3]}, [0, 1], store, jobs=2)
    cells = result.cells().sort_values(["x", "seed"])
    assert list(cells.status) == ["done", "done", "failed", "failed", "done", "done"]
    digest = __import__("hashlib").sha256(script.read_bytes()).hexdigest()[:10]
    assert set(Store(store).cells()[0]["version"].split("+")[1:]) == {digest}  # the code that ran it
    assert set(cells[cells.status == "failed"].error) == {"ValueError: x=2 breaks on purpose"}
    frame = result.to_pandas()
    assert sorted(frame.value) == [10, 11, 30, 31] and set(frame.columns) >= {"x", "seed", "value"}
    again = scenarios.sweep(str(script), {"x": [1, 2, 3]}, [0, 1], store, jobs=1).cells()
    assert dict(zip(zip(again.x, again.seed), again.attempts)) == {(1, 0): 1, (1, 1): 1, (2, 0): 2, (2, 1): 2,
                                                                     (3, 0): 1, (3, 1): 1}


def test_a_store_of_another_sweep_or_no_store_is_refused(tmp_path):
    store = tmp_path / "s.sqlite"
    scenarios.sweep(RELAY, {"n": [8]}, [0], store, jobs=1, **SMALL)
    with pytest.raises(UsageError, match="belongs to another sweep"):
        scenarios.sweep(RELAY, {"n": [8]}, [0], store, jobs=1, **(SMALL | {"samples": 60}))
    with pytest.raises(UsageError, match="belongs to another sweep"):
        scenarios.sweep("sparsity", {"n": [8]}, [0], store, jobs=1)
    with pytest.raises(UsageError, match="sweeps over n, not active"):
        scenarios.sweep(RELAY, {"active": [1]}, [0], store, jobs=1, **SMALL)
    (tmp_path / "text.sqlite").write_text("hello, not a database")
    with pytest.raises(UsageError, match="not a superposim sweep store"):
        scenarios.load_store(tmp_path / "text.sqlite")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (a)").connection.commit()
    with pytest.raises(UsageError, match="holds no sweep|not a superposim"):
        Store(other)
    with pytest.raises(UsageError, match="'n' is both swept"):
        scenarios.sweep(RELAY, {"n": [8]}, [0], tmp_path / "x.sqlite", n=4)
    with pytest.raises(UsageError, match="active: at most m=32"):  # every cell is checked before any runs
        scenarios.sweep(RELAY, {"active": [1, 40]}, [0], tmp_path / "y.sqlite", **SMALL)
    assert not (tmp_path / "y.sqlite").exists()


def test_the_same_numbers_for_any_number_of_jobs(tmp_path):
    grid, seeds = {"n": [8, 16], "active": [1, 2]}, [0, 1]
    one = scenarios.sweep(RELAY, grid, seeds, tmp_path / "one.sqlite", jobs=1, **SMALL).to_pandas()
    two = scenarios.sweep(RELAY, grid, seeds, tmp_path / "two.sqlite", jobs=2, **SMALL).to_pandas()
    key = ["n", "active", "seed", "layer"]
    assert one.sort_values(key).reset_index(drop=True).equals(two.sort_values(key).reset_index(drop=True))
    assert len(one) == 2 * 2 * 2 * 2


def _ray_or_skip():
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("ray is not installed (CI installs it)")


def test_ray_gives_the_same_store_as_the_local_pool(tmp_path):
    _ray_or_skip()
    grid, seeds = {"n": [8, 16], "active": [1, 3]}, [0, 1]
    local = scenarios.sweep(RELAY, grid, seeds, tmp_path / "local.sqlite", jobs=2, **SMALL)
    ray_ = scenarios.sweep(RELAY, grid, seeds, tmp_path / "ray.sqlite", backend="ray", jobs=2, **SMALL)
    key = ["n", "active", "seed", "layer"]
    a = local.to_pandas().sort_values(key).reset_index(drop=True)
    b = ray_.to_pandas().sort_values(key).reset_index(drop=True)
    assert len(a) == 16 and a.equals(b)
    sa = local.summaries().sort_values(["n", "active", "seed"]).reset_index(drop=True)
    sb = ray_.summaries().sort_values(["n", "active", "seed"]).reset_index(drop=True)
    assert sa.equals(sb)


def test_without_ray_the_backend_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(["sweep", RELAY, "--grid", "n=8", "--store", str(tmp_path / "s.sqlite"), "--backend", "ray",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'superposim[ray]'" in err[0]


def test_summary_gives_mean_std_and_a_student_interval_over_seeds(tmp_path):
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY)
    result = scenarios.sweep(str(script), {"x": [1, 3]}, [0, 1, 2, 3], tmp_path / "s.sqlite", jobs=2)
    table = result.summary().set_index("x")
    assert list(table.seeds) == [4, 4]
    # double = 2x is the same for every seed: no spread; the row values vary with the seed
    assert table.loc[3, "double_mean"] == 6 and table.loc[3, "double_std"] == 0
    frame = result.to_pandas()
    values = frame[frame.x == 1].value.to_numpy(dtype=float)  # 10, 11, 12, 13
    rows = scenarios.engine.sweeps.aggregate(frame[["x", "seed", "value"]], ["x"]).set_index("x")
    half = t95(4) * values.std(ddof=1) / math.sqrt(4)
    assert rows.loc[1, "value_mean"] == pytest.approx(values.mean())
    assert rows.loc[1, "value_ci_low"] == pytest.approx(values.mean() - half)
    assert rows.loc[1, "value_ci_high"] == pytest.approx(values.mean() + half)
    assert t95(2) == pytest.approx(12.706) and t95(100) == 1.96


def test_a_sweep_of_105_cells_stopped_half_way_resumes_running_no_cell_twice(tmp_path):
    store = tmp_path / "big.sqlite"
    cmd = [sys.executable, "-m", "scenarios.cli", "sweep", RELAY, "--grid", "n=8,12,16,24,32,48,64",
           "--grid", "active=1,2,3,4,5", "--seeds", "0-2", "--set", "m=32", "--set", "layers=1",
           "--set", "samples=200", "--store", str(store), "--jobs", "2", "--quiet"]
    # a shell that starts a job in the background hands it SIGINT ignored, and Python then never
    # turns Ctrl-C into KeyboardInterrupt: the sweep gets the default disposition, as in a terminal
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            try:
                done = sqlite3.connect(store).execute("SELECT count(*) FROM cells").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= 20:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"Traceback" not in err, err.decode()
    first = sqlite3.connect(store).execute("SELECT count(*) FROM cells").fetchone()[0]
    assert 20 <= first < 105
    assert subprocess.run(cmd, cwd=tmp_path, capture_output=True).returncode == 0
    cells = scenarios.engine.sweeps.SweepResult(store).cells()
    assert len(cells) == 105 and set(cells.status) == {"done"} and set(cells.attempts) == {1}


def test_report_draws_the_phase_diagram_with_the_prediction_and_exports(tmp_path, capsys):
    store = tmp_path / "sp.sqlite"
    assert main(["sweep", "sparsity", "--grid", "n=32,64,128", "--grid", "active=1,2,4,8", "--seeds", "0-1",
                 "--set", "samples=300", "--set", "capacity_n=32", "--set", "m=512", "--store", str(store),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(store), "--x", "n", "--y", "active", "--metric", "false_positives_per_sample",
                 "--out", str(tmp_path / "rep"), "--csv", str(tmp_path / "rows.csv"),
                 "--parquet", str(tmp_path / "rows.parquet")]) == 0
    out = capsys.readouterr().out
    assert "predicted_false_positives_mean" in out
    assert (tmp_path / "rep" / "false_positives_per_sample_by_n_and_active.png").stat().st_size > 5000
    rep = report.build(store, "n", "active", "false_positives_per_sample")
    assert rep["predicted"] == "predicted_false_positives" and len(rep["table"]) == 12
    fig = report.figure(rep, 1.0)
    ax = fig.axes[0]
    labels = [h.get_label() for h in ax.get_legend().legend_handles]
    assert any("predicted_false_positives = 1" in t for t in labels)
    assert any("n / (8 ln m)" in t for t in labels)  # the post's threshold, from the scenario
    frame = scenarios.load_store(store)
    assert pd.read_csv(tmp_path / "rows.csv").shape == frame.shape
    back = pd.read_parquet(tmp_path / "rows.parquet")
    assert np.allclose(back.interference_std, frame.interference_std)
    # one axis: a line plot with intervals; a metric that is not there: one line
    assert main(["report", str(store), "--x", "n", "--where", "active=4", "--metric", "interference_std",
                 "--out", str(tmp_path / "rep")]) == 0
    assert main(["report", str(store), "--metric", "nope"]) == 2
    assert "is not a row or summary value" in capsys.readouterr().err
    # --where matches a number by its value, however it is written
    picked = report._filter(pd.DataFrame({"alpha": [1.0, 0.5, 1.0], "tag": ["a", "1", "b"]}), {"alpha": "1"})
    assert picked["tag"].tolist() == ["a", "b"]
    assert report._filter(pd.DataFrame({"tag": ["1", "x"]}), {"tag": "1"})["tag"].tolist() == ["1"]


def test_sweep_bad_input_is_one_line(tmp_path, capsys):
    for args in (["sweep", "sparsity", "--store", str(tmp_path / "a.sqlite")],
                 ["sweep", "sparsity", "--grid", "n=8", "--store", str(tmp_path / "a.sqlite"), "--backend", "x"],
                 ["sweep", "sparsity", "--grid", "n", "--store", str(tmp_path / "a.sqlite")],
                 ["sweep", "sparsity", "--grid", "n=8", "--store", str(tmp_path / "a.sqlite"), "--jobs", "0"],
                 ["report", str(tmp_path / "missing.sqlite")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("superposim: error:"), (args, err)
