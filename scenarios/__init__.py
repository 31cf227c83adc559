"""What a person runs: scenarios, their registry and the ``superposim`` command."""

from scenarios.params import Param, UsageError, require
from scenarios.registry import VERSION, Context, Outcome, Scenario, describe, load, run
from scenarios.result import Result

__all__ = [
    "VERSION",
    "Context",
    "Outcome",
    "Param",
    "Result",
    "Scenario",
    "UsageError",
    "describe",
    "load",
    "require",
    "run",
]
