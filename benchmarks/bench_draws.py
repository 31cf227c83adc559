"""What random draws cost: the counter-based generator against torch's own, in one process.

For each draw a run makes at scale (feature directions, sparse inputs) this prints the seconds of
superposim's torch draws (per-row generators on the CPU), of its counter draws (``layers.philox``,
on the device asked for), and of the plain-torch baseline that makes the same number of values with
one global generator call (``torch.randn`` / ``torch.rand``, which cannot give a row without the rows
before it). The counter generator's rate is also given in 32-bit words per second and as the
memory traffic it would be at 8 bytes a word, against this device's copy bandwidth measured here.

    python benchmarks/bench_draws.py                 # on the CPU
    python benchmarks/bench_draws.py --device cuda   # on a GPU, where it is at hand
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from circuits.sampling import ExactlyActive  # noqa: E402
from layers.embeddings import Directions  # noqa: E402
from layers.philox import CounterStream  # noqa: E402


def seconds(work: Callable[[], object], device: torch.device, repeat: int = 3) -> float:
    """The best of ``repeat`` timings (after one warm-up call)."""
    work()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second of a large tensor copy (read + write) on the device."""
    x = torch.empty(2**25, dtype=torch.float32, device=device)
    y = torch.empty_like(x)
    return 2 * x.numel() * 4 / seconds(lambda: y.copy_(x), device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    m, n, batch, active = 20_000, 1024, 100_000, 16
    print(f"device {device}, {torch.get_num_threads()} CPU threads")
    print(f"{'draw':<44} {'torch s':>9} {'counter s':>10} {'plain s':>9} {'counter/plain':>14}")
    index = torch.arange(m)
    torch_rows = Directions("random", m, n, seed=1)
    counter_rows = Directions("random", m, n, seed=1, draws="counter")
    cases = [
        (f"directions, random, {m} x {n}", lambda: torch_rows.rows(index, device),
         lambda: counter_rows.rows(index, device), lambda: torch.randn(m, n, device=device)),
        (f"inputs, {active} of {m} on, {batch} samples",
         lambda: ExactlyActive(m, active, 3, device).sample_active(batch),
         lambda: ExactlyActive(m, active, 3, device, "counter").sample_active(batch),
         lambda: torch.randint(0, m, (batch, active), device=device)),
    ]
    for label, with_torch, with_counter, plain in cases:
        t, c, p = (seconds(f, device) for f in (with_torch, with_counter, plain))
        print(f"{label:<44} {t:>9.3f} {c:>10.3f} {p:>9.3f} {c / p:>13.1f}x")
    stream, rows = CounterStream(0, "bench"), torch.arange(m, device=device)
    words = m * n
    rate = words / seconds(lambda: stream.bits(rows, n, device=device), device)
    bandwidth = copy_bandwidth(device)
    print(f"counter words: {rate / 1e9:.3f} G words/s = {8 * rate / 1e9:.2f} GB/s of int64 out, "
          f"{8 * rate / bandwidth:.2f} of this device's copy bandwidth ({bandwidth / 1e9:.1f} GB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
