"""Per-cell overhead of the local sweep backend, against running the same cells in this process.

A cell is compounding-noise with its sample count set so that one cell takes about a second on
one thread. The plain baseline calls the cell function in a loop here (one torch thread, as the
workers use); the sweep runs the same cells through a store with one worker. The worker's start
(spawning a process and importing torch, once per worker) is measured apart from the per-cell
cost, which is the difference of two sweeps of different lengths.

    python benchmarks/bench_sweep.py [--cells N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from scenarios.engine.sweeps import run_cell, sweep

NAME, FIXED = "compounding-noise", {"m": 1024, "n": 256, "layers": 6, "cleanup": ["none"]}


def calibrate() -> int:
    """Samples for a cell of about one second."""
    torch.set_num_threads(1)
    samples = 2000
    run_cell((NAME, 0, FIXED | {"samples": samples}))
    start = time.perf_counter()
    run_cell((NAME, 0, FIXED | {"samples": samples}))
    return max(100, int(samples / (time.perf_counter() - start)))


def in_process(samples: int, cells: int) -> float:
    start = time.perf_counter()
    for seed in range(cells):
        run_cell((NAME, seed, FIXED | {"samples": samples}))
    return time.perf_counter() - start


def swept(samples: int, cells: int, folder: Path) -> float:
    start = time.perf_counter()
    sweep(NAME, {"active": [4]}, list(range(cells)), folder / f"s{cells}.sqlite", jobs=1,
          **(FIXED | {"samples": samples}))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8)
    args = parser.parse_args()
    samples = calibrate()
    short, long = 2, 2 + args.cells
    plain = in_process(samples, args.cells) / args.cells
    with tempfile.TemporaryDirectory() as tmp:
        t_short, t_long = swept(samples, short, Path(tmp)), swept(samples, long, Path(tmp))
    per_cell = (t_long - t_short) / (long - short)
    start_up = t_short - short * per_cell
    print(f"one cell in this process:  {plain:.3f} s  ({samples} samples)")
    print(f"one cell through the sweep: {per_cell:.3f} s  (store, worker, result transfer)")
    print(f"per-cell overhead: {per_cell - plain:+.3f} s = {100 * (per_cell / plain - 1):+.1f}% of a cell; "
          f"ratio {per_cell / plain:.3f}")
    print(f"worker start (process spawn and torch import, once per worker): {start_up:.2f} s")


if __name__ == "__main__":
    main()
