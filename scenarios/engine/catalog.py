"""The built-in scenarios by name and module, and what ``superposim list`` and ``--help`` show of
each (description, parameters, devices, what it builds), known without importing torch so that
they answer at once. Each scenario's own record decides those; ``catalog.json`` is written from
the records (``make catalog``) and a test keeps the two equal."""

from __future__ import annotations

import json
from pathlib import Path


def _version() -> str:
    """The installed package's version (pyproject.toml decides it once)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("superposim")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+source"


VERSION = _version()

BUILTIN: dict[str, str] = {
    "circuit": "scenarios.library.costs.circuit",
    "sparsity": "scenarios.library.costs.sparsity",
    "booleanish": "scenarios.library.costs.booleanish",
    "compounding-noise": "scenarios.library.costs.compounding_noise",
    "cost-ledger": "scenarios.library.costs.cost_ledger",
    "trained-vs-handbuilt": "scenarios.library.trained.trained_vs_handbuilt",
    "u-and": "scenarios.library.constructions.u_and",
    "u-and-depth": "scenarios.library.constructions.u_and_depth",
    "circuits-in-superposition": "scenarios.library.constructions.circuits_in_superposition",
    "rotations-in-superposition": "scenarios.library.constructions.rotations_in_superposition",
    "toy-models": "scenarios.library.toys.toy_models",
    "trained-u-and": "scenarios.library.toys.trained_u_and",
    "compressed-computation": "scenarios.library.toys.compressed_computation",
    "compressed-storage": "scenarios.library.toys.compressed_storage",
    "superposition-scaling": "scenarios.library.toys.superposition_scaling",
    "block-superposition": "scenarios.library.constructions.block_superposition",
    "break-even": "scenarios.library.constructions.break_even",
    "emulation-capacity": "scenarios.library.constructions.emulation_capacity",
    "ground-truth-baselines": "scenarios.library.interpretability.ground_truth_baselines",
}


def check_name(name: str) -> None:
    """A built-in name, or something that reads as a script path; anything else is refused."""
    from scenarios.engine.params import UsageError

    if not (name in BUILTIN or name.endswith(".py") or "/" in name):
        raise UsageError(f"unknown scenario {name!r}; valid: {', '.join(BUILTIN)} or a path to a .py script")


CATALOG = Path(__file__).with_name("catalog.json")
TRAIN_KEY = "(train)"


def catalog_entry(name: str) -> dict:
    """What the catalog holds of a built-in scenario: ``description``, ``devices``,
    ``builds_networks``, ``trainable``, ``cost`` and ``parameters`` (rows of name, type and
    bounds, default, help); ``TRAIN_KEY`` holds the parameters ``train`` adds."""
    return json.loads(CATALOG.read_text())["scenarios"][name]


def live_catalog() -> dict[str, dict]:
    """The entries as the scenarios declare them now (imports every scenario, so torch)."""
    import importlib

    from scenarios.engine.training import TRAIN_PARAMS

    def rows(params: dict) -> list[list[str]]:
        return [[key, p.describe(), show_default(p.default), p.help] for key, p in params.items()]

    entries = {}
    for name, module in BUILTIN.items():
        sc = importlib.import_module(module).scenario
        entries[name] = {"description": sc.description, "devices": list(sc.devices),
                         "builds_networks": sc.builds_networks, "exportable": sc.exportable,
                         "trainable": sc.trainable, "cost": sc.cost,
                         "parameters": rows(sc.params)}
    return entries | {TRAIN_KEY: {"parameters": rows(TRAIN_PARAMS)}}


def show_default(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def write_catalog() -> Path:
    """Rewrite catalog.json from the scenarios (``make catalog``)."""
    from layers.files import write_atomic

    body = ",\n".join(f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in live_catalog().items())
    text = '{"schema": "superposim-catalog", "version": 1, "scenarios": {\n' + body + "\n}}\n"
    return write_atomic(CATALOG, text.encode())
