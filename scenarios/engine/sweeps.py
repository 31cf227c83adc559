"""Sweeps: a grid of parameters times a list of seeds, each cell one scenario run, recorded in a
resumable store (``scenarios.engine.store``), run by a local process pool or by Ray.

Every cell runs in a worker process with one torch thread, so a cell gives the same numbers
whichever backend or number of jobs runs it. Only the driver writes the store; a failing cell
is recorded with its one-line error and never stops the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from scenarios.engine.registry import Scenario

import itertools
import json
import math
import os
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from scenarios.engine.catalog import VERSION
from scenarios.engine.fits import t95
from scenarios.engine.params import Param, UsageError, split_pairs
from scenarios.engine.store import Identity, Store, cell_key, unwritable

BACKENDS = ("local", "ray")
RAY_INSTALL = "pip install 'superposim[ray]'"


# ---- the grid --------------------------------------------------------------------------------

def seed_ranges(text: str | Iterable[int]) -> list[range | list[int]]:
    """'0-9', '0,3,7' or a list of ints, as ranges (counted before any list of them is made)."""
    if isinstance(text, range):
        return [text]
    if not isinstance(text, str):
        return [[int(s) for s in text]]
    parts: list[range | list[int]] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            parts.append(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise UsageError(f"--seeds: expected a range like 0-9 or a list like 0,3,7, got {text!r}") from None
    return parts


def parse_seeds(text: str | Iterable[int]) -> list[int]:
    """'0-9', '0,3,7' or a list of ints: distinct non-negative seeds, in order."""
    seeds = [s for part in seed_ranges(text) for s in part]
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds: expected distinct non-negative seeds, got {text!r}")
    return seeds


# What one cell costs the driver before it runs (its parameters, task, key and bookkeeping),
# measured on small grids and rounded up: the memory guard of a sweep's size.
CELL_BYTES = 4096
ROW_TEXT_FACTOR = 16


def require_cells_fit(grid_sizes: Sequence[int], seeds: str | Iterable[int]) -> int:
    """The number of cells; refused in one line, before any is built, when the driver could not
    hold them."""
    from scenarios.engine.memory import require_memory

    n_seeds = sum(len(part) for part in seed_ranges(seeds))
    n_cells = math.prod(grid_sizes) * n_seeds
    require_memory(n_cells * CELL_BYTES, f"a sweep of {n_cells:,} cells ({math.prod(grid_sizes):,} grid points x "
                                         f"{n_seeds:,} seeds)")
    return n_cells


def parse_grid(spec: Mapping[str, Param], items: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each grid key's values, parsed and checked by its Param. From the command line values are
    comma-separated; a list parameter takes one value per cell, its items joined by '+'."""
    grid = {}
    for key, raw in items.items():
        if key not in spec:
            raise UsageError(f"--grid: unknown parameter {key!r}; valid: {', '.join(spec)}")
        param = spec[key]
        values = raw.split(",") if isinstance(raw, str) else list(raw)
        if not values or any(isinstance(v, str) and not v.strip() for v in values):
            raise UsageError(f"--grid {key}: expected comma-separated values, got {raw!r}")
        if param.is_list:
            values = [param.parse(key, v.replace("+", ",") if isinstance(v, str) else v) for v in values]
        else:
            values = [param.parse(key, v) for v in values]
        if len(set(map(str, values))) != len(values):
            raise UsageError(f"--grid {key}: a value is given twice")
        grid[key] = values
    if not grid:
        raise UsageError("sweep: give at least one --grid KEY=V1,V2,...")
    return grid


def cells(grid: Mapping[str, list[Any]], seeds: Sequence[int]) -> list[tuple[dict[str, Any], int]]:
    """Every (grid parameters, seed): the product of the grid lists, each for every seed."""
    keys = list(grid)
    return [(dict(zip(keys, combo)), seed) for combo in itertools.product(*grid.values()) for seed in seeds]


# ---- running one cell --------------------------------------------------------------------------

