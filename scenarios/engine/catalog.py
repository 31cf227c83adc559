"""The built-in scenarios by name: module and one-line description, known without importing
torch, so that ``superposim list`` and ``--help`` answer at once. A test keeps each line equal
to the scenario's own description."""

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

BUILTIN: dict[str, tuple[str, str]] = {
    "circuit": ("scenarios.library.costs.circuit",
                "a random circuit compiled superposed and dedicated: wrong gate outputs per layer"),
    "sparsity": ("scenarios.library.costs.sparsity",
                 "the first price: interference and false positives against the number of active features"),
    "booleanish": ("scenarios.library.costs.booleanish",
                   "the second price: clean-up removes interference only from boolean-ish features"),
    "compounding-noise": ("scenarios.library.costs.compounding_noise",
                          "error against depth: superposed relay with clean-up off and on, against theory and the "
                          "dedicated twin"),
    "cost-ledger": ("scenarios.library.costs.cost_ledger",
                    "neurons, parameters and affordable sparsity of each network at a target error"),
    "trained-vs-handbuilt": ("scenarios.library.trained.trained_vs_handbuilt",
                             "a trained network against the hand-built superposed one and the dedicated twin"),
    "u-and": ("scenarios.library.constructions.u_and",
              "Universal-AND: error of each case against docs/theory.md's law, against d, p and d0"),
    "u-and-depth": ("scenarios.library.constructions.u_and_depth",
                    "stacked U-AND layers: the naive stack against one with error correction"),
    "circuits-in-superposition": ("scenarios.library.constructions.circuits_in_superposition",
                                  "T small boolean circuits in one network with z active (2025 or 2024 construction): "
                                  "error by layer, capacity"),
    "rotations-in-superposition": ("scenarios.library.constructions.rotations_in_superposition",
                                   "conditional rotations in superposition (2025 construction): error by layer vs "
                                   "eq. 6.55/6.57"),
    "toy-models": ("scenarios.library.toys.toy_models",
                   "Toy Models of Superposition: features in fewer dimensions by sparsity; geometry and "
                   "dimensionality"),
    "trained-u-and": ("scenarios.library.toys.trained_u_and",
                      "a layer trained on all pairwise ANDs against the hand-built Universal-AND: error, density, "
                      "classes"),
    "compressed-computation": ("scenarios.library.toys.compressed_computation",
                               "the residual-MLP toy: does it compute in superposition, or exploit its "
                               "embedding's mixing?"),
    "compressed-storage": ("scenarios.library.toys.compressed_storage",
                           "T Bernoulli features in D dimensions, read linearly: random, dedicated and trained "
                           "storage"),
    "block-superposition": ("scenarios.library.constructions.block_superposition",
                            "block-structured circuits in superposition: exact for one active circuit, (D/d)^2 "
                            "circuits"),
}


def check_name(name: str) -> None:
    """A built-in name, or something that reads as a script path; anything else is refused."""
    from scenarios.engine.params import UsageError

    if not (name in BUILTIN or name.endswith(".py") or "/" in name):
        raise UsageError(f"unknown scenario {name!r}; valid: {', '.join(BUILTIN)} or a path to a .py script")


# Every built-in's parameter table (name, type and bounds, default, help), and the training
# parameters that ``train`` adds, kept in parameters.json so that help answers without torch.
# ``make parameters`` rewrites it from the scenarios; a test keeps the two equal.
PARAMETERS = Path(__file__).with_name("parameters.json")
TRAIN_KEY = "(train)"


def parameter_rows(name: str) -> list[list[str]]:
    """The stored parameter table of a built-in scenario (or of ``TRAIN_KEY``)."""
    return json.loads(PARAMETERS.read_text())["tables"][name]


def live_parameter_tables() -> dict[str, list[list[str]]]:
    """The tables as the scenarios declare them now (imports every scenario, so torch)."""
    import importlib

    from scenarios.engine.training import TRAIN_PARAMS

    def rows(params) -> list[list[str]]:
        return [[key, p.describe(), show_default(p.default), p.help] for key, p in params.items()]

    tables = {name: rows(importlib.import_module(module).scenario.params) for name, (module, _) in BUILTIN.items()}
    return tables | {TRAIN_KEY: rows(TRAIN_PARAMS)}


def show_default(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def write_parameter_tables() -> Path:
    """Rewrite parameters.json from the scenarios (``make parameters``)."""
    from layers.files import write_atomic

    tables = live_parameter_tables()
    lines = [",\n".join(f"  {json.dumps(name)}: [\n" + ",\n".join("   " + json.dumps(r) for r in rows) + "\n  ]"
                        for name, rows in tables.items())]
    text = '{"schema": "superposim-parameter-tables", "version": 1, "tables": {\n' + lines[0] + "\n}}\n"
    return write_atomic(PARAMETERS, text.encode())
