"""``superposim train``: train a network on a scenario's circuit, with checkpoints and resume."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from layers.checkpoint import WeightFileError, save_weights
from scenarios.params import UsageError, resolve
from scenarios.registry import BUILTIN, Context, load, parse_device
from scenarios.trained_vs_handbuilt import TRAIN_PARAMS, train_networks


def train_command(args: argparse.Namespace, sets: dict[str, str]) -> int:
    scenario = load(args.name)
    if scenario.networks is None:
        usable = [n for n in BUILTIN if load(n).networks is not None]
        raise UsageError(f"scenario {scenario.name!r} builds no circuit to train on; valid: {', '.join(usable)}")
    if args.seed < 0:
        raise UsageError(f"--seed: must be >= 0, got {args.seed}")
    spec = dict(scenario.params) | {k: v for k, v in TRAIN_PARAMS.items() if k not in scenario.params}
    values = resolve(spec, sets)
    if scenario.check is not None:
        scenario.check(values)
    ctx = Context(seed=args.seed, device=parse_device("cpu"), progress=not args.quiet)
    out = Path(args.out)
    if args.resume and not (out / "checkpoint.safetensors").is_file():
        raise UsageError(f"--resume: no checkpoint in {str(out)!r}")
    start = time.perf_counter()
    try:
        built = train_networks(values, ctx, out_dir=out, resume=args.resume, build=scenario.networks)
    except WeightFileError as err:
        raise UsageError(str(err)) from None
    except ValueError as err:  # a checkpoint trained with other settings
        raise UsageError(f"--resume: {err}") from None
    state, trained = built["state"], built["trained"]
    probes = {f"probe.{t}.weight": w for t, w in enumerate(trained.readouts)}
    probes |= {f"probe.{t}.bias": b for t, b in enumerate(trained.readout_bias)}
    save_weights(out / "probes.safetensors", probes, {"kind": "probes", "layers": len(trained.readouts)})
    last = state.history[-1] if state.history else {"loss": float("nan"), "accuracy": []}
    print(f"trained {state.step} steps in {time.perf_counter() - start:.1f} s"
          f"{' (stopped early)' if state.stopped_early else ''}; last loss {last['loss']:.4g}, "
          f"batch accuracy by layer {', '.join(f'{a:.4f}' for a in last['accuracy'])}")
    for name in ("model.safetensors", "model.json", "checkpoint.safetensors", "probes.safetensors"):
        print(f"wrote {out / name}")
    return 0
