"""The result of a scenario run: rows, summary, the data its figures need, and the figures, which
are drawn from the result alone; saved as result.json and PNGs, and read back from result.json
(``Result.load``) to redraw them without recomputing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scenarios.engine.outputs import Written

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from matplotlib.figure import Figure  # a Figure draws with its own canvas: no backend is chosen

from layers.files import write_atomic

FigureMaker = Callable[[], Figure | None]  # None: the figure does not apply to this run
RESULT_KEYS = ("scenario", "params", "seed", "version", "rows", "summary")


def jsonable(value: Any, where: str = "result", nonfinite: dict[str, str] | None = None) -> Any:
    """Plain JSON types. A NaN or infinity becomes null and, when ``nonfinite`` is given, is
    recorded there under its place (``rows[3].mse``) as "nan", "inf" or "-inf"; without it,
    it is an error: never written silently."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            if nonfinite is None:
                raise ValueError(f"{where} is {value}, which is not a number JSON can hold")
            nonfinite[where] = "nan" if value != value else ("inf" if value > 0 else "-inf")
            return None
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return jsonable(value.item(), where, nonfinite)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}", nonfinite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, f"{where}[{i}]", nonfinite) for i, v in enumerate(value)]
    raise TypeError(f"{where} has a value of type {type(value).__name__} that JSON cannot hold")


@dataclass
class Result:
    scenario: str
    params: dict[str, Any]
    seed: int
    version: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    figures: dict[str, FigureMaker] = field(default_factory=dict, repr=False)
    columns: list[str] | None = field(default=None, repr=False)
    # what figures draw beyond rows and summary (curves, weights, histories), kept in result.json
    data: dict[str, Any] = field(default_factory=dict, repr=False)
    # the script a run of a script came from (experiment.toml names it to repeat the run)
    source: str | None = field(default=None, repr=False)
    # how its random draws were made (``Context.draws``); result.json names it when not "torch"
    draws: str = "torch"

    @property
    def p(self) -> SimpleNamespace:
        """The parameters read as attributes (``result.p.m``), as figures read them."""
        return SimpleNamespace(**self.params)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Result:
        """The result a result.json holds (no figures attached); null values recorded under
        ``nonfinite`` come back as the NaN or infinity they were."""
        missing = [k for k in RESULT_KEYS if k not in body]
        if missing:
            raise ValueError(f"it has no {missing[0]!r}")
        body = json.loads(json.dumps(body))  # a copy to restore values into
        for place, what in body.get("nonfinite", {}).items():
            _put(body, place, float(what))
        return cls(scenario=body["scenario"], params=body["params"], seed=body["seed"], version=body["version"],
                   rows=body["rows"], summary=body["summary"], columns=body.get("columns"),
                   data=body.get("data", {}), draws=body.get("draws", "torch"))

    @classmethod
    def load(cls, path: str | Path) -> Result:
        """Read a result.json written by ``save``."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError, KeyError, IndexError) as err:
            raise ValueError(f"{str(path)!r} is not a readable result.json ({err})") from None

    def to_dict(self) -> dict[str, Any]:
        """Exactly what result.json holds. Values that overflowed (inf) or are undefined (nan)
        are null, and ``nonfinite`` maps each one's place to what it was."""
        nonfinite: dict[str, str] = {}
        body = {
            "scenario": self.scenario,
            "params": jsonable(dict(self.params), "params"),
            "seed": self.seed,
            "version": self.version,
            "rows": jsonable(self.rows, "rows", nonfinite),
            "summary": jsonable(self.summary, "summary", nonfinite),
        }
        if self.draws != "torch":
            body["draws"] = self.draws
        if self.columns is not None:
            body["columns"] = list(self.columns)
        if self.data:
            body["data"] = jsonable(self.data, "data", nonfinite)
        if nonfinite:
            body["nonfinite"] = nonfinite
        return body

    @property
    def nonfinite(self) -> dict[str, str]:
        """Places of the values that are not finite (written as null in result.json)."""
        return self.to_dict().get("nonfinite", {})

    def table(self) -> str:
        """The rows as an aligned text table, then the summary: scalars aligned by name, lists of
        records (sweeps) as tables of their own, numbers rounded."""
        columns = self.columns or list(dict.fromkeys(k for row in self.rows for k in row))
        lines = _grid(columns, self.rows)
        scalars = {k: v for k, v in self.summary.items() if not _records(v)}
        if scalars:
            flat = dict(_flatten(scalars))
            width = max(len(k) for k in flat)
            lines += [""] + [f"{k.ljust(width)}  {_fmt(v)}" for k, v in flat.items()]
        for key, value in self.summary.items():
            if _records(value):
                lines += ["", f"{key}:"] + ["  " + line for line in
                                           _grid(list(dict.fromkeys(k for r in value for k in r)), value)]
        return "\n".join(lines)

    def write_into(self, out: Path) -> list[Path]:
        """Write result.json, the resolved experiment.toml and one PNG per figure into ``out``."""
        from scenarios.engine.experiment import EXPERIMENT, experiment_text

        path = out / "result.json"
        write_atomic(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())
        experiment = experiment_text(self.source or self.scenario, self.seed, self.params, self.draws)
        written = [path, write_atomic(out / EXPERIMENT, experiment.encode())]
        for name, make in self.figures.items():
            fig = make()
            if fig is None:
                continue
            save = lambda tmp, fig=fig: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")  # noqa: E731
            written.append(write_atomic(out / f"{name}.png", save))
        return written

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write the run's set (result.json and PNGs) into ``out_dir`` as one: built in a
        temporary folder and swapped in whole, replacing an earlier run's set; return the paths."""
        return self.save_run(out_dir).paths

    def save_run(self, out_dir: str | Path) -> Written:
        """As ``save``; also says whether an earlier run was replaced and which of the user's
        files in the folder were kept (an ``outputs.Written``)."""
        from scenarios.engine.outputs import check_out_dir, write_folder

        check_out_dir(out_dir)
        return write_folder(out_dir, self.write_into)


_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _put(body: Any, place: str, value: Any) -> None:
    """Set the value at a place named as ``jsonable`` names it (``rows[3].mse``)."""
    keys = [int(i) if i else k for k, i in _PART.findall(place)]
    target = body
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


def _grid(columns: list[str], rows: list[dict]) -> list[str]:
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    return ["  ".join(c.rjust(w) for c, w in zip(columns, widths))] + \
        ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]


def _records(value: Any) -> bool:
    """A list of dicts: a sweep, shown as a table of its own."""
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _flatten(mapping: Mapping, prefix: str = ""):
    for k, v in mapping.items():
        if isinstance(v, Mapping):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.3e}"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ",".join(_fmt(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)
