"""Optional experiment tracking: ``--log wandb`` sends a run (or a finished sweep) to Weights &
Biases: the configuration, the rows as a table, the scalar summary and the figures. wandb is
an extra (``pip install 'superposim[wandb]'``); its own settings apply (``WANDB_PROJECT``,
``WANDB_MODE=offline``, ``WANDB_DIR``), the project defaulting to ``superposim``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from scenarios.engine.params import UsageError
from scenarios.engine.result import Result

LOGGERS = ("wandb",)
WANDB_INSTALL = "pip install 'superposim[wandb]'"


def check_logger(name: str | None) -> None:
    """Refuse an unknown logger, or wandb without the extra, before any work starts."""
    if name is None:
        return
    if name not in LOGGERS:
        raise UsageError(f"--log: {name!r} is not one of {', '.join(LOGGERS)}")
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise UsageError(f"--log wandb needs wandb, which is not installed: {WANDB_INSTALL}") from None


def _scalars(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if isinstance(v, bool | int | float | str) or v is None}


def _table(rows: list[dict[str, Any]], columns: list[str] | None) -> Any:
    import wandb

    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    data = [[_cell(row.get(c)) for c in columns] for row in rows]
    return wandb.Table(columns=columns, data=data, allow_mixed_types=True)


def _cell(value: Any) -> Any:
    # a table cell is a scalar: lists and records go as their text
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)


def _start(name: str, config: dict[str, Any], group: str | None = None) -> Any:
    import wandb

    # the folder is read here, each time: wandb keeps the first one it saw for its whole process
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "superposim"), name=name, config=config,
                      group=group, dir=os.environ.get("WANDB_DIR"), reinit="finish_previous")


def log_run(result: Result, out_dir: str | Path) -> str:
    """Log one run; returns where wandb put it (its page online, its folder offline)."""
    import wandb

    run = _start(f"{result.scenario}-seed{result.seed}",
                 {"scenario": result.scenario, "seed": result.seed, "version": result.version, **result.params})
    try:
        logged: dict[str, Any] = {"rows": _table(result.rows, result.columns)} if result.rows else {}
        for png in sorted(Path(out_dir).glob("*.png")):
            logged[f"figures/{png.stem}"] = wandb.Image(str(png))
        if logged:
            run.log(logged)
        run.summary.update(_scalars(result.summary))
        return run.url or str(Path(run.dir).parent)
    finally:
        run.finish()


def log_sweep(store: str | Path, scenario: str, config: dict[str, Any]) -> str:
    """Log a finished sweep as one run: its configuration and every result row of the store
    (grid parameters and seed included) as one table."""
    from scenarios.engine.sweeps import SweepResult

    frame = SweepResult(store).to_pandas()
    run = _start(f"{scenario}-sweep-{Path(store).stem}", {"scenario": scenario, "store": str(store), **config},
                 group=Path(store).stem)
    try:
        rows = frame.to_dict(orient="records")
        if rows:
            run.log({"rows": _table(rows, [str(c) for c in frame.columns])})
        run.summary.update({"rows": len(rows)})
        return run.url or str(Path(run.dir).parent)
    finally:
        run.finish()
