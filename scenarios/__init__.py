"""What a person runs: scenarios, their registry and the ``superposim`` command.

Importing this package is cheap: the parts that need torch load on first use.
"""

import importlib

from scenarios.catalog import VERSION
from scenarios.params import Param, UsageError, require

_LAZY = {
    "Context": "scenarios.registry",
    "Outcome": "scenarios.registry",
    "Scenario": "scenarios.registry",
    "describe": "scenarios.registry",
    "load": "scenarios.registry",
    "run": "scenarios.registry",
    "networks": "scenarios.registry",
    "Result": "scenarios.result",
    "sweep": "scenarios.sweeps",
    "load_store": "scenarios.sweeps",
    "SweepResult": "scenarios.sweeps",
}

__all__ = ["VERSION", "Param", "UsageError", "require", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scenarios' has no attribute {name!r}")
