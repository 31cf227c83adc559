"""Scenarios: what a person runs. A scenario declares its parameters and a function that
turns resolved parameters into rows, a summary and figures; ``run`` wraps that into a Result."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from matplotlib.figure import Figure

from circuits.spec import CircuitError
from layers.philox import DRAWS
from layers.training import CheckpointError, TrainingDiverged
from scenarios.engine.catalog import BUILTIN, VERSION, catalog_entry, check_name
from scenarios.engine.params import Param, UsageError, resolve
from scenarios.engine.result import Result

__all__ = ["BUILTIN", "VERSION", "Context", "Outcome", "Scenario", "describe", "load", "networks", "redraw", "run"]

# The built-in scenarios live in ``scenarios.engine.catalog`` (name -> module, description).
M = TypeVar("M", bound=torch.nn.Module)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Outcome:
    """What a scenario's body returns: rows, a summary, the column order of the table, and the
    data its figures need beyond rows and summary (kept in result.json, so figures redraw)."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    columns: list[str] | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Run-wide settings: the seed (every random thing derives its own from it), the device,
    whether to show progress, and how random draws are made (``layers.philox.DRAWS``: "torch"
    generators on the CPU, or "counter" draws made on the device)."""

    seed: int
    device: torch.device
    progress: bool = False
    draws: str = "torch"

    def seed_for(self, purpose: str) -> int:
        """A seed of its own for each purpose, so adding a random draw elsewhere changes nothing here."""
        digest = hashlib.sha256(f"{self.seed}:{purpose}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)

    def place(self, network: M) -> M:
        """A network (any module: everything a construction carries is registered on it) moved to
        the run's device; every network a scenario computes with passes through here."""
        return network.to(self.device)

    def generator(self, purpose: str) -> torch.Generator:
        """A CPU generator (used to build weights and circuits, identical on every device)."""
        return torch.Generator().manual_seed(self.seed_for(purpose))


COSTS = ("seconds", "minutes")
# What ``superposim train`` needs of a scenario besides ``networks``: the circuit's inputs, the
# stream width and the number of active inputs.
TRAIN_NEEDS = ("m", "n", "active")


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """What a person runs, as one record: its name and one-line description, its parameters, the
    body that turns them into rows, a summary and figures, and what else the framework needs to
    know of it."""

    name: str
    description: str
    params: Mapping[str, Param]
    body: Callable[[Any, Context], Outcome]
    check: Callable[[Any], None] | None = None
    # For scenarios that build networks: name -> CompiledNetwork, as ``body`` builds them (graphs
    # and ``train`` read them; the framework places them on the run's device).
    networks: Callable[[Any, Context], dict[str, Any]] | None = None
    # For ``superposim export``: name -> a function building that network (a CompiledNetwork or a
    # ``circuits.exportable.ExportView``), so only the one exported is built (a trained one
    # trains); by default the networks above.
    exports: Callable[[Any, Context], dict[str, Callable[[], Any]]] | None = None
    # Its figures by file name, each drawn from the Result alone (rows, summary, data, params), so
    # that ``superposim redraw`` draws a stored run's figures again without recomputing; a figure
    # that does not apply to a run returns None.
    figures: Mapping[str, Callable[[Result], Figure | None]] = field(default_factory=dict)
    # Closed-form lines for a phase diagram of a sweep over (x, y), given the fixed parameters:
    # [(label, xs, ys)], drawn by ``superposim report`` over the measured map.
    phase_lines: Callable[[str, str, Any], list[tuple[str, list, list]]] | None = None
    # The devices its body computes on; another is refused rather than silently ignored.
    devices: tuple[str, ...] = ("cpu", "cuda")
    # The kinds of random draws its body honours (``Context.draws``); another is refused.
    draws: tuple[str, ...] = ("torch",)
    # ``superposim train`` can train a network on its circuit: ``networks`` returns
    # {"superposed", "dedicated"} compiled from one circuit, and it has TRAIN_NEEDS.
    trainable: bool = False
    # How long a run at the defaults takes on two CPU cores; "minutes" marks its default-size
    # test slow.
    cost: str = "seconds"

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise TypeError(f"Scenario {self.name!r}: cost must be one of {', '.join(COSTS)}, got {self.cost!r}")
        missing = [k for k in TRAIN_NEEDS if k not in self.params]
        if self.trainable and (self.networks is None or missing):
            raise TypeError(f"Scenario {self.name!r} is trainable only with networks= and the parameters "
                            f"{', '.join(TRAIN_NEEDS)}" + (f" (missing {', '.join(missing)})" if missing else ""))

    @property
    def builds_networks(self) -> bool:
        return self.networks is not None

    @property
    def exportable(self) -> bool:
        return self.networks is not None or self.exports is not None