def _worker_init() -> None:
    """A worker: one torch thread (same numbers whatever runs it), and Ctrl-C is the driver's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)


def run_cell(task: tuple[str, int, dict[str, Any]]) -> dict[str, Any]:
    """Run one cell; never raises: a failure comes back as its one-line error."""
    import torch

    torch.set_num_threads(1)
    name, seed, params = task
    start = time.perf_counter()
    version = VERSION
    try:
        from scenarios.engine.registry import load, run

        version = scenario_version(load(name))
        result = run(name, seed=seed, **params).to_dict()
        return {"status": "done", "rows": result["rows"], "summary": result["summary"],
                "seconds": time.perf_counter() - start, "version": version}
    except Exception as err:  # a cell's failure is data, not a crash of the sweep
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return {"status": "failed", "error": f"{type(err).__name__}: {message}"[:500],
                "seconds": time.perf_counter() - start, "version": version}


def scenario_version(scenario: Scenario) -> str:
    """superposim's version plus a hash of the scenario's source file: the code that ran a cell."""
    import hashlib
    import inspect

    try:
        source = Path(inspect.getsourcefile(scenario.body) or "").read_bytes()
    except (OSError, TypeError):
        return VERSION
    return f"{VERSION}+{hashlib.sha256(source).hexdigest()[:10]}"


# ---- backends ----------------------------------------------------------------------------------

def _local(tasks: list, jobs: int):
    """Yield (index, outcome) as cells finish, in a pool of ``jobs`` spawned workers."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init)
    pending: dict = {}
    try:
        pending = {pool.submit(run_cell, task): k for k, task in enumerate(tasks)}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    raise UsageError("sweep: a worker process died (killed, out of memory, or a script that runs "
                                     "sweep(...) again on import: put the call under "
                                     "'if __name__ == \"__main__\":')") from None
                yield pending.pop(future), outcome
    finally:
        if pending:  # interrupted: drop queued cells and stop running ones now (the executor would
            # otherwise wait for them at exit); only finished cells were recorded
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:
                proc.terminate()
        else:
            pool.shutdown(wait=True)


def _probe(address: str, timeout: float = 5.0) -> None:
    """A cluster address must answer a TCP connect within ``timeout`` seconds: Ray itself waits
    for minutes on an address where nothing listens."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--address: expected HOST:PORT (or ray://HOST:PORT, or auto), got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise UsageError(f"--address: no Ray cluster at {address!r} ({reason} within {timeout:g} s)") from None


def _start_ray(jobs: int | None, address: str | None) -> bool:
    """Join the cluster at ``address`` or start a local one; True when started here (and so to
    be shut down). Nothing is written before this succeeds."""
    import logging

    try:
        import ray
    except ImportError:
        raise UsageError(f"--backend ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    if ray.is_initialized():
        return False
    if address:
        _probe(address)
    kwargs = {"address": address} if address else {"num_cpus": jobs or os.cpu_count() or 1}
    try:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, **kwargs)
    except Exception as err:  # an unreachable cluster, a bad address
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"--address: Ray could not start or join a cluster: {first}") from None
    return True


def _ray(tasks: list, started: bool):
    import ray

    remote = ray.remote(num_cpus=1)(run_cell)
    pending: dict = {}
    try:
        pending = {remote.remote(task): k for k, task in enumerate(tasks)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                yield pending.pop(ref), ray.get(ref)
    finally:
        for ref in pending:  # interrupted: cancel what has not finished
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


# ---- the sweep -----------------------------------------------------------------------------------

class SweepResult:
    """A sweep's store, read back as tables."""

    def __init__(self, store: str | Path) -> None:
        self.path = Path(store)

    def _read(self):
        from scenarios.engine.memory import require_memory

        s = Store(self.path)
        try:
            # parsed rows and their table take about this many times their JSON text
            require_memory(ROW_TEXT_FACTOR * s.text_bytes(), f"reading the store {str(self.path)!r}")
            return s.identity, s.fixed, s.cells(), s.rows()
        finally:
            s.close()

    def cells(self) -> pd.DataFrame:
        """One row per cell: grid parameters, seed, status, error, seconds, attempts."""
        import pandas as pd

        identity, _, cells, _ = self._read()
        return pd.DataFrame([{**_columns(c["params"]), "seed": c["seed"], "status": c["status"], "error": c["error"],
                              "seconds": c["seconds"], "attempts": c["attempts"]} for c in cells])

    def to_pandas(self) -> pd.DataFrame:
        """One row per result row of every finished cell, with its grid parameters and seed."""
        import pandas as pd

        identity, fixed, cells, rows = self._read()
        records = [{**_columns(c["params"]), "seed": c["seed"], **row}
                   for c in cells if c["status"] == "done" for row in rows.get(c["id"], [])]
        frame = pd.DataFrame(records)
        frame.attrs.update(scenario=identity.scenario, fixed=fixed, grid=list(identity.grid_keys))
        return frame

    def summaries(self) -> pd.DataFrame:
        """One row per finished cell: grid parameters, seed and every summary value."""
        import pandas as pd

        identity, fixed, cells, _ = self._read()
        frame = pd.DataFrame([{**_columns(c["params"]), "seed": c["seed"], **_flat(c["summary"] or {})}
                              for c in cells if c["status"] == "done"])
        frame.attrs.update(scenario=identity.scenario, fixed=fixed, grid=list(identity.grid_keys))
        return frame

    def summary(self) -> pd.DataFrame:
        """Per grid cell, over its seeds: mean, standard deviation and a 95% interval of every
        numeric summary value (Student t for the number of seeds)."""
        frame = self.summaries()
        return aggregate(frame, list(frame.attrs["grid"]))


