"""Every failure a new user met, each with the check that would have caught it."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import gen
from safetensors.torch import load_file, save_file

import scenarios
from circuits.generators import random_circuit
from circuits.train import train_on_circuit
from layers.checkpoint import load_weights
from layers.training import CheckpointError, TrainConfig, TrainingDiverged
from scenarios.cli import main
from scenarios.engine.catalog import BUILTIN
from scenarios.engine.params import UsageError

ROOT = Path(__file__).resolve().parent.parent
CIRCUIT = random_circuit(24, 2, 8, 2, ("AND", "OR"), gen(0))
TRAIN = ["--set", "m=40", "--set", "n=24", "--set", "width=10", "--set", "layers=2", "--set", "hidden=16",
         "--set", "batch=64", "--set", "probe_samples=300", "--quiet"]


def _cfg(**kw):
    base = dict(m=24, n=16, widths=(8, 8), hidden=16, steps=60, batch=64, checkpoint_every=20, eval_every=10,
                target_accuracy=1.01, seed=3)
    return TrainConfig(**(base | kw))


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("superposim: error:"), err
    return err[0]


# ---- training and resume ------------------------------------------------------------------------

def test_raising_steps_or_the_early_stop_continues_a_stopped_run(tmp_path):
    _, first = train_on_circuit(CIRCUIT, _cfg(target_accuracy=0.5, patience=1), 2, out_dir=tmp_path,
                                progress=False)
    assert first.stopped_early and first.step == 10
    _, more = train_on_circuit(CIRCUIT, _cfg(target_accuracy=0.5, patience=1, steps=500), 2, out_dir=tmp_path,
                               resume=True, progress=False)
    assert more.step == 20 and more.stopped_early  # trained again until the stop criterion held anew
    _, longer = train_on_circuit(CIRCUIT, _cfg(target_accuracy=1.01, patience=1, steps=70), 2, out_dir=tmp_path,
                                 resume=True, progress=False)
    assert longer.step == 70 and not longer.stopped_early


def test_a_finished_run_checkpoints_its_final_state(tmp_path):
    model, state = train_on_circuit(CIRCUIT, _cfg(steps=55), 2, out_dir=tmp_path, progress=False)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 55
    again, state2 = train_on_circuit(CIRCUIT, _cfg(steps=55), 2, out_dir=tmp_path, resume=True, progress=False)
    assert state2.step == 55 and len(state2.history) == len(state.history)  # no step redone
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_train_prints_only_what_it_wrote_and_refuses_another_runs_folder(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["train", "circuit", *TRAIN, "--set", "steps=30", "--set", "checkpoint_every=200",
                 "--out", str(out)]) == 0
    wrote = [Path(line[6:]) for line in capsys.readouterr().out.splitlines() if line.startswith("wrote ")]
    assert wrote and all(p.is_file() for p in wrote)
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 30
    assert main(["train", "circuit", *TRAIN, "--set", "steps=30", "--out", str(out)]) == 2
    assert "holds an earlier training run; continue it with --resume" in _one_error(capsys)


def test_resume_from_a_model_file_another_shape_or_another_version_is_one_line(tmp_path, capsys):
    out = tmp_path / "t"
    args = ["train", "circuit", *TRAIN, "--set", "steps=20", "--set", "checkpoint_every=10", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    ckpt = out / "checkpoint.safetensors"
    good = ckpt.read_bytes()
    ckpt.write_bytes((out / "model.safetensors").read_bytes())
    assert main(args + ["--resume"]) == 2
    assert "no optimiser and data state" in _one_error(capsys)
    ckpt.write_bytes(good)
    tensors, _ = load_weights(ckpt)
    from safetensors import safe_open

    with safe_open(ckpt, framework="pt") as f:
        meta = f.metadata()
    key = next(k for k in tensors if k.startswith("model.") and tensors[k].dim() == 2)
    tensors[key] = torch.zeros(3, 3)
    save_file(tensors, ckpt, metadata=meta)
    assert main(args + ["--resume"]) == 2
    assert "do not fit this network" in _one_error(capsys)
    ckpt.write_bytes(good)
    twin = json.loads((out / "checkpoint.json").read_text())
    (out / "checkpoint.json").write_text(json.dumps(twin | {"version": 99}))
    assert main(args + ["--resume"]) == 2
    assert "version 99" in _one_error(capsys)


def test_divergence_stops_with_a_message_and_keeps_the_last_finite_checkpoint(tmp_path, capsys):
    with pytest.raises(TrainingDiverged, match="diverged at step"):
        train_on_circuit(CIRCUIT, _cfg(lr=1e9, checkpoint_every=1), 2, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "model.safetensors").exists()
    if (tmp_path / "checkpoint.safetensors").exists():
        assert all(torch.isfinite(v).all() for v in load_file(tmp_path / "checkpoint.safetensors").values()
                   if v.is_floating_point())
    assert main(["train", "circuit", *TRAIN, "--set", "lr=1e9", "--out", str(tmp_path / "cli")]) == 2
    assert "diverged" in _one_error(capsys)
    # a checkpoint holding NaN weights is refused, not trained on
    train_on_circuit(CIRCUIT, _cfg(steps=20), 2, out_dir=tmp_path / "nan", progress=False)
    ckpt = tmp_path / "nan" / "checkpoint.safetensors"
    tensors = load_file(ckpt)
    from safetensors import safe_open

    with safe_open(ckpt, framework="pt") as f:
        meta = f.metadata()
    key = next(k for k in tensors if k.startswith("model."))
    tensors[key] = tensors[key] * float("nan")
    save_file(tensors, ckpt, metadata=meta)
    with pytest.raises(CheckpointError, match="non-finite"):
        train_on_circuit(CIRCUIT, _cfg(steps=40), 2, out_dir=tmp_path / "nan", resume=True, progress=False)


# ---- output places -------------------------------------------------------------------------------

def test_a_bad_out_is_refused_before_any_work(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    slow = ["--set", "samples=100000000"]  # would run for hours if the check came after the work
    for out, says in ((a_file, "is a file"), (a_file / "sub", "which is a file"), ("/proc/superposim-run", "cannot")):
        assert main(["run", "sparsity", *slow, "--out", str(out)]) == 2
        assert says in _one_error(capsys)
        assert main(["graph", "circuit", "--out", str(Path(out) / "g.png")]) == 2
        _one_error(capsys)
        assert main(["train", "circuit", *TRAIN, "--set", "steps=100000000", "--out", str(out)]) == 2
        _one_error(capsys)
    assert main(["run", "sparsity", "--out", ""]) == 2
    assert "empty path" in _one_error(capsys)


def test_a_run_folder_holds_one_runs_set(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["run", "booleanish", "--set", "samples=200", "--set", "sigma_on=0", "--set", "sigma_off=0",
                 "--quiet", "--out", str(out)]) == 0
    first = {p.name for p in out.iterdir()}
    assert main(["run", "circuit", "--set", "samples=100", "--set", "m=20", "--set", "width=10", "--quiet",
                 "--out", str(out)]) == 0
    assert "replaced the earlier run" in capsys.readouterr().out
    second = {p.name for p in out.iterdir()}
    assert json.loads((out / "result.json").read_text())["scenario"] == "circuit"
    run_files = {"result.json", "experiment.toml", ".superposim-run.json"}
    assert first - run_files and not (first - run_files) & second  # no figure of the first run left
    # interrupted while saving: the earlier set stays whole, nothing half-written is left behind
    result = scenarios.run("sparsity", active=[1], samples=50, capacity_n=[32])
    result.figures["broken"] = lambda: (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        result.save(out)
    assert {p.name for p in out.iterdir()} == second
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.")] == [".run.lock"]
    # a folder holding anything else is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["run", "circuit", "--out", str(tmp_path / "mine")]) == 2
    assert "not a superposim run" in _one_error(capsys)


def test_scenario_names_cannot_escape_the_runs_folder(tmp_path, capsys):
    script = tmp_path / "evil.py"
    script.write_text((ROOT / "examples" / "my_relay.py").read_text().replace('name="my-relay"',
                                                                            'name="../../evil"'))
    assert main(["run", str(script)]) == 2
    assert "may hold letters" in _one_error(capsys)
    from scenarios.engine.outputs import default_folder

    assert default_folder("../x/../y") == Path("runs") / "x-..-y" or ".." not in default_folder("../x").parts


# ---- sizes and numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,params", [
    ("sparsity", {"n": 10**12}),
    ("sparsity", {"m": 10**6, "n": 10**5}),
    ("compounding-noise", {"m": 10**20}),
    ("circuit", {"m": 10**9, "n": 10**4}),
    ("u-and", {"m": 10**7}),
])
def test_sizes_that_cannot_fit_are_refused_with_an_estimate(name, params):
    with pytest.raises(UsageError, match=r"about [\d.e+]+ [KMGT]iB of memory needed"):
        scenarios.run(name, **params)


def test_overflow_is_written_as_null_and_listed(tmp_path, capsys):
    assert main(["run", "compounding-noise", "--set", "cleanup=none", "--set", "m=256", "--set", "n=16",
                 "--set", "layers=64", "--set", "samples=64", "--quiet", "--out", str(tmp_path / "o")]) == 0
    assert "not finite" in capsys.readouterr().out
    saved = json.loads((tmp_path / "o" / "result.json").read_text())
    assert saved["nonfinite"] and all(v in ("inf", "-inf", "nan") for v in saved["nonfinite"].values())
    place = next(iter(saved["nonfinite"]))
    row, key = re.match(r"rows\[(\d+)\]\.(\w+)", place).groups()
    assert saved["rows"][int(row)][key] is None


def test_values_that_used_to_crash(tmp_path, capsys):
    r = scenarios.run("circuits-in-superposition", T=10, z=[1], L=2, samples=20, capacity_D=[1], capacity_samples=10)
    assert r.summary["capacity_T_measured_2025"] == [None] and r.summary["capacity_T_measured_2024"] == [None]
    with pytest.raises(UsageError, match="sigma_on: must be <= 100"):
        scenarios.run("booleanish", sigma_on=[1e200])
    with pytest.raises(UsageError, match="finite"):
        scenarios.run("sparsity", budget=math.inf)
    for bad in ("nan", "inf"):
        assert main(["graph", "circuit", "--prune", bad]) == 2
        assert "--prune" in _one_error(capsys)


def test_python_api_takes_numpy_and_tensor_scalars_and_paths():
    base = scenarios.run("sparsity", m=64, n=32, active=[1, 2], samples=50, capacity_n=[16])
    same = scenarios.run("sparsity", m=np.int64(64), n=torch.tensor(32), active=np.array([1, 2]), samples=50,
                         capacity_n=[np.int32(16)])
    assert same.to_dict() == base.to_dict()
    r = scenarios.run(ROOT / "examples" / "my_relay.py", samples=50)
    assert r.scenario == "my-relay"
    with pytest.raises(UsageError, match="expected a name or a path"):
        scenarios.run(None)


# ---- graph files ---------------------------------------------------------------------------------

def test_graph_files_with_mistyped_fields_are_refused(tmp_path, capsys):
    good = tmp_path / "g.json"
    assert main(["graph", "circuit", "--set", "m=6", "--set", "width=4", "--set", "n=5", "--set", "layers=2",
                 "--out", str(good)]) == 0
    capsys.readouterr()
    data = json.loads(good.read_text())
    for field, value in (("layer", "abc"), ("index", "x"), ("layer", [1]), ("layer", 1e300), ("layer", float("nan")),
                         ("weight", "heavy")):
        bad = json.loads(json.dumps(data))
        if field == "weight":
            bad["graph"]["edges"][0]["weight"] = value
        else:
            bad["graph"]["nodes"][0][field] = value
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        assert main(["graph", "--load", str(path), "--out", str(tmp_path / "x.png")]) == 2, (field, value)
        assert "not a superposim graph" in _one_error(capsys)


def test_out_suffix_and_format_must_agree(tmp_path, capsys):
    assert main(["graph", "circuit", "--out", str(tmp_path / "x.png"), "--format", "json"]) == 2
    assert "make them agree" in _one_error(capsys)
    assert not (tmp_path / "x.png").exists()


def test_big_graphs_are_drawn_as_their_strongest_paths(tmp_path, capsys):
    args = ["graph", "compounding-noise", "--set", "m=200", "--set", "n=48", "--set", "layers=3"]
    assert main(args + ["--out", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out
    assert "strongest paths" in out
    drawn = int(re.search(r"\((\d+) nodes", out.split("strongest paths")[1]).group(1))
    assert drawn < 200
    # the WebGL page and the graph files keep every node
    for name in ("g.html", "g.graphml"):
        assert main(args + ["--out", str(tmp_path / name)]) == 0
        assert "strongest paths" not in capsys.readouterr().out
    page = (tmp_path / "g.html").read_text()
    assert 'id="legend"' in page and 'id="find"' in page and "interference node" in page
    assert len(re.findall(r'\["L3:\d+"', page)) == 200  # every feature of the last layer is on the page


# ---- discoverability and output ---------------------------------------------------------------

def test_run_help_shows_every_parameter(capsys):
    for name in BUILTIN:
        assert main(["run", name, "--help"]) == 0
        out = capsys.readouterr().out
        for key, param in scenarios.load(name).params.items():
            line = next(line for line in out.splitlines() if line.startswith(key + " "))
            assert param.help in line and param.describe() in line
    assert main(["list", "--verbose"]) == 0
    assert "capacity_probe" in capsys.readouterr().out


def test_list_and_help_do_not_import_torch():
    code = ("import sys, contextlib, io; from scenarios.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['list'])\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout
    assert out.strip() == "False False"


def test_the_catalog_is_written_from_the_scenarios_own_records():
    from scenarios.engine.catalog import CATALOG, live_catalog

    stored = json.loads(CATALOG.read_text())["scenarios"]
    assert stored == live_catalog(), "run `make catalog` after changing a scenario's record"
    assert all(stored[name]["description"] == scenarios.load(name).description for name in BUILTIN)


def test_every_scenario_page_lists_every_parameter_and_the_theory_names_every_closed_form():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scenario_pages", ROOT / "docs" / "_hooks" / "scenario_pages.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    reference = hook.reference

    for name in BUILTIN:
        page = reference(name)
        for key in scenarios.load(name).params:
            assert f"| `{key}` |" in page, (name, key)
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme and "(docs/theory.md)" in readme
    theory = (ROOT / "docs" / "theory.md").read_text()
    import circuits.theory as th

    public = [n for n, f in vars(th).items() if callable(f) and not n.startswith("_") and f.__module__ == th.__name__]
    missing = [n for n in public if f"`{n}`" not in theory]
    assert not missing, f"docs/theory.md does not name {missing}"


def test_the_example_script_runs_beside_its_prediction(tmp_path, capsys):
    assert main(["run", str(ROOT / "examples" / "my_relay.py"), "--set", "samples=1000", "--quiet",
                 "--out", str(tmp_path / "r")]) == 0
    row = json.loads((tmp_path / "r" / "result.json").read_text())["rows"][0]
    assert row["interference_std"] == pytest.approx(row["predicted_std"], rel=0.05)
    assert row["interference_std_dedicated"] == 0


def test_progress_is_shown_and_named(capsys):
    scenarios.run("booleanish", samples=100, sigma_on=[0.0], sigma_off=[0.0], progress=True)
    assert "settings" in capsys.readouterr().err
    scenarios.run("compounding-noise", m=64, n=32, layers=1, samples=100, progress=True)
    err = capsys.readouterr().err
    assert "clean-up none" in err and "clean-up threshold" in err


def test_summaries_print_as_tables():
    table = scenarios.run("u-and", m=200, d=300, samples=100, sweep_d=[200, 300], sweep_p=[0.1], sweep_d0=[0],
                          sweep_samples=50).table()
    assert max(len(line) for line in table.splitlines()) < 160
    assert "\nsweep_d:\n" in table and "{" not in table


def test_no_csr_notice_reaches_users(tmp_path):
    proc = subprocess.run([sys.executable, "-W", "default", "-m", "scenarios.cli", "run", "compounding-noise",
                           "--set", "m=64", "--set", "n=16", "--set", "samples=100", "--quiet",
                           "--out", str(tmp_path / "c")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "beta" not in proc.stderr


def test_figures_count_layers_in_integers_and_keep_legends_off_the_curves():
    from matplotlib.ticker import MaxNLocator

    r = scenarios.run("compounding-noise", m=64, n=32, layers=3, samples=100)
    for make in r.figures.values():
        fig = make()
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            fig.canvas.draw()
            box = legend.get_window_extent()
            assert box.x0 >= ax.get_window_extent().x1 - 1  # beside the axes, not over them
            if ax.get_xlabel() == "layer":
                locator = ax.xaxis.get_major_locator()
                assert isinstance(locator, MaxNLocator) and locator._integer


def test_lint_covers_the_project_not_a_users_scripts(tmp_path):
    makefile = (ROOT / "Makefile").read_text()
    command = re.search(r"\$\(BIN\)/ruff check ([^\n]+)", makefile).group(1).split()
    scratch = ROOT / "scratch_user_script.py"
    scratch.write_text("import os\nx=1\n")  # unused import: a lint error
    try:
        ruff = Path(sys.executable).parent / "ruff"
        proc = subprocess.run([str(ruff), "check", *command], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout
    finally:
        scratch.unlink()
    assert all((ROOT / folder).is_dir() for folder in command)


def test_running_out_of_memory_is_one_line_not_a_traceback(tmp_path, capsys):
    script = tmp_path / "greedy.py"
    script.write_text(
        "from scenarios import Outcome, Param, Scenario\n"
        "def body(p, ctx):\n"
        "    raise RuntimeError(\"[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: \"\n"
        "                       \"you tried to allocate 80000000000 bytes\")\n"
        "scenario = Scenario(name='greedy', description='needs more than there is', params={'k': Param(1, 'k')},\n"
        "                    body=body)\n")
    from scenarios.cli import main

    assert main(["run", str(script), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ran out of memory on cpu" in err[0] and "80000000000 bytes" in err[0]
    other = tmp_path / "broken.py"
    other.write_text(script.read_text().replace("can't allocate memory", "index out of range"))
    with pytest.raises(RuntimeError, match="index out of range"):  # other errors are not hidden
        main(["run", str(other), "--out", str(tmp_path / "out2")])
