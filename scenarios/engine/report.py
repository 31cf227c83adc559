"""``superposim report``: a sweep store as a table, a line plot over one grid axis (mean and 95%
interval over seeds) or a phase diagram over two, with the prediction drawn on top; CSV and
Parquet export."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

import math
from pathlib import Path
from typing import Any

import numpy as np

from scenarios.engine.params import UsageError
from scenarios.engine.sweeps import SweepResult, aggregate

PARQUET_INSTALL = "pip install 'superposim[parquet]'"


def _predicts(column: str, metric: str) -> bool:
    """``predicted_X`` names the metric X, X_..., or ..._X (``predicted_std`` names
    ``interference_std``)."""
    if not str(column).startswith("predicted_") or str(metric).startswith("predicted_"):
        return False
    what = str(column)[len("predicted_"):]
    return bool(what) and (str(metric).startswith(what) or str(metric).endswith("_" + what))


def _pick(frame: pd.DataFrame, text: str | None, what: str, choices: list[str]) -> str:
    if text is None:
        if not choices:
            raise UsageError(f"report: the store has no {what} to plot")
        return choices[0]
    if text not in frame.columns:
        raise UsageError(f"--{what}: {text!r} is not in the store; valid: {', '.join(choices)}")
    return text


def _filter(frame: pd.DataFrame, where: dict[str, str]) -> pd.DataFrame:
    for key, value in where.items():
        if key not in frame.columns:
            raise UsageError(f"--where: {key!r} is not a column; valid: {', '.join(map(str, frame.columns))}")
        column = frame[key]
        try:  # a number matches its value, however written: alpha=1 is the stored 1.0
            number = float(value)
        except ValueError:
            number = None
        if number is not None and column.dtype.kind in "iuf":
            frame = frame[np.isclose(column.astype(float), number, rtol=1e-12, atol=0.0)]
        else:
            frame = frame[column.astype(str) == value]
        if frame.empty:
            raise UsageError(f"--where {key}={value}: no row matches")
    return frame


def build(store: str | Path, x: str | None = None, y: str | None = None, metric: str | None = None,
          predicted: str | None = None, where: dict[str, str] | None = None) -> dict[str, Any]:
    """The aggregated table behind a report: which frame, axes, metric and the per-cell means."""
    result = SweepResult(store)
    rows, sums = result.to_pandas(), result.summaries()
    if rows.empty and sums.empty:
        raise UsageError(f"report: {str(store)!r} holds no finished cell yet")
    grid = list(rows.attrs.get("grid") or sums.attrs.get("grid"))
    where = where or {}
    numeric = {name: [c for c in f.columns if c not in grid + ["seed"] and f[c].dtype.kind in "if"]
               for name, f in (("rows", rows), ("summary", sums))}
    measured = [c for c in numeric["rows"] if not c.startswith("predicted_")
                and any(_predicts(p, c) for p in rows.columns)]
    if metric is None:
        metric = (measured or numeric["rows"] or numeric["summary"] or [None])[0]
    source = rows if metric in rows.columns else sums if metric in sums.columns else None
    if source is None:
        raise UsageError(f"--metric: {metric!r} is not a row or summary value; valid: "
                         f"{', '.join(numeric['rows'] + numeric['summary'])}")
    frame = _filter(source, where)
    axes = [c for c in frame.columns if c != metric]
    x = _pick(frame, x, "x", grid + [c for c in axes if c not in grid])
    if y is not None:
        y = _pick(frame, y, "y", grid)
        if y == x:
            raise UsageError("--y must differ from --x")
    if predicted is None:  # predicted_METRIC, or the prediction named by the start of METRIC
        named = [c for c in frame.columns if _predicts(c, metric)]
        predicted = max(named, key=len) if named else None
    if predicted is not None and predicted not in frame.columns:
        raise UsageError(f"--predicted: {predicted!r} is not in the store")
    by = [x] + ([y] if y else []) + [g for g in grid if g not in (x, y) and frame[g].nunique() > 1 and y is None]
    if y is not None:
        still = [g for g in grid if g not in (x, y) and frame[g].nunique() > 1]
        if still:
            raise UsageError(f"report: the sweep also varies {still[0]!r}; fix it with --where {still[0]}=VALUE")
    sizes = frame.groupby(by + ["seed"], dropna=False).size()
    if len(sizes) and sizes.max() > 1:
        groups = frame.groupby(by + ["seed"], dropna=False)
        varying = [c for c in frame.columns if c not in by + ["seed", metric] and not str(c).startswith("predicted_")
                   and groups[c].nunique().max() > 1]
        # a row's setting (an int, a label, or a float such as a spread) repeats across cells; a
        # measurement takes a new value in nearly every row
        settings = [c for c in varying if frame[c].dtype.kind not in "f" or frame[c].nunique() <= sizes.max()]
        differ = ", ".join(map(str, (settings or varying)[:3]))
        raise UsageError(f"report: each cell has several rows (they differ in {differ}); "
                         "choose one with --where KEY=VALUE or put it on --x/--y")
    cols = [c for c in (metric, predicted) if c]
    table = aggregate(frame[by + ["seed"] + cols], by)
    return {"table": table, "x": x, "y": y, "metric": metric, "predicted": predicted, "by": by,
            "scenario": rows.attrs.get("scenario") or sums.attrs.get("scenario"),
            "fixed": rows.attrs.get("fixed") or sums.attrs.get("fixed") or {}}


def text(rep: dict[str, Any]) -> str:
    t, m, p = rep["table"], rep["metric"], rep["predicted"]
    columns = rep["by"] + ["seeds", f"{m}_mean", f"{m}_std", f"{m}_ci_low", f"{m}_ci_high"]
    columns += [f"{p}_mean"] if p else []
    from scenarios.engine.result import _grid

    return "\n".join(_grid(columns, t[columns].to_dict("records")))


def _positions(values: list, sorted_values: list) -> np.ndarray:
    """Where data values fall on an axis of categories (index space), log-interpolated when the
    axis is positive, so closed-form lines can be drawn over a categorical map."""
    ref = np.array(sorted_values, dtype=float)
    vals = np.array(values, dtype=float)
    if (ref > 0).all() and (vals > 0).all():
        ref, vals = np.log(ref), np.log(vals)
    return np.interp(vals, ref, np.arange(len(ref)), left=np.nan, right=np.nan)


def figure(rep: dict[str, Any], level: float | None) -> Figure:
    from scenarios import plots
    from scenarios.engine.registry import BUILTIN, load

    t, x, y, m, p = rep["table"], rep["x"], rep["y"], rep["metric"], rep["predicted"]
    title = f"{rep['scenario']}: {m}"
    if y is None:
        fig, ax = plots.figure(title + " (mean, 95% interval over seeds)", x, m)
        series = [c for c in rep["by"] if c != x]
        groups = t.groupby(series) if series else [((), t)]
        for k, (key, g) in enumerate(groups):
            g = g.sort_values(x)
            label = ", ".join(f"{s}={v}" for s, v in zip(series, key if isinstance(key, tuple) else (key,)))
            color = f"C{k % 10}"
            ax.plot(g[x], g[f"{m}_mean"], "-o", color=color, ms=4, label=label or "measured")
            if len(g) > 1:
                ax.fill_between(g[x], g[f"{m}_ci_low"], g[f"{m}_ci_high"], color=color, alpha=0.2)
            else:  # one value on the axis: an interval of no width would not show
                mean = g[f"{m}_mean"].iloc[0]
                ax.errorbar(g[x], g[f"{m}_mean"], yerr=[[mean - g[f"{m}_ci_low"].iloc[0]],
                                                        [g[f"{m}_ci_high"].iloc[0] - mean]], color=color, capsize=4)
            if p:  # markers too: a sweep axis with one value still shows its prediction
                ax.plot(g[x], g[f"{p}_mean"], "--x", color=color, ms=6, label=(label + ": " if label else "") + p)
        if (t[f"{m}_mean"] > 0).all() and t[f"{m}_mean"].max() > 100 * t[f"{m}_mean"].min():
            ax.set_yscale("log")
        plots.finish(ax, integer_x=t[x].dtype.kind == "i")
        if t[x].dtype.kind in "if" and t[x].nunique() <= 3:  # a few values: ticks at them, not between
            ax.set_xticks(sorted(t[x].unique()))
        return fig
    xs, ys = sorted(t[x].unique()), sorted(t[y].unique())
    grid = np.full((len(ys), len(xs)), np.nan)
    pred = np.full_like(grid, np.nan)
    for _, r in t.iterrows():
        i, j = ys.index(r[y]), xs.index(r[x])
        grid[i, j] = r[f"{m}_mean"]
        if p:
            pred[i, j] = r[f"{p}_mean"]
    fig, ax = plots.figure(title + " (mean over seeds)", x, y)
    ax.grid(False)
    from matplotlib import patheffects
    from matplotlib.colors import LogNorm

    shown, label = grid, m
    above = grid[np.isfinite(grid) & (grid > 0)]
    if len(above) and np.nanmin(grid) >= 0 and above.max() > 100 * above.min():  # decades: a log scale
        shown = np.where(grid > 0, grid, above.min())
        label = m + (" (log; 0 shown as the lowest)" if (grid == 0).any() else " (log)")
    norm = LogNorm() if shown is not grid else None
    mesh = ax.pcolormesh(np.arange(len(xs) + 1) - 0.5, np.arange(len(ys) + 1) - 0.5, shown, cmap="viridis",
                         norm=norm, shading="flat")
    fig.colorbar(mesh, ax=ax, label=label)
    outline = [patheffects.Stroke(linewidth=4, foreground="black"), patheffects.Normal()]
    handles = []
    if level is not None and len(xs) > 1 and len(ys) > 1:
        from matplotlib.lines import Line2D

        if np.nanmin(grid) < level < np.nanmax(grid):
            cs = ax.contour(np.arange(len(xs)), np.arange(len(ys)), grid, levels=[level], colors="white", linewidths=2)
            cs.set(path_effects=outline)
            handles.append(Line2D([], [], color="white", lw=2, path_effects=outline, label=f"measured {m} = {level:g}"))
        if p and np.nanmin(pred) < level < np.nanmax(pred):
            ax.contour(np.arange(len(xs)), np.arange(len(ys)), pred, levels=[level], colors="red",
                       linestyles="--", linewidths=2)
            handles.append(Line2D([], [], color="red", ls="--", lw=2, label=f"{p} = {level:g}"))
    # a built-in's closed-form lines; a script's store holds its name, not where the script was
    scenario = load(rep["scenario"]) if rep["scenario"] in BUILTIN else None
    if scenario is not None and scenario.phase_lines is not None:
        for k, (label, lx, ly) in enumerate(scenario.phase_lines(x, y, rep["fixed"])):
            (line,) = ax.plot(_positions(lx, xs), _positions(ly, ys), ":", color=f"C{(k + 1) % 10}", lw=2,
                              label=label)
            handles.append(line)
    xlabels = [f"{v:g}" if isinstance(v, float) else str(v) for v in xs]
    crowded = sum(len(t) + 1 for t in xlabels) > 40  # more characters than the axis holds side by side
    ax.set_xticks(range(len(xs)), xlabels, rotation=45 if crowded else 0, ha="right" if crowded else "center")
    ax.set_yticks(range(len(ys)), [f"{v:g}" if isinstance(v, float) else str(v) for v in ys])
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(-0.5, len(ys) - 0.5)
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.25, 1.0), frameon=False)
    return fig


def contour_note(rep: dict[str, Any], level: float | None) -> str | None:
    """Why a phase diagram shows no measured contour, when it shows none."""
    if level is None or rep["y"] is None:
        return None
    values = rep["table"][f"{rep['metric']}_mean"].dropna()
    if rep["table"][rep["x"]].nunique() < 2 or rep["table"][rep["y"]].nunique() < 2:
        return "no contour drawn: a contour needs at least two values on each axis"
    if values.empty or not values.min() < level < values.max():
        low, high = (values.min(), values.max()) if len(values) else (math.nan, math.nan)
        return (f"no contour drawn: --level {level:g} lies outside the measured {rep['metric']} "
                f"({low:.4g} to {high:.4g})")
    return None


def export(store: str | Path, csv: str | None, parquet: str | None) -> list[Path]:
    """Every result row of the store, with grid parameters and seed, as CSV and/or Parquet.
    Both targets are checked before either is written."""
    from layers.files import write_atomic
    from scenarios.engine.outputs import check_out_file

    if not csv and not parquet:
        return []
    csv_path = check_out_file(csv, "--csv") if csv else None
    parquet_path = check_out_file(parquet, "--parquet") if parquet else None
    if parquet:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError(f"--parquet needs pyarrow, which is not installed: {PARQUET_INSTALL}") from None
    frame = SweepResult(store).to_pandas()
    written = []
    if csv_path is not None:
        written.append(write_atomic(csv_path, frame.to_csv(index=False).encode()))
    if parquet_path is not None:
        written.append(write_atomic(parquet_path, lambda tmp: frame.to_parquet(tmp, index=False)))
    return written
