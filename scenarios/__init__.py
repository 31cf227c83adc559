"""What a person runs: scenarios, their registry and the ``superposim`` command.

Importing this package is cheap: the parts that need torch load on first use.
"""

import importlib

from scenarios.engine.catalog import VERSION
from scenarios.engine.params import Param, UsageError, Values, require

_LAZY = {
    "Context": "scenarios.engine.registry",
    "Outcome": "scenarios.engine.registry",
    "Scenario": "scenarios.engine.registry",
    "describe": "scenarios.engine.registry",
    "load": "scenarios.engine.registry",
    "run": "scenarios.engine.registry",
    "networks": "scenarios.engine.registry",
    "Result": "scenarios.engine.result",
    "sweep": "scenarios.engine.sweeps",
    "load_store": "scenarios.engine.sweeps",
    "SweepResult": "scenarios.engine.sweeps",
    "export": "scenarios.engine.export",
    "load_export": "scenarios.engine.export",
    "score": "scenarios.engine.score",
}

__all__ = ["VERSION", "Param", "UsageError", "Values", "require", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scenarios' has no attribute {name!r}")
