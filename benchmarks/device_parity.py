"""Device parity: the same scenarios on the CPU and on a CUDA device, same seed, same numbers.

With the default draws every random draw is made on the CPU (inputs, directions, placements) and
moved to the device; with counter draws (the scenarios that honour them run both ways) they are made
on the device, and the counter generator's words are checked bit for bit between the two devices.
Either way the two runs differ only by float rounding. For each scenario this prints the time on
each device, the speed-up, and the largest relative difference over every number of its rows and
summary; it exits 1 if one passes the tolerance, and 0 with "skipped" where no CUDA device exists.

    python benchmarks/device_parity.py            # small sizes, under a minute on a GPU
    python benchmarks/device_parity.py --large    # compounding-noise at m = 10^5 on demand too
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from layers.philox import CounterStream  # noqa: E402
from scenarios import load, networks, run  # noqa: E402

TOLERANCE = 1e-3  # relative, with an absolute floor of 1e-5
CASES = {
    "compounding-noise (stored)": ("compounding-noise", dict(m=2000, n=256, layers=4, samples=4000)),
    "compounding-noise (on demand)": ("compounding-noise", dict(m=20000, n=256, layers=3, samples=1024,
                                                               storage="on-demand")),
    "circuits-in-superposition": ("circuits-in-superposition", dict(T=50, D=600, samples=300, capacity_D=[600],
                                                                   capacity_samples=50)),
    "u-and": ("u-and", dict(m=400, d=400, samples=400, sweep_d=[200, 400], sweep_p=[0.1], sweep_d0=[0, 800],
                            sweep_samples=200)),
    "sparsity": ("sparsity", {}),
    "circuit": ("circuit", dict(m=400, n=96, samples=1000)),
    "u-and-depth": ("u-and-depth", dict(k=100, d=800, layers=2, samples=300)),
    "rotations-in-superposition": ("rotations-in-superposition", dict(T=60, D=200, S=4, L=3, z=[1, 2], samples=200)),
    "block-superposition": ("block-superposition", dict(D=40, d=4, L=3, z=[1, 2], samples=200)),
}
LARGE = {"compounding-noise (m=10^5, on demand)": ("compounding-noise", dict(m=100_000, n=1024, layers=3,
                                                                            samples=512, storage="on-demand"))}


def numbers(result) -> list[float]:
    """Every number of a result's rows and summary, in a fixed order."""
    out: list[float] = []

    def walk(value) -> None:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return
        if isinstance(value, (int, float)):
            out.append(float(value))
        elif isinstance(value, dict):
            for key in sorted(value):
                walk(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(result.rows)
    walk(result.summary)
    return out


def worst_difference(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return math.inf
    return max((abs(x - y) / max(abs(x), 1e-5 / TOLERANCE) for x, y in zip(a, b) if x != y), default=0.0)


def on_device_only(name: str, params: dict) -> bool:
    """Whether every weight and buffer of the networks a scenario builds (all that the network
    module carries, its construction's records included) sits on the device."""
    try:
        nets = networks(name, device="cuda", **params)
    except Exception:  # noqa: BLE001 - scenarios without networks have nothing to check
        return True
    tensors = [t for net in nets.values() for t in list(net.parameters()) + list(net.buffers())]
    return all(t.device.type == "cuda" for t in tensors)


def counter_words_agree() -> bool:
    """The counter generator's 32-bit words, and the derived uniforms, equal on cpu and cuda."""
    stream, rows = CounterStream(0, "parity"), torch.arange(2**40, 2**40 + 1000)
    same = torch.equal(stream.bits(rows, 1000), stream.bits(rows, 1000, device="cuda").cpu())
    return same and torch.equal(stream.uniform(rows, 1000), stream.uniform(rows, 1000, device="cuda").cpu())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="add compounding-noise at m = 10^5 on demand")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    print(f"device: {torch.cuda.get_device_name(0)}; tolerance {TOLERANCE:g} relative")
    bitwise = counter_words_agree()
    print(f"counter generator, 10^6 words: {'bit for bit the same' if bitwise else 'DIFFERENT'} on cpu and cuda")
    failed = not bitwise
    print(f"{'scenario':<40} {'draws':>8} {'cpu s':>8} {'cuda s':>8} {'speed-up':>9} {'worst rel. diff':>16} "
          f"{'on device':>10}")
    for label, (name, params) in (CASES | (LARGE if args.large else {})).items():
        for draws in load(name).draws:
            timings, results = {}, {}
            for device in ("cpu", "cuda"):
                start = time.perf_counter()
                results[device] = run(name, seed=0, device=device, progress=False, draws=draws, **params)
                if device == "cuda":
                    torch.cuda.synchronize()
                timings[device] = time.perf_counter() - start
            diff = worst_difference(numbers(results["cpu"]), numbers(results["cuda"]))
            placed = on_device_only(name, params)
            failed |= diff > TOLERANCE or not placed
            print(f"{label:<40} {draws:>8} {timings['cpu']:>8.2f} {timings['cuda']:>8.2f} "
                  f"{timings['cpu'] / timings['cuda']:>8.1f}x {diff:>16.2e} {'yes' if placed else 'NO':>10}")
    print("parity: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
