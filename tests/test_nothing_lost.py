"""Nothing a user wrote is ever lost, no option is silently ignored, and every size a user types
is guarded before any work: each way a user's file or intent was lost, with its check."""

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from layers.files import NotARegularFile, write_atomic
from scenarios.cli import main
from scenarios.engine.params import UsageError

ROOT = Path(__file__).resolve().parent.parent
RELAY = str(ROOT / "examples" / "my_relay.py")
QUICK = ["--set", "samples=100", "--set", "m=20", "--set", "width=10", "--quiet"]
TRAIN = ["--set", "m=40", "--set", "n=24", "--set", "width=10", "--set", "layers=2", "--set", "hidden=16",
         "--set", "batch=64", "--set", "probe_samples=300", "--quiet"]
# A tiny scenario for sweeps: two rows per cell that differ in a float setting (as booleanish's
# sigma_on), so that a plot needs a choice.
ROWS = '''
from scenarios import Outcome, Param, Scenario

def body(p, ctx):
    rows = [{"x": p["x"], "spread": k / 2, "value": p["x"] * 10 + k + ctx.seed + ctx.seed_for("v") % 7 / 7,
             "predicted_value": p["x"] * 10} for k in range(2)]
    return Outcome(rows, {"total": sum(r["value"] for r in rows)})

scenario = Scenario(name="rows", description="two rows per cell", params={"x": Param(1, "a number", low=0)}, body=body)
'''


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("superposim: error:"), err
    return err[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A finished sweep over x in {1, 2} and two seeds, two rows per cell."""
    folder = tmp_path_factory.mktemp("sweep")
    script = folder / "rows.py"
    script.write_text(ROWS)
    path = folder / "s.sqlite"
    assert main(["sweep", str(script), "--grid", "x=1,2", "--seeds", "0-1", "--store", str(path), "--jobs", "1",
                 "--quiet"]) == 0
    return path


def _mount(kind: str, target: Path, source: Path | None = None) -> bool:
    """A tiny tmpfs (a disk that fills) or a read-only bind mount, where this machine allows it."""
    target.mkdir(parents=True, exist_ok=True)
    if kind == "full":
        cmd = [["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(target)]]
    else:
        cmd = [["mount", "--bind", str(source), str(target)], ["mount", "-o", "remount,bind,ro", str(target)]]
    for c in cmd:
        if subprocess.run(c, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(target)], capture_output=True)
            return False
    return True


@pytest.fixture
def full_disk(tmp_path):
    place = tmp_path / "full"
    if os.geteuid() != 0 or not _mount("full", place):
        pytest.skip("mounting a tiny tmpfs needs root (CI runs as root)")
    (place / "filler").write_bytes(b"\0" * 40_000)
    yield place
    subprocess.run(["umount", str(place)], check=True)


# ---- silent losses --------------------------------------------------------------------------------

def test_a_new_run_keeps_the_files_a_user_put_in_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "circuit", *QUICK, "--out", str(out)]) == 0
    (out / "notes.txt").write_text("my notes")
    (out / "mine").mkdir()
    (out / "mine" / "graph.png").write_bytes(b"a picture")
    assert main(["graph", "circuit", "--set", "m=8", "--set", "width=6", "--set", "n=6",
                 "--out", str(out / "graph.png")]) == 0
    graph = (out / "graph.png").read_bytes()
    capsys.readouterr()
    assert main(["run", "booleanish", "--set", "samples=100", "--set", "sigma_on=0", "--set", "sigma_off=0",
                 "--quiet", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "kept what no run wrote there: graph.png, mine, notes.txt" in said
    assert (out / "notes.txt").read_text() == "my notes" and (out / "graph.png").read_bytes() == graph
    assert (out / "mine" / "graph.png").read_bytes() == b"a picture"
    assert json.loads((out / "result.json").read_text())["scenario"] == "booleanish"
    assert not (out / "wrong_features.png").exists()  # the earlier run's own figure went with it


def test_a_run_folder_from_before_manifests_keeps_what_the_new_run_does_not_write(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "circuit", *QUICK, "--out", str(out)]) == 0
    (out / ".superposim-run.json").unlink()  # as an earlier version left it
    (out / "notes.txt").write_text("keep")
    assert main(["run", "circuit", *QUICK, "--out", str(out)]) == 0
    assert (out / "notes.txt").read_text() == "keep"


def test_a_users_file_named_like_a_new_figure_is_never_replaced(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "booleanish", "--set", "samples=100", "--set", "sigma_on=0", "--set", "sigma_off=0",
                 "--quiet", "--out", str(out)]) == 0
    (out / "wrong_features.png").write_bytes(b"the user's own")  # a name the next run (circuit) writes
    capsys.readouterr()
    assert main(["run", "circuit", *QUICK, "--out", str(out)]) == 2
    error = _one_error(capsys)
    assert "wrong_features.png" in error and "nothing there was changed" in error
    assert (out / "wrong_features.png").read_bytes() == b"the user's own"
    assert json.loads((out / "result.json").read_text())["scenario"] == "booleanish"
    aside = Path(error.split("this run is in ")[1].strip("'"))
    assert json.loads((aside / "result.json").read_text())["scenario"] == "circuit"  # the work is not lost


def test_out_through_a_link_writes_into_its_target(tmp_path, capsys):
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    for _ in range(2):  # a new folder, then an earlier run replaced through the link
        assert main(["run", "circuit", *QUICK, "--out", str(link)]) == 0
        assert link.is_symlink() and os.readlink(link) == str(target)
        assert json.loads((target / "result.json").read_text())["scenario"] == "circuit"
    file_link = tmp_path / "table.csv"
    real = tmp_path / "real.csv"
    real.write_text("old")
    file_link.symlink_to(real)
    write_atomic(file_link, b"new")
    assert file_link.is_symlink() and real.read_text() == "new"


def test_no_output_overwrites_the_store_it_reads(store, tmp_path, capsys):
    before = store.read_bytes()
    for flag in ("--csv", "--parquet"):
        assert main(["report", str(store), flag, str(store)]) == 2
        assert "which this command reads" in _one_error(capsys)
    assert main(["report", str(store), "--csv", f"{store}-wal"]) == 2
    _one_error(capsys)
    assert store.read_bytes() == before


def test_non_regular_files_are_never_replaced(store, tmp_path, capsys):
    assert main(["report", str(store), "--csv", "/dev/full"]) == 2
    assert "character device" in _one_error(capsys)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile):
        write_atomic(fifo, b"x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_two_outputs_on_one_file_are_refused(store, tmp_path, capsys):
    both = tmp_path / "rows.out"
    assert main(["report", str(store), "--csv", str(both), "--parquet", str(both)]) == 2
    assert "--parquet and --csv both name" in _one_error(capsys)
    assert not both.exists()


def test_sweep_refuses_seed_and_names_seeds(tmp_path, capsys):
    assert main(["sweep", RELAY, "--grid", "n=8", "--seed", "5", "--store", str(tmp_path / "s")]) == 2
    assert "--seeds 5" in _one_error(capsys)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args,says", [
    (["run", "circuit", "--set", "m=20", "--set", "m=30"], "--set m is given twice"),
    (["run", "compounding-noise", "--set", "cleanup=threshold,threshold"], "'threshold' is given twice"),
    (["run", "sparsity", "--set", "active=2,2"], "2 is given twice"),
    (["train", "circuit", "--set", "lr=0", "--out", "unused"], "lr: must be > 0"),
    (["run", "toy-models", "--set", "lr=0"], "lr: must be > 0"),
    (["run", "toy-models", "--device", "cuda"], "toy-models computes on the cpu only; cuda would change nothing"),
    (["graph", "trained-vs-handbuilt", "--device", "cuda:0"], "trained-vs-handbuilt computes on the cpu only"),
    (["graph", "circuit", "--input", ""], "--input: give at least one feature index"),
    (["graph", "circuit", "--input", "1,1"], "feature 1 is given twice"),
    (["graph", "--load", "g.json", "--set", "m=3"], "--set has no effect with --load"),
    (["graph", "--load", "g.json", "--prune", "0.1"], "--prune has no effect with --load"),
    (["graph", "circuit", "--paths", "3"], "--paths counts the top paths of --from/--to"),
    (["graph", "circuit", "--all", "--format", "json"], "--all draws every node of a png or html"),
    (["graph", "circuit", "--from", "x0", "--to", "L3:2", "--neurons"], "--neurons shapes the graph"),
    (["sweep", "circuit", "--grid", "n=8", "--store", "s", "--address", "1.2.3.4:1"], "it needs --backend ray"),
    (["report", "s", "--where", "a=1", "--where", "a=2"], "--where a is given twice"),
    (["report", "s", "--level", "nan", "--y", "n"], "--level: expected a finite number"),
    (["report", "s", "--level", "0.5"], "--level is the contour of a phase diagram"),
])
def test_options_that_would_do_nothing_are_refused(args, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert says in _one_error(capsys)
    assert not any(tmp_path.iterdir())  # refused before anything was written


# ---- tracebacks, hangs and unguarded sizes ----------------------------------------------------------

def test_graph_out_without_a_suffix_is_a_png(tmp_path, capsys):
    out = tmp_path / "g" / "noext"
    assert main(["graph", "circuit", "--set", "m=8", "--set", "width=6", "--set", "n=6", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sizes_a_user_types_are_guarded_before_any_work(store, tmp_path, capsys, monkeypatch):
    assert main(["graph", "circuit", "--from", "x0", "--to", "L3:2", "--paths", "100000000"]) == 2
    assert "--paths: must be between 1 and 10,000" in _one_error(capsys)
    assert main(["graph", "circuit", "--set", "m=3000", "--set", "width=3000", "--from", "x0", "--to", "L3:2",
                 "--paths", "10000"]) == 2
    assert "of memory needed" in _one_error(capsys)
    big_batch = [a.replace("batch=64", "batch=1000000000") for a in TRAIN]
    assert main(["train", "circuit", *big_batch, "--out", str(tmp_path / "t")]) == 2
    assert "batch=1000000000" in _one_error(capsys) and not (tmp_path / "t").exists()
    assert main(["sweep", RELAY, "--grid", "n=8,16", "--seeds", "0-100000000000", "--store",
                 str(tmp_path / "s")]) == 2
    assert "a sweep of 200,000,000,002 cells" in _one_error(capsys) and not (tmp_path / "s").exists()
    monkeypatch.setattr("scenarios.engine.sweeps.ROW_TEXT_FACTOR", 10**12)
    assert main(["report", str(store), "--csv", str(tmp_path / "r.csv")]) == 2
    assert "reading the store" in _one_error(capsys)


def test_a_full_disk_is_one_line_and_nothing_half_written(full_disk, capsys):
    assert main(["run", "compounding-noise", "--set", "m=64", "--set", "n=32", "--set", "samples=64",
                 "--quiet", "--out", str(full_disk / "run")]) == 2
    assert "No space left on device" in _one_error(capsys)
    assert main(["train", "circuit", *TRAIN, "--set", "steps=40", "--set", "checkpoint_every=10",
                 "--out", str(full_disk / "t")]) == 2
    assert "No space left on device" in _one_error(capsys)
    assert main(["graph", "circuit", "--set", "m=8", "--set", "width=6", "--set", "n=6",
                 "--out", str(full_disk / "g.png")]) == 2
    assert "No space left on device" in _one_error(capsys)
    left = [p.name for p in full_disk.rglob("*") if p.is_file() and p.name != "filler"]
    assert all(not name.startswith(".") or name.endswith(".lock") for name in left), left
    assert not (full_disk / "run").exists() and not (full_disk / "g.png").exists()


def test_a_ray_address_where_nothing_listens_is_one_line_and_leaves_no_store(tmp_path, capsys):
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    for address in (f"127.0.0.1:{port}", "nosuchhost.invalid:6379", "nonsense"):
        assert main(["sweep", RELAY, "--grid", "n=8", "--store", str(tmp_path / "s"), "--backend", "ray",
                     "--address", address, "--quiet"]) == 2
        assert "--address" in _one_error(capsys)
        assert not list(tmp_path.iterdir())


SCRIPT = '''
import scenarios
{guard}scenarios.sweep({relay!r}, grid={{"n": [8]}}, seeds=[0], store={store!r}, jobs=1, m=16, samples=20)
print("swept")
'''


def test_a_sweep_at_a_scripts_top_level_says_to_add_the_main_guard(tmp_path):
    bare = tmp_path / "bare.py"
    bare.write_text(SCRIPT.format(guard="", relay=RELAY, store=str(tmp_path / "a.sqlite")))
    done = subprocess.run([sys.executable, str(bare)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode != 0 and 'if __name__ == "__main__":' in done.stderr
    assert "BrokenProcessPool" not in done.stderr and not (tmp_path / "a.sqlite").exists()
    guarded = tmp_path / "guarded.py"
    guarded.write_text(SCRIPT.format(guard='if __name__ == "__main__":\n    ', relay=RELAY,
                                     store=str(tmp_path / "b.sqlite")))
    done = subprocess.run([sys.executable, str(guarded)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and "swept" in done.stdout, done.stderr[-2000:]


def test_a_second_sweep_on_a_store_in_use_is_refused(store, capsys):
    from scenarios.engine.sweeps import _sole_writer

    with _sole_writer(store):  # as a sweep running in another process holds it
        assert main(["sweep", str(store.parent / "rows.py"), "--grid", "x=1,2", "--seeds", "0-2",
                     "--store", str(store), "--quiet"]) == 2
        assert "is being written by another sweep (pid" in _one_error(capsys)


# ---- friction -------------------------------------------------------------------------------------

def test_resume_names_the_setting_that_differs(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["train", "circuit", *TRAIN, "--set", "steps=20", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "circuit", *TRAIN, "--set", "steps=20", "--set", "lr=0.01", "--out", str(out),
                 "--resume"]) == 2
    assert "lr=0.003 there, 0.01 now" in _one_error(capsys)
    assert main(["train", "circuit", *TRAIN, "--set", "steps=10", "--out", str(out), "--resume"]) == 2
    assert "at step 20, past steps=10: nothing would be trained" in _one_error(capsys)


def test_graph_without_out_writes_beside_the_run_folders(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "circuit", "--set", "m=8", "--set", "width=6", "--set", "n=6"]) == 0
    assert (tmp_path / "runs" / "circuit-graph.png").is_file()
    assert main(["run", "circuit", *QUICK]) == 0  # its run folder is still free
    assert (tmp_path / "runs" / "circuit" / "result.json").is_file()


def test_help_and_name_errors_answer_without_torch():
    code = ("import sys; from scenarios.cli import main; rc = [main(a) for a in (['run', 'circuit', '--help'], "
            "['train', 'circuit', '--help'], ['run', 'nosuch'], ['graph', 'nosuch'], ['list', '-v'])]; "
            "print(rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[0, 0, 2, 2, 0] False", done.stderr
    assert "hidden" in done.stdout and "unknown scenario 'nosuch'" in done.stderr



def test_report_exports_without_a_plot_and_names_what_rows_differ_in(store, tmp_path, capsys):
    csv = tmp_path / "rows.csv"
    assert main(["report", str(store), "--csv", str(csv)]) == 0
    assert len(csv.read_text().strip().splitlines()) == 1 + 2 * 2 * 2  # header, cells x seeds x rows
    assert main(["report", str(store), "--x", "x"]) == 2
    assert "they differ in spread)" in _one_error(capsys)
    assert main(["report", str(store), "--x", "x", "--where", "spread=0.5", "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "value_by_x.png").is_file()


def test_a_store_on_a_read_only_mount_reads_and_is_refused_for_writing(store, tmp_path, capsys):
    place = tmp_path / "ro"
    if os.geteuid() != 0 or not _mount("ro", place, store.parent):
        pytest.skip("a read-only bind mount needs root (CI runs as root)")
    try:
        ro_store = place / store.name
        assert main(["report", str(ro_store), "--x", "x", "--where", "spread=0.5", "--out", str(tmp_path / "f")]) == 0
        capsys.readouterr()
        assert main(["sweep", str(place / "rows.py"), "--grid", "x=1,2", "--seeds", "0-2", "--store",
                     str(ro_store), "--quiet"]) == 2
        assert "read-only" in _one_error(capsys)
    finally:
        subprocess.run(["umount", str(place)], check=True)


def test_a_huge_weight_decay_is_named_as_the_cause(tmp_path, capsys):
    assert main(["train", "circuit", *TRAIN, "--set", "steps=30", "--set", "weight_decay=1e30",
                 "--out", str(tmp_path / "t")]) == 2
    assert "lower weight_decay" in _one_error(capsys)


def test_train_takes_what_can_be_trained_and_says_what_a_script_needs(tmp_path, capsys):
    assert main(["train", RELAY, "--set", "m=32", "--set", "n=16", "--set", "steps=20", "--set",
                 "probe_samples=100", "--quiet", "--out", str(tmp_path / "relay")]) == 0
    assert main(["train", "trained-vs-handbuilt", *TRAIN, "--set", "steps=20", "--out", str(tmp_path / "tvh")]) == 0
    assert (tmp_path / "tvh" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(["train", "sparsity", "--out", str(tmp_path / "s")]) == 2
    assert "passes trainable=True and networks=FUNCTION" in _one_error(capsys)


def test_errors_name_the_parameter_the_user_set():
    import scenarios

    with pytest.raises(UsageError, match="^d: .* d must be >= 2"):
        scenarios.run("circuits-in-superposition", d=1)


def test_toy_training_picks_one_thread_for_small_work():
    import torch

    from layers.threads import ONE_THREAD_BELOW, sized_threads, threads_for

    assert threads_for(1000) == 1 and threads_for(ONE_THREAD_BELOW) == torch.get_num_threads()
    before = torch.get_num_threads()
    with sized_threads(10) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ---- figures ----------------------------------------------------------------------------------------

def _axes(result, name):
    return result.figures[name]().axes[0]


def test_figures_show_what_they_measure():
    import scenarios

    sparsity = scenarios.run("sparsity", m=256, n=64, active=[1, 4, 16], samples=200, capacity_n=[32])
    assert _axes(sparsity, "interference").get_yscale() == "symlog"  # the post's bound no longer squeezes it
    rotations = scenarios.run("rotations-in-superposition", T=60, D=200, S=4, L=3, z=[1, 2], samples=100)
    assert _axes(rotations, "seizures").get_ylim()[0] == 0  # counts: no negative half
    toy = scenarios.run("toy-models", features=3, dims=1, sparsity=[0.0, 0.9], instances=2, steps=20)
    assert _axes(toy, "dims_per_feature").get_title() == "3 features in 1 dimension"
    storage = scenarios.run("compressed-storage", T=[60], D=[10, 20], p=[0.1], samples=200, steps=20)
    ax = _axes(storage, "mse_by_D")
    lines = {line.get_label().split(": ")[-1]: line for line in ax.get_lines()}
    assert lines["dedicated"].get_markerfacecolor() == "none"  # hollow: the trained crosses show inside
    assert lines["trained linear"].get_zorder() > lines["dedicated"].get_zorder()
    assert not [t for t in ax.xaxis.get_minorticklabels() if t.get_text()]  # no crowded 3 x 10^1 labels


def test_a_sweep_axis_with_one_value_still_shows_its_prediction_and_interval(store):
    from scenarios.engine import report

    rep = report.build(store, "x", None, "value", None, {"spread": "0.5", "x": "1"})
    ax = report.figure(rep, None).axes[0]
    predicted = [line for line in ax.get_lines() if line.get_label() == "predicted_value"]
    assert predicted and predicted[0].get_marker() == "x"
    assert ax.containers  # the interval as an error bar


def test_an_unreadable_picture_says_where_to_look_instead(tmp_path, capsys):
    args = ["graph", "compounding-noise", "--set", "m=120", "--set", "n=48", "--set", "layers=3", "--all"]
    assert main(args + ["--out", str(tmp_path / "g.png")]) == 0
    assert "a picture of 483 nodes cannot be read; the HTML page" in capsys.readouterr().out  # 4 x 120 + 3 interference


def test_a_contour_level_outside_the_data_is_said(tmp_path, capsys):
    script = tmp_path / "grid.py"
    script.write_text('''
from scenarios import Outcome, Param, Scenario

def body(p, ctx):
    return Outcome([{"value": p["a"] * p["b"]}], {})

scenario = Scenario(name="grid", description="a times b", params={"a": Param(1, "a", low=0), "b": Param(1, "b", low=0)},
                    body=body)
''')
    store = tmp_path / "g.sqlite"
    assert main(["sweep", str(script), "--grid", "a=1,2", "--grid", "b=1,2", "--store", str(store), "--jobs", "1",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(store), "--x", "a", "--y", "b", "--level", "9"]) == 0
    assert "no contour drawn: --level 9 lies outside the measured value (1 to 4)" in capsys.readouterr().out
    assert main(["report", str(store), "--x", "a", "--y", "b", "--level", "2.5"]) == 0
    assert "no contour drawn" not in capsys.readouterr().out


def test_the_toys_train_small_steps_on_one_thread(monkeypatch):
    import torch

    import scenarios

    asked = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (asked.append(n), real(n)))
    scenarios.run("toy-models", features=5, dims=2, sparsity=[0.0], instances=2, steps=5)
    scenarios.run("trained-u-and", m=8, d=[4], steps=5)
    assert asked.count(1) >= 2


def test_every_error_of_superposim_derives_from_one_root():
    import importlib
    import inspect
    import pkgutil

    from layers.errors import SuperposimError

    found = []
    for package in ("layers", "circuits", "scenarios"):
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if info.name.endswith("__main__"):  # running it is the command itself
                continue
            module = importlib.import_module(info.name)
            found += [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                      if issubclass(cls, BaseException) and cls.__module__ == module.__name__]
    assert len(found) >= 8 and all(issubclass(cls, SuperposimError) for cls in found), found
