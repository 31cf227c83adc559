"""``superposim train``: train a network on a scenario's circuit, with checkpoints and resume."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from layers.checkpoint import save_weights
from scenarios.engine.catalog import catalog_entry
from scenarios.engine.outputs import check_out_file
from scenarios.engine.params import UsageError, resolve
from scenarios.engine.registry import BUILTIN, TRAIN_NEEDS, Context, load, parse_device
from scenarios.engine.training import TRAIN_PARAMS, require_training_memory, train_networks

# What a training run writes into its folder.
RUN_FILES = ("checkpoint.safetensors", "checkpoint.json", "model.safetensors", "model.json",
             "probes.safetensors", "probes.json")


def _checkpoint_step(twin: Path) -> int | None:
    """The step a checkpoint holds, from its JSON twin (None when that cannot be read: the
    resume itself then says what is wrong with the checkpoint)."""
    try:
        step = json.loads(twin.read_text()).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def train_command(args: argparse.Namespace, sets: dict[str, str]) -> int:
    scenario = load(args.name)
    if not scenario.trainable:
        usable = [n for n in BUILTIN if catalog_entry(n)["trainable"]]
        raise UsageError(f"scenario {scenario.name!r} builds no circuit to train on: a trainable scenario passes "
                         "trainable=True and networks=FUNCTION to Scenario(...), returning {'superposed': ..., "
                         "'dedicated': ...} compiled from one circuit, and has the parameters "
                         f"{', '.join(TRAIN_NEEDS)} (as examples/my_relay.py does); trainable built-ins: "
                         f"{', '.join(usable)}")
    seed = 0 if args.seed is None else args.seed
    if seed < 0:
        raise UsageError(f"--seed: must be >= 0, got {seed}")
    spec = dict(scenario.params) | {k: v for k, v in TRAIN_PARAMS.items() if k not in scenario.params}
    values = resolve(spec, sets)
    if scenario.check is not None:
        scenario.check(values)
    require_training_memory(values)
    ctx = Context(seed=seed, device=parse_device("cpu"), progress=not args.quiet)
    out = Path(args.out) if args.out else None
    if out is None or not str(args.out).strip():
        raise UsageError("--out: expected a folder, got an empty path")
    for name in RUN_FILES:  # a bad folder is found now, not after the training
        check_out_file(out / name, "--out")
    ckpt = out / "checkpoint.safetensors"
    if args.resume and not ckpt.is_file():
        raise UsageError(f"--resume: no checkpoint in {str(out)!r}")
    if args.resume:
        done = _checkpoint_step(out / "checkpoint.json")
        if done is not None and done > values.steps:
            raise UsageError(f"--resume: the checkpoint in {str(out)!r} is at step {done}, past steps="
                             f"{values.steps}: nothing would be trained; raise steps to continue")
    if not args.resume and any((out / name).exists() for name in RUN_FILES):
        raise UsageError(f"--out: {str(out)!r} holds an earlier training run; continue it with --resume "
                         "or choose another --out")
    before = ckpt.stat().st_mtime_ns if ckpt.is_file() else None
    start = time.perf_counter()
    built = train_networks(values, ctx, out_dir=out, resume=args.resume, build=scenario.networks)
    state, trained = built["state"], built["trained"]
    probes = {f"probe.{t}.weight": w.dense() for t, w in enumerate(trained.readouts)}
    probes |= {f"probe.{t}.bias": b for t, b in enumerate(trained.readout_bias)}
    save_weights(out / "probes.safetensors", probes, {"kind": "probes", "layers": len(trained.readouts)})
    last = state.history[-1] if state.history else {"loss": float("nan"), "accuracy": []}
    done = "" if state.step < values.steps or not args.resume else f" (steps={values.steps} reached)"
    print(f"trained to step {state.step} in {time.perf_counter() - start:.1f} s"
          f"{' (stopped early)' if state.stopped_early else done}; last loss {last['loss']:.4g}, "
          f"batch accuracy by layer {', '.join(f'{a:.4f}' for a in last['accuracy'])}")
    changed = ckpt.is_file() and ckpt.stat().st_mtime_ns != before
    for name in ("model.safetensors", "model.json") + (("checkpoint.safetensors",) if changed else ()) + \
            ("probes.safetensors",):
        print(f"wrote {out / name}")
    return 0