def load(name: str | os.PathLike) -> Scenario:
    """A built-in scenario by name, or a user's script by path (it must define ``scenario``)."""
    if isinstance(name, os.PathLike):
        return _load_script(Path(name))
    if not isinstance(name, str):
        raise UsageError(f"scenario: expected a name or a path to a .py script, got {name!r}")
    if name.endswith(".py") or "/" in name:
        return _load_script(Path(name))
    check_name(name)
    return importlib.import_module(BUILTIN[name]).scenario


def _load_script(path: Path) -> Scenario:
    if not path.is_file():
        raise UsageError(f"scenario script {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"superposim_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{str(path)!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # a user's script: report, don't trace back
        raise UsageError(f"{str(path)!r} failed to import: {type(err).__name__}: {err}") from err
    found = getattr(module, "scenario", None)
    if not isinstance(found, Scenario):
        raise UsageError(f"{str(path)!r} defines no 'scenario = Scenario(...)'")
    if not isinstance(found.name, str) or not NAME_PATTERN.match(found.name) or ".." in found.name:
        raise UsageError(f"{str(path)!r}: scenario name {found.name!r} may hold letters, digits, '.', '-' and '_' "
                         "only (it names the output folder)")
    return found


def parse_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"device: {device!r} is not a device; valid: cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device: cuda was asked for but no CUDA device is available; valid: cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"device: {device!r} is not supported; valid: cpu, cuda, cuda:N")
    return dev


def _prepare(name: str, seed: int, device: str | torch.device, progress: bool, params: dict,
             draws: str = "torch"):
    scenario = load(name)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed: expected a non-negative integer, got {seed!r}")
    values = resolve(scenario.params, params)
    if scenario.check is not None:
        scenario.check(values)
    kind = _device_type(device)
    if kind is not None and kind not in scenario.devices:
        raise UsageError(f"device: {scenario.name} computes on the {' or '.join(scenario.devices)} only; "
                         f"{device!s} would change nothing")
    if draws not in DRAWS:
        raise UsageError(f"draws: {draws!r} is not a kind of draws; valid: {', '.join(DRAWS)}")
    if draws not in scenario.draws:
        raise UsageError(f"draws: {scenario.name} makes its random draws with {' or '.join(scenario.draws)} only; "
                         f"{draws} would change nothing")
    return scenario, values, Context(seed=seed, device=parse_device(device), progress=progress, draws=draws)


def _device_type(device: str | torch.device) -> str | None:
    try:
        return torch.device(device).type
    except (RuntimeError, TypeError):
        return None  # parse_device says what is wrong with it


def networks(name: str, *, seed: int = 0, device: str | torch.device = "cpu", draws: str = "torch",
             **params: Any) -> dict[str, Any]:
    """The compiled networks a scenario builds (for graphs), keyed by name."""
    scenario, values, ctx = _prepare(name, seed, device, False, params, draws)
    if not scenario.builds_networks:
        graphable = [n for n in BUILTIN if catalog_entry(n)["builds_networks"]]
        raise UsageError(f"scenario {scenario.name!r} builds no network to graph; graphable: {', '.join(graphable)}")
    return {key: ctx.place(net) for key, net in scenario.networks(values, ctx).items()}


def export_builders(name: str, *, seed: int = 0, **params: Any) -> tuple[Scenario, Any, Context,
                                                                         dict[str, Callable[[], Any]]]:
    """What ``export`` needs of a scenario: its record, resolved parameters, context, and a
    builder per network it can export (on the CPU: an export is written from there)."""
    scenario, values, ctx = _prepare(name, seed, "cpu", False, params)
    if scenario.exports is not None:
        return scenario, values, ctx, scenario.exports(values, ctx)
    if scenario.networks is None:
        exportable = [n for n in BUILTIN if catalog_entry(n).get("exportable")]
        raise UsageError(f"scenario {scenario.name!r} builds no network to export; exportable: {', '.join(exportable)}")
    built = scenario.networks(values, ctx)
    return scenario, values, ctx, {key: (lambda net=net: net) for key, net in built.items()}


def run(
    name: str,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    draws: str = "torch",
    **params: Any,
) -> Result:
    """Run a scenario (built-in name or script path) and return its Result; ``draws="counter"``
    makes its random draws with the counter-based generator (on the device), where the scenario
    honours it."""
    scenario, values, ctx = _prepare(name, seed, device, progress, params, draws)
    try:
        outcome = scenario.body(values, ctx)
    except (CircuitError, TrainingDiverged, CheckpointError) as err:  # settings that fail while building
        raise UsageError(str(err)) from None
    except (torch.cuda.OutOfMemoryError, RuntimeError) as err:  # past what the memory guard foresaw
        if not _out_of_memory(err):
            raise
        raise UsageError(f"{scenario.name}: ran out of memory on {ctx.device} ({_first_line(err)}); "
                         "try smaller sizes") from None
    _check_outcome(scenario, outcome)
    result = Result(
        scenario=scenario.name,
        params=values.to_dict(),
        seed=seed,
        version=VERSION,
        rows=outcome.rows,
        summary=outcome.summary,
        columns=outcome.columns,
        data=outcome.data,
        source=_source(name),
        draws=draws,
    )
    return with_figures(result, scenario)


def _source(name: str | os.PathLike) -> str | None:
    """A script's absolute path (what an experiment file names to repeat its run); None for a
    built-in."""
    return None if isinstance(name, str) and name in BUILTIN else str(Path(name).resolve())


def _check_outcome(scenario: Scenario, outcome: Outcome) -> None:
    """What a body returned is an Outcome of rows, a summary, column names and data; figures
    passed the earlier way (a dict of closures as the third item) are refused, not misread."""
    if not isinstance(outcome, Outcome):
        raise UsageError(f"{scenario.name}: its body returned {type(outcome).__name__}, not an Outcome")
    columns = outcome.columns
    if isinstance(columns, dict) and any(callable(v) for v in columns.values()):
        raise UsageError(f"{scenario.name}: figures are declared on the scenario, drawn from its result: "
                         "Scenario(..., figures={'name': function(result) -> Figure}); Outcome(rows, summary, "
                         "columns=..., data=...) no longer takes them")
    if columns is not None and not (isinstance(columns, list | tuple) and all(isinstance(c, str) for c in columns)):
        raise UsageError(f"{scenario.name}: Outcome columns must be a list of row keys, got {columns!r}")
    if not isinstance(outcome.data, dict):
        raise UsageError(f"{scenario.name}: Outcome data must be a dict, got {type(outcome.data).__name__}")


def with_figures(result: Result, scenario: Scenario) -> Result:
    """The result with its scenario's figures attached, each drawn from the result alone."""
    result.figures = {name: partial(draw, result) for name, draw in scenario.figures.items()}
    return result


def redraw(run_dir: str | os.PathLike, scenario: str | os.PathLike | None = None) -> Result:
    """A stored run (its result.json) with its figures attached again, nothing recomputed; the
    scenario is the one the result names, or ``scenario`` (a script's path) when given."""
    path = Path(run_dir) / "result.json"
    if not path.is_file():
        raise UsageError(f"{str(run_dir)!r} holds no result.json to redraw")
    try:
        result = Result.load(path)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if scenario is None and result.scenario not in BUILTIN:
        raise UsageError(f"{str(path)!r} is a run of the script {result.scenario!r}: name the script "
                         "(superposim redraw DIR --scenario PATH.py)")
    found = load(scenario if scenario is not None else result.scenario)
    if found.name != result.scenario:
        raise UsageError(f"{str(path)!r} is a run of {result.scenario!r}, not of {found.name!r}")
    if scenario is not None:
        result.source = _source(scenario)
    return with_figures(result, found)


def _out_of_memory(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, torch.cuda.OutOfMemoryError) or "can't allocate memory" in text or "out of memory" in text


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__


def describe() -> list[tuple[str, str]]:
    """(name, one-line description) of every built-in scenario."""
    return [(name, catalog_entry(name)["description"]) for name in BUILTIN]
