"""Training: lossless resume (also after a real kill), safe weight files, probes, accuracy."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import gen
from safetensors.torch import load_file, save_file

import scenarios
from circuits.compile import compile_dedicated
from circuits.generators import random_circuit
from circuits.sampling import ExactlyActive
from circuits.trace import trace_noise
from circuits.train import fit_probes, train_on_circuit
from layers.checkpoint import SCHEMA_VERSION, WeightFileError, load_weights, save_weights
from layers.training import TrainConfig, load_trained
from scenarios.cli import main

CIRCUIT = random_circuit(24, 2, 8, 2, ("AND", "OR"), gen(0))


def _cfg(**kw):
    base = dict(m=24, n=16, widths=(8, 8), hidden=16, steps=60, batch=64, checkpoint_every=20, eval_every=10,
                target_accuracy=1.01, seed=3)
    return TrainConfig(**(base | kw))


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight, _ = train_on_circuit(CIRCUIT, _cfg(), 2, out_dir=tmp_path / "a", progress=False)
    # interrupted after step 33: the checkpoint on disk is step 20, steps 21-33 are lost
    _, state = train_on_circuit(CIRCUIT, _cfg(), 2, out_dir=tmp_path / "b", progress=False, stop_after=33)
    assert state.step == 33 and not (tmp_path / "b" / "model.safetensors").exists()
    resumed, state = train_on_circuit(CIRCUIT, _cfg(), 2, out_dir=tmp_path / "b", resume=True, progress=False)
    assert state.step == 60
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other, _ = train_on_circuit(CIRCUIT, _cfg(seed=4), 2, progress=False)
    assert not torch.equal(_weights(other)["heads.0.weight"], a["heads.0.weight"])
    with pytest.raises(ValueError, match="other settings"):
        train_on_circuit(CIRCUIT, _cfg(lr=1e-2), 2, out_dir=tmp_path / "b", resume=True, progress=False)


def test_a_killed_training_run_resumes_to_the_same_weights(tmp_path):
    sets = ["--set", "m=40", "--set", "n=24", "--set", "width=10", "--set", "layers=2", "--set", "active=2",
            "--set", "hidden=24", "--set", "steps=400", "--set", "checkpoint_every=25", "--set", "batch=128",
            "--set", "target_accuracy=1.0", "--set", "probe_samples=500", "--quiet"]
    cmd = [sys.executable, "-m", "scenarios.cli", "train", "circuit", *sets]
    assert subprocess.run(cmd + ["--out", str(tmp_path / "whole")], capture_output=True).returncode == 0
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoint.json"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and json.loads(ckpt.read_text())["step"] >= 50:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(ckpt.read_text())["step"]
    assert not (tmp_path / "killed" / "model.safetensors").exists(), "the run finished before it was killed"
    assert main(["train", "circuit", *sets, "--out", str(tmp_path / "killed"), "--resume"]) == 0
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"killed at step {killed_at}"
    leftovers = [p.name for p in (tmp_path / "killed").iterdir() if ".tmp" in p.name]
    assert leftovers == []


def test_weight_files_round_trip_and_bad_ones_are_refused(tmp_path, capsys):
    model, _ = train_on_circuit(CIRCUIT, _cfg(steps=10), 2, out_dir=tmp_path, progress=False)
    loaded, meta = load_trained(tmp_path / "model.safetensors")
    assert meta["step"] == 10
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    good = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (tmp_path / "noise.safetensors").write_bytes(os.urandom(200))
    save_file({"w": torch.zeros(2)}, tmp_path / "foreign.safetensors")  # safetensors, but not ours
    save_weights(tmp_path / "future.safetensors", {"w": torch.zeros(2)}, {})
    raw = json.loads((tmp_path / "future.json").read_text())
    assert raw["version"] == SCHEMA_VERSION
    for name in ("truncated", "noise", "foreign", "missing"):
        with pytest.raises(WeightFileError):
            load_weights(tmp_path / f"{name}.safetensors")
    with pytest.raises(ValueError, match="no trained network"):
        load_trained(tmp_path / "future.safetensors")
    # a corrupt checkpoint met by --resume: one line, exit 2
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(good[:100])
    assert main(["train", "circuit", "--out", str(run), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable superposim weight file" in err[0]


def test_a_version_1_weight_file_loads_as_the_same_network(tmp_path):
    """Version 1 named a block's weight ``network.blocks.0.read``; version 2 ``...read.matrix``."""
    model, _ = train_on_circuit(CIRCUIT, _cfg(steps=5), 2, out_dir=tmp_path, progress=False)
    from safetensors import safe_open

    with safe_open(tmp_path / "model.safetensors", framework="pt") as f:
        config = json.loads(f.metadata()["config"]) | {"version": 1}
        old = {k.replace(".matrix", ""): f.get_tensor(k) for k in f.keys()}
    assert "model.network.blocks.0.read" in old and "model.network.embed" in old
    save_file(old, tmp_path / "old.safetensors", metadata={"config": json.dumps(config)})
    (tmp_path / "old.json").write_text(json.dumps(config))
    loaded, _ = load_trained(tmp_path / "old.safetensors")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_nothing_is_ever_unpickled():
    root = Path(__file__).resolve().parent.parent
    for folder in ("layers", "circuits", "scenarios"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            assert "torch.load(" not in text and "import pickle" not in text, path


def test_probes_recover_an_exact_read_out():
    ded = compile_dedicated(CIRCUIT)
    probed = fit_probes(ded, CIRCUIT, 2, 2000, seed=1)
    rows = trace_noise(CIRCUIT, {"p": probed.read_features}, ExactlyActive(24, 2, 5), 2000, progress=False)["p"]
    assert all(r.wrong_features == 0 and r.mse < 1e-4 for r in rows)  # ridge shrinks by ~1e-3


def test_default_comparison_trains_to_99_percent():
    r = scenarios.run("trained-vs-handbuilt")
    s = r.summary
    assert s["accuracy_trained"] >= 0.99 and s["accuracy_trained_heads"] >= 0.99
    assert s["accuracy_handbuilt"] >= 0.99 and s["accuracy_dedicated"] == 1.0
    assert s["intended_share_dedicated"] == 1.0 and s["intended_share_handbuilt"] < 1.0
    assert all(row["wrong_features_dedicated"] == 0 for row in r.rows)
    assert r.rows[1]["neurons_trained"] == r.rows[1]["neurons_handbuilt"] == 64