def _columns(params: Mapping[str, Any]) -> dict[str, Any]:
    """Grid values as table cells: a list parameter's value as text (it must be hashable)."""
    return {k: ",".join(map(str, v)) if isinstance(v, list | tuple) else v for k, v in params.items()}


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in mapping.items():
        if isinstance(v, Mapping):
            out |= _flat(v, f"{prefix}{k}.")
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def aggregate(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, std and 95% interval over seeds of every numeric column, per group of ``by``."""
    import pandas as pd

    value_cols = [c for c in frame.columns if c not in by + ["seed"] and pd.api.types.is_numeric_dtype(frame[c])]
    out = []
    for key, group in frame.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(by, key)) | {"seeds": len(group)}
        for c in value_cols:
            vals = group[c].dropna()
            mean = float(vals.mean()) if len(vals) else math.nan
            std = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
            half = t95(len(vals)) * std / math.sqrt(len(vals)) if len(vals) > 1 else math.nan
            rec |= {f"{c}_mean": mean, f"{c}_std": std, f"{c}_ci_low": mean - half, f"{c}_ci_high": mean + half}
        out.append(rec)
    return pd.DataFrame(out)


def sweep(name: str, grid: Mapping[str, Any], seeds: str | Iterable[int], store: str | Path,
          backend: str = "local", jobs: int | None = None, address: str | None = None, progress: bool = False,
          **fixed: Any) -> SweepResult:
    """Run every cell of ``grid`` x ``seeds`` not yet done in ``store``; return the store's tables.
    ``fixed`` sets the other parameters. Bad names, keys or values fail here, before any cell runs
    and before the store is made; a store that another sweep is writing is refused."""
    from scenarios.engine.registry import _prepare, load

    if backend not in BACKENDS:
        raise UsageError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise UsageError(f"--jobs: expected a positive integer, got {jobs!r}")
    if backend == "local":
        _require_main_guard()
    scenario = load(name)
    name = str(Path(name).resolve()) if (str(name).endswith(".py") or "/" in str(name)) else name
    overlap = [k for k in grid if k in fixed]
    if overlap:
        raise UsageError(f"{overlap[0]!r} is both swept (--grid) and fixed (--set)")
    values = parse_grid(scenario.params, grid)
    require_cells_fit([len(v) for v in values.values()], seeds)
    seed_list = parse_seeds(seeds)
    fixed_values = {k: scenario.params[k].parse(k, v) if k in scenario.params else v for k, v in fixed.items()}
    todo = cells(values, seed_list)
    for params, seed in todo:  # every cell is checked before any runs: one line for the first bad one
        _prepare(name, seed, "cpu", False, fixed_values | params)
    identity = Identity(scenario.name, cell_key(fixed_values), tuple(values))
    started = _start_ray(jobs, address) if backend == "ray" else False  # fails before anything is written
    try:
        with _sole_writer(Path(store)):
            _run_cells(Path(store), identity, todo, name, fixed_values, scenario.name, backend, jobs, started,
                       progress)
    finally:
        if started:
            import ray

            ray.shutdown()
    return SweepResult(store)


def _run_cells(store: Path, identity: Identity, todo: list, name: str, fixed_values: dict, label: str,
               backend: str, jobs: int | None, started: bool, progress: bool) -> None:
    """Run the cells not yet done and record each as it finishes; a store made here that never
    recorded a cell is removed again."""
    new = not store.exists()
    st = Store(store, identity)
    recorded = 0
    try:
        done = st.done()
        pending = [(params, seed) for params, seed in todo if (cell_key(params), seed) not in done]
        tasks = [(name, seed, fixed_values | params) for params, seed in pending]
        keys = [(cell_key(params), seed) for params, seed in pending]
        bar = tqdm(total=len(todo), initial=len(todo) - len(tasks), unit="cell", desc=f"sweep {label}",
                   disable=not progress)
        failed = 0
        if tasks:
            runner = _local(tasks, jobs or os.cpu_count() or 1) if backend == "local" else _ray(tasks, started)
            for k, outcome in runner:
                st.record(keys[k][0], keys[k][1], outcome)
                recorded += 1
                failed += outcome["status"] == "failed"
                bar.update(1)
                bar.set_postfix(failed=failed)
        bar.close()
    finally:
        st.close()
        if new and recorded == 0:  # a sweep that never finished a cell leaves no store behind
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{store}{suffix}").unlink(missing_ok=True)
            store.parent.joinpath(f".{store.name}.lock").unlink(missing_ok=True)


@contextmanager
def _sole_writer(store: Path):
    """Hold the store's lock for the whole sweep: a second sweep on the same store is refused in
    one line instead of computing every cell again."""
    import fcntl

    lock = store.parent / f".{store.name}.lock"
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+")
    except OSError as err:
        raise unwritable(store, (err.strerror or str(err)).lower()) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            who = handle.read().strip() or "another process"
            raise UsageError(f"--store: {str(store)!r} is being written by another sweep ({who}); wait for it to "
                             "finish, or use another --store") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _require_main_guard() -> None:
    """A script that calls ``sweep`` at its top level is run again in every spawned worker (that
    is how spawn imports ``__main__``), which breaks the pool: refuse it and say what to add."""
    import ast
    import inspect
    import multiprocessing
    import sys

    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if multiprocessing.parent_process() is not None and getattr(main, "__name__", "") == "__mp_main__":
        raise UsageError("sweep(...) ran again inside a sweep's worker: guard it with "
                         "'if __name__ == \"__main__\":' in your script")
    spec = getattr(main, "__spec__", None)
    if not script or not str(script).endswith(".py") or (spec is not None and spec.name.endswith(".__main__")):
        return  # no script, or a package run with -m, which spawned workers do not import again
    calls = [f.lineno for f in inspect.stack(context=0) if f.frame.f_globals is vars(main)
             and f.function == "<module>"]
    if not calls:
        return
    try:
        tree = ast.parse(Path(script).read_text())
    except (OSError, SyntaxError, ValueError):
        return
    guarded = [range(node.lineno, (node.end_lineno or node.lineno) + 1) for node in ast.walk(tree)
               if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)
               and "__main__" in ast.unparse(node.test)]
    if not any(line in block for line in calls for block in guarded):
        raise UsageError(f"{script}:{calls[0]} calls sweep(...) at the top level of the script: its workers are "
                         "spawned and import the script again, so put the call under "
                         "'if __name__ == \"__main__\":'")


def load_store(path: str | Path) -> pd.DataFrame:
    """A store's result rows as a pandas DataFrame (as ``sweep(...).to_pandas()``)."""
    return SweepResult(path).to_pandas()


def grid_from_cli(items: Sequence[str]) -> dict[str, str]:
    return split_pairs(items, "--grid", "KEY=V1,V2,...")


def describe_store(path: str | Path) -> str:
    s = Store(path)
    try:
        cells = s.cells()
        done = sum(c["status"] == "done" for c in cells)
        failed = [c for c in cells if c["status"] == "failed"]
        lines = [f"{s.identity.scenario}: {done} cells done, {len(failed)} failed; grid "
                 f"{', '.join(s.identity.grid_keys)}; fixed {json.dumps(s.fixed)}"]
        lines += [f"  failed {json.dumps(c['params'])} seed {c['seed']}: {c['error']}" for c in failed[:10]]
        return "\n".join(lines)
    finally:
        s.close()
