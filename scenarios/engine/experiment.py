"""Experiment files: a run or a sweep as a TOML file instead of a line of flags.

A run's file holds ``scenario`` (a built-in name or a script's path), ``seed``, ``draws`` (when
not "torch") and a ``[params]`` table; a sweep's file adds ``seeds``, ``store``, ``backend``,
``jobs`` and a ``[grid]`` table of lists. Flags on the command line override the file. Every run writes its resolved
``experiment.toml`` beside result.json, so ``superposim run --config RUN/experiment.toml``
repeats it. Unknown keys and bad values get the command line's one-line errors, naming the file
and the key.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenarios.engine.params import UsageError

EXPERIMENT = "experiment.toml"
RUN_KEYS = ("scenario", "seed", "draws", "params")
SWEEP_KEYS = ("scenario", "params", "grid", "seeds", "store", "backend", "jobs")


@dataclass
class Experiment:
    """What an experiment file says; ``path`` names it in errors."""

    path: Path
    scenario: str | None = None
    seed: int | None = None
    draws: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: str | None = None
    store: str | None = None
    backend: str | None = None
    jobs: int | None = None

    def where(self, key: str) -> str:
        return f"{str(self.path)!r}: {key}"


def load_experiment(path: str | Path, kind: str) -> Experiment:
    """Read a ``run`` or ``sweep`` experiment file, checking its keys and their types."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--config: {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"--config: {str(path)!r} is not readable TOML ({err})") from None
    allowed = RUN_KEYS if kind == "run" else SWEEP_KEYS
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise UsageError(f"{str(path)!r}: unknown key {unknown[0]!r}; a {kind} file takes {', '.join(allowed)}")
    exp = Experiment(path)
    exp.scenario = _typed(exp, raw, "scenario", str)
    exp.seed = _typed(exp, raw, "seed", int)
    if exp.seed is not None and exp.seed < 0:
        raise UsageError(f"{exp.where('seed')}: expected a non-negative integer, got {exp.seed}")
    exp.params = _table(exp, raw, "params")
    if kind == "run":
        exp.draws = _typed(exp, raw, "draws", str)
    if kind == "sweep":
        exp.grid = _table(exp, raw, "grid")
        bad = [k for k, v in exp.grid.items() if not isinstance(v, list) or not v]
        if bad:
            raise UsageError(f"{exp.where(f'grid.{bad[0]}')}: expected a non-empty list of values")
        seeds = raw.get("seeds")
        if seeds is not None and not isinstance(seeds, str | int | list):
            raise UsageError(f"{exp.where('seeds')}: expected a range like \"0-9\", a seed or a list of seeds")
        if isinstance(seeds, list):
            seeds = ",".join(str(s) for s in seeds)
        exp.seeds = None if seeds is None else str(seeds)
        exp.store = _typed(exp, raw, "store", str)
        exp.backend = _typed(exp, raw, "backend", str)
        exp.jobs = _typed(exp, raw, "jobs", int)
    return exp


def _typed(exp: Experiment, raw: dict[str, Any], key: str, kind: type) -> Any:
    value = raw.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise UsageError(f"{exp.where(key)}: expected {'an integer' if kind is int else 'a string'}, got {value!r}")
    return value


def _table(exp: Experiment, raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{exp.where(key)}: expected a table [{key}] of KEY = VALUE")
    nested = [k for k, v in value.items() if isinstance(v, dict)]
    if nested:
        raise UsageError(f"{exp.where(f'{key}.{nested[0]}')}: expected a value, got a table")
    return dict(value)


def in_file(exp: Experiment | None, section: str, err: UsageError) -> UsageError:
    """An error about a parameter, naming the file when the parameter came from it."""
    return err if exp is None else UsageError(f"{str(exp.path)!r} [{section}]: {err}")


def experiment_text(scenario: str, seed: int, params: dict[str, Any], draws: str = "torch") -> str:
    """The resolved experiment of a run, as TOML that ``load_experiment`` reads back."""
    lines = ["# the resolved experiment of this run: superposim run --config THIS_FILE repeats it",
             f"scenario = {_toml(scenario)}", f"seed = {seed}"]
    lines += [f"draws = {_toml(draws)}"] if draws != "torch" else []
    lines += ["", "[params]"]
    lines += [f"{key} = {_toml(value)}" for key, value in params.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no TOML form a parameter can take")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: the same escapes
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"a parameter of type {type(value).__name__} has no TOML form")
