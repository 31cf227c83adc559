"""Scenario parameters: declared once, parsed from the command line or Python, validated.

A run's parameters are a frozen typed record after validation (``p.m``, one field per
parameter, lists as tuples) and are written whole into its result, so that they determine the
run. Unknown keys, wrong types and out-of-range values raise UsageError with one line naming
the item and what is allowed; a default that is not a value of its own parameter is refused
when the parameter is declared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from layers.errors import SuperposimError


class UsageError(SuperposimError, ValueError):
    """Bad input from a user: reported as one line, exit code 2."""


_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class Param:
    """One parameter: its default, type (``int``, ``float``, ``str``, ``bool`` or a list of
    one of those, e.g. ``list[int]``), allowed choices, inclusive bounds, and an exclusive lower
    bound ``above`` for a value that does nothing at the bound (a learning rate of 0). A list
    holds distinct values (each a setting to run) unless ``repeats`` allows the same one twice."""

    default: Any
    help: str
    kind: str = "int"
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    above: float | None = None
    repeats: bool = False

    def __post_init__(self) -> None:
        if self.scalar not in _SCALARS or (self.is_list and not self.kind.endswith("]")):
            raise TypeError(f"Param kind {self.kind!r}: expected int, float, str, bool or list[...] of one")
        try:
            default = self.parse("default", self.default)
        except UsageError as err:
            raise TypeError(f"Param default {self.default!r} is not a value of its own parameter: {err}") from None
        object.__setattr__(self, "default", default)  # a list default is held as the tuple parse gives

    @property
    def python_type(self) -> Any:
        return _python_type(self.kind)

    @property
    def is_list(self) -> bool:
        return self.kind.startswith("list[")

    @property
    def scalar(self) -> str:
        return self.kind[5:-1] if self.is_list else self.kind

    def describe(self) -> str:
        allowed = []
        if self.choices:
            allowed.append("one of " + "|".join(self.choices))
        if self.above is not None:
            allowed.append(f"> {self.above:g}")
        if self.low is not None:
            allowed.append(f">= {self.low:g}")
        if self.high is not None:
            allowed.append(f"<= {self.high:g}")
        kind = f"comma-separated {self.scalar}s" if self.is_list else self.scalar
        return kind + (" " + ", ".join(allowed) if allowed else "")

    def parse(self, key: str, value: Any) -> Any:
        """Turn a command-line string or a Python value into a checked value."""
        if self.is_list:
            if hasattr(value, "tolist") and not isinstance(value, str):  # a numpy array or a tensor
                value = value.tolist()
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not items:
                raise UsageError(f"{key}: expected {self.describe()}, got {value!r}")
            values = tuple(self._one(key, item) for item in items)
            twice = [v for i, v in enumerate(values) if v in values[:i]]
            if twice and not self.repeats:
                raise UsageError(f"{key}: {twice[0]!r} is given twice; each value is one setting to run, give it once")
            return values
        return self._one(key, value)

    def _one(self, key: str, value: Any) -> Any:
        target = _SCALARS[self.scalar]
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy or 0-d torch scalars
            value = value.item()
        try:
            if isinstance(value, str):
                value = value.strip()
                if target is bool:
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value = value.lower() in ("true", "1", "yes")
                else:
                    value = target(value)
            elif target is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, target) or (target is not bool and isinstance(value, bool)):
                raise ValueError
        except ValueError:
            raise UsageError(f"{key}: expected {self.describe()}, got {value!r}") from None
        if target is float and value != value:
            raise UsageError(f"{key}: NaN is not a value")
        if target is float and value in (float("inf"), float("-inf")):
            raise UsageError(f"{key}: must be finite, got {value}")
        if self.choices is not None and value not in self.choices:
            raise UsageError(f"{key}: {value!r} is not one of {', '.join(self.choices)}")
        if self.above is not None and not value > self.above:
            raise UsageError(f"{key}: must be > {self.above:g}, got {value}")
        if self.low is not None and value < self.low:
            raise UsageError(f"{key}: must be >= {self.low:g}, got {value}")
        if self.high is not None and value > self.high:
            raise UsageError(f"{key}: must be <= {self.high:g}, got {value}")
        return value


class Values:
    """Base of the typed records ``resolve`` returns: fields read as ``p.m``; ``to_dict`` gives
    them as a plain dict; ``p.m`` and iteration over the names also work, for scripts that read
    parameters as a mapping."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def replace(self, **changes: Any) -> Values:
        """The same record with some fields changed (a variant a scenario builds internally)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


def _python_type(kind: str) -> Any:
    if kind.startswith("list["):
        return tuple[_SCALARS[kind[5:-1]], ...]  # type: ignore[misc]
    return _SCALARS[kind]


@cache
def record_type(fields: tuple[tuple[str, str], ...]) -> type[Values]:
    """The frozen record of parameters with these (name, kind) pairs, one class per set."""
    return dataclasses.make_dataclass("Params", [(name, _python_type(kind)) for name, kind in fields],
                                      bases=(Values,), frozen=True)


def resolve(spec: Mapping[str, Param], given: Mapping[str, Any]) -> Values:
    """Every parameter of ``spec``, given values parsed over the defaults, as a frozen record."""
    unknown = [key for key in given if key not in spec]
    if unknown:
        raise UsageError(f"unknown parameter {unknown[0]!r}; valid: {', '.join(spec) or '(none)'}")
    values = {key: p.parse(key, given[key]) if key in given else p.default for key, p in spec.items()}
    return record_type(tuple((key, p.kind) for key, p in spec.items()))(**values)


def require(condition: bool, message: str) -> None:
    """Raise UsageError(message) unless ``condition``: for checks between parameters."""
    if not condition:
        raise UsageError(message)


def split_pairs(pairs: Sequence[str], flag: str, form: str = "KEY=VALUE") -> dict[str, str]:
    """``KEY=VALUE`` items of a repeated flag (--set, --where, --grid) as a dict; a key given
    twice is refused rather than the last one silently kept."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} expects {form}, got {pair!r}")
        if key in out:
            raise UsageError(f"{flag} {key} is given twice ({out[key]!r} and {value!r}); give it once")
        out[key] = value
    return out
