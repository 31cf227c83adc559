"""Circuits in superposition at scale: time and peak memory of the 2025 construction as T grows at
fixed D / T = 1, with its layers applied block by block (``layers.pattern_blocks``), and the
block-by-block product against the stored one where both fit.

Each point runs in a fresh process, so its peak memory (max RSS) is its own. Rows:

- ``rotations-in-superposition`` and ``circuits-in-superposition`` at T = D (z = 2, 24 samples,
  the capacity table of the latter at D = 100 only), the whole scenario: build and measure;
- one forward pass of 64 inputs through the rotation network, block by block and stored, where
  the stored form fits; the stored form is sparse at these sizes (O(k d^2) per sample for k
  linked pairs), the block form O(T S d + T d^2 + k d + n d^2).

Exponents are least-squares slopes of log time (log memory) against log T.

    python benchmarks/bench_cis_scale.py           # rotations to T = 10^5, the boolean form to 2 10^4
    python benchmarks/bench_cis_scale.py --quick   # smaller sizes, a few seconds each
    python benchmarks/bench_cis_scale.py --full    # the boolean form at T = D = 10^5 too (about 8 minutes)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import in_child, slope  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES, FORWARD_BATCH = 24, 64


def child(kind: str, T: int, D: int) -> None:
    """One measurement in this process: prints {"seconds": ...}."""
    import torch

    import scenarios
    from circuits import cis2025
    from circuits.small import rotation_circuits

    start = time.perf_counter()
    if kind == "rotations":
        scenarios.run("rotations-in-superposition", T=T, D=D, z=[2], samples=SAMPLES)
    elif kind == "boolean":
        scenarios.run("circuits-in-superposition", T=T, D=D, z=[2], samples=SAMPLES, capacity_D=[100])
    else:  # forward pass, "blocks" or "stored"
        small = rotation_circuits(T, 5, torch.Generator().manual_seed(0))
        net = cis2025.build_cis2025(small, D, 6, "capped", torch.Generator().manual_seed(1),
                                    structured=kind == "blocks")
        which = torch.randint(0, T, (FORWARD_BATCH, 2), generator=torch.Generator().manual_seed(2))
        x = net.inputs(which, torch.rand(FORWARD_BATCH, 2, 4))
        with torch.no_grad():
            net.network.streams(x)  # warm
            start = time.perf_counter()
            net.network.streams(x)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def measure(kind: str, T: int, D: int) -> tuple[float, float]:
    """(seconds, peak GiB) of one point, in a child process."""
    found, peak = in_child(__file__, kind, T, D)
    return found["seconds"], peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--full", action="store_true", help="the boolean form at T = D = 10^5 too")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *sizes = args.child
        child(kind, *map(int, sizes))
        return
    # the boolean form needs D >= 3600 at D = T (n = D / 10 neurons a group hold T circuits), so
    # the quick sizes keep D / T = 4 instead
    rotations = [(T, T) for T in ([2000, 4000, 8000] if args.quick else [12_500, 25_000, 50_000, 100_000])]
    boolean = ([(T, 4 * T) for T in (500, 1000, 2000)] if args.quick else
               [(T, T) for T in [5000, 10_000, 20_000] + ([100_000] if args.full else [])])
    print(f"2025 construction, S = 6, L = 5, z = 2, T grown at fixed D / T; whole scenarios on {SAMPLES} samples")
    print(f"{'what':>34} {'T':>8} {'D':>8} {'seconds':>9} {'peak GiB':>9}")
    for label, kind, sizes in (("rotations-in-superposition", "rotations", rotations),
                               ("circuits-in-superposition", "boolean", boolean)):
        times, peaks = [], []
        for T, D in sizes:
            seconds, peak = measure(kind, T, D)
            times.append(seconds)
            peaks.append(peak)
            print(f"{label:>34} {T:>8} {D:>8} {seconds:>9.2f} {peak:>9.3f}")
        ts = [T for T, _ in sizes]
        print(f"{label:>34} exponent in T: time {slope(ts, times):.2f}, memory {slope(ts, peaks):.2f}")
    for T, D in rotations[:2]:
        blocks, blocks_peak = measure("blocks", T, D)
        stored, stored_peak = measure("stored", T, D)
        print(f"{'forward, ' + str(FORWARD_BATCH) + ' inputs, block by block':>34} {T:>8} {D:>8} {blocks:>9.3f} "
              f"{blocks_peak:>9.3f}")
        print(f"{'forward, stored':>34} {T:>8} {D:>8} {stored:>9.3f} {stored_peak:>9.3f}   "
              f"block / stored = {blocks / stored:.2f} (time), {blocks_peak / stored_peak:.2f} (memory)")


if __name__ == "__main__":
    main()
