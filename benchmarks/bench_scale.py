"""How the streamed relay's time and memory grow with m, n and samples, against a plain-torch loop.

Each point runs in a fresh process, so its peak memory (max RSS) is its own, printed beside the
estimate compounding-noise's memory guard makes for it (``plan_streamed``, which also sizes the
chunks; it counts the dedicated twin too, which this workload leaves out). The workload is
the noise trace of a superposed relay, clean-up off, 3 layers, directions made on demand
(``circuits.streamed``); the baseline is a bare torch loop making the same directions the same way
and doing the same products (read every chunk, write every gate), with no statistics and no
overlap. Exponents are least-squares slopes of log time (log memory) against log size.

    python benchmarks/bench_scale.py           # three sizes per axis around m=100k, n=1024, 512 samples
    python benchmarks/bench_scale.py --quick   # smaller sizes, a few seconds each
    python benchmarks/bench_scale.py --full    # also compounding-noise at m = 10^6 (both clean-ups)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS, ACTIVE = 3, 4


def child(kind: str, m: int, n: int, samples: int) -> None:
    """One measurement, in this process: prints {"seconds": ..., "estimate": plan bytes}."""
    import torch

    from circuits.generators import relay
    from circuits.sampling import ExactlyActive
    from circuits.streamed import StreamedSuperposed, plan_streamed
    from circuits.trace import trace_noise

    circuit = relay(m, LAYERS, torch.Generator().manual_seed(0))
    plan = plan_streamed(circuit.widths, n, 1, samples, ACTIVE)
    net = StreamedSuperposed(circuit, n, "random", "none", torch.Generator().manual_seed(1), plan.chunk)
    start = time.perf_counter()
    if kind == "superposim":
        trace_noise(circuit, {"superposed": net}, ExactlyActive(m, ACTIVE, 2), samples, plan.batch, progress=False)
    else:
        _plain_loop(circuit, net.directions, ExactlyActive(m, ACTIVE, 2).sample_active(samples), plan.chunk)
    print(json.dumps({"seconds": time.perf_counter() - start, "estimate": plan.bytes}))


def _plain_loop(circuit, directions, active, chunk) -> None:
    """The same products in plain torch: per layer, read each chunk of features the next layer's
    gates take, write each gate's output along its direction; then read the last layer."""
    import torch

    from layers.embeddings import _row_seeds

    def rows(d, index):  # the same rows as d.rows(index), drawn inline
        out = torch.empty(index.numel(), d.n)
        gen = torch.Generator()
        for k, s in enumerate(_row_seeds(d.seed, index)):
            gen.manual_seed(s)
            out[k].normal_(generator=gen)
        return out / out.norm(dim=1, keepdim=True)

    batch, n = active.shape[0], directions[0].n
    stream = rows(directions[0], active.reshape(-1)).view(batch, -1, n).sum(1)
    for t, layer in enumerate(circuit.layers):
        source = layer.inputs[:, 0]
        new = torch.zeros(batch, n)
        for s in range(0, len(layer), chunk):
            e = min(s + chunk, len(layer))
            read = stream @ rows(directions[t], source[s:e]).T
            new += read @ rows(directions[t + 1], torch.arange(s, e))
        stream = new
    for s in range(0, circuit.widths[-1], chunk):
        stream @ rows(directions[-1], torch.arange(s, min(s + chunk, circuit.widths[-1]))).T


def in_child(script: str, *args: object) -> tuple[dict, float]:
    """(what ``script --child args`` prints as JSON, its peak memory in GiB), in a fresh process."""
    proc = subprocess.Popen([sys.executable, script, "--child", *map(str, args)], stdout=subprocess.PIPE, cwd=ROOT,
                            env=os.environ | {"PYTHONPATH": str(ROOT)})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{Path(script).name} --child {' '.join(map(str, args))} failed")
    return json.loads(out), usage.ru_maxrss / 2**20  # ru_maxrss: KiB on Linux


def measure(kind: str, m: int, n: int, samples: int) -> tuple[float, float, float]:
    """(seconds, peak GiB, the memory guard's estimate in GiB) of one point, in a child process."""
    found, peak = in_child(__file__, kind, m, n, samples)
    return found["seconds"], peak, found["estimate"] / 2**30


def slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--full", action="store_true", help="also compounding-noise at m = 10^6, n = 1024")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *sizes = args.child
        child(kind, *map(int, sizes))
        return
    m0, n0, s0 = (20_000, 512, 256) if args.quick else (100_000, 1024, 512)
    axes = {"m": [m0 // 2, m0, 2 * m0], "n": [n0 // 2, n0, 2 * n0], "samples": [s0 // 2, s0, 2 * s0]}
    print(f"streamed relay trace, {LAYERS} layers, clean-up off, {ACTIVE} active; standard size "
          f"m={m0}, n={n0}, samples={s0}")
    print(f"{'axis':>8} {'value':>8} {'seconds':>9} {'peak GiB':>9} {'guard GiB':>10}")
    cache: dict[tuple[int, int, int], tuple[float, float, float]] = {}
    for axis, values in axes.items():
        times, peaks = [], []
        for v in values:
            size = {"m": m0, "n": n0, "samples": s0} | {axis: v}
            key = (size["m"], size["n"], size["samples"])
            if key not in cache:
                cache[key] = measure("superposim", *key)
            seconds, peak, estimate = cache[key]
            times.append(seconds)
            peaks.append(peak)
            print(f"{axis:>8} {v:>8} {seconds:>9.2f} {peak:>9.3f} {estimate:>10.3f}")
        print(f"{axis:>8} exponent: time {slope(values, times):.2f}, memory {slope(values, peaks):.2f}")
    ours, ours_peak, _ = cache[(m0, n0, s0)]
    plain, plain_peak, _ = measure("plain", m0, n0, s0)
    print(f"plain-torch loop at the standard size: {plain:.2f} s, {plain_peak:.3f} GiB; "
          f"superposim / plain = {ours / plain:.2f} (time), {ours_peak / plain_peak:.2f} (memory)")
    if args.full:
        start = time.perf_counter()
        sets = [arg for kv in ("m=1000000", "n=1024", "layers=3", "samples=512") for arg in ("--set", kv)]
        proc = subprocess.Popen([sys.executable, "-m", "scenarios.cli", "run", "compounding-noise", *sets, "--quiet",
                                 "--out", str(ROOT / "runs" / "compounding-noise-1e6")], cwd=ROOT,
                                env=os.environ | {"PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        print(f"compounding-noise, m=10^6, n=1024, 3 layers, 512 samples, both clean-ups: "
              f"{time.perf_counter() - start:.0f} s, peak {usage.ru_maxrss / 2**20:.2f} GiB"
              + ("" if status == 0 else " (failed)"))


if __name__ == "__main__":
    main()
