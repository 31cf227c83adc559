"""The roofline report: each main workload's seconds, achieved GFLOP/s and GB/s, against this
machine's own peak matmul rate and memory bandwidth, all measured in this one process.

- Peaks: the best of several float32 matrix products (GFLOP/s), and the best of several copies of
  a 256 MiB tensor (GB/s, bytes read plus bytes written), on the device given.
- FLOPs and bytes of a workload are counted in a first run under a dispatch mode that sees every
  tensor operation (backward passes included): FLOPs are those of the matrix products (mm, addmm,
  bmm, sparse-dense products: 2 per multiply-add, sparse operands by their stored entries);
  bytes are every operand and result of every non-view operation (what a kernel must at least
  read and write; caches make the real traffic lower). A second run, without the mode, is timed.
- "of roofline" is achieved GFLOP/s over what the roofline allows at the workload's arithmetic
  intensity (FLOPs / bytes): min(peak FLOP/s, intensity x peak bandwidth).

    python benchmarks/roofline.py                 # every workload, about three minutes on two cores
    python benchmarks/roofline.py --device cuda   # the same on a GPU
    python benchmarks/roofline.py --only relay    # workloads whose name contains "relay"
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402

import scenarios  # noqa: E402

MATMUL_SHAPES = [(4096, 1024, 1024), (2048, 2048, 2048), (1024, 4096, 256)]
COPY_FLOATS = 2**26
PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "_sparse_addmm", "mv", "dot", "addmv"}


def tensor_bytes(t: torch.Tensor) -> int:
    if t.layout == torch.sparse_csr:
        return sum(x.numel() * x.element_size() for x in (t.values(), t.col_indices(), t.crow_indices()))
    if t.layout == torch.sparse_coo:
        return t._values().numel() * t.element_size() + t._indices().numel() * 8
    return t.numel() * t.element_size()


def stored(t: torch.Tensor) -> int:
    """Multiply-adds an operand brings: its entries, or its stored entries when sparse."""
    if t.layout == torch.sparse_csr:
        return t.values().numel()
    if t.layout == torch.sparse_coo:
        return t._nnz()
    return t.numel()


def product_flops(name: str, args: tuple) -> int:
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if name in ("addmm", "_sparse_addmm", "baddbmm", "addmv"):
        tensors = tensors[1:]  # the added term
    a, b = tensors[0], tensors[1]
    if name in ("bmm", "baddbmm"):
        return 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    if name in ("mv", "addmv", "dot"):
        return 2 * stored(a)
    if a.layout != torch.strided:
        return 2 * stored(a) * b.shape[1]
    if b.layout != torch.strided:
        return 2 * a.shape[0] * stored(b)
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


class Counter(TorchDispatchMode):
    """FLOPs of the matrix products and bytes of every non-view operation run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.flops, self.bytes = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        if getattr(func, "is_view", False):
            return out
        name = func.__name__.split(".")[0]
        if name in PRODUCTS:
            self.flops += product_flops(name, args)
        seen: set[int] = set()
        for t in tree_flatten((args, kwargs, out))[0]:
            if isinstance(t, torch.Tensor) and t.layout in (torch.strided, torch.sparse_csr, torch.sparse_coo):
                key = id(t)
                if key not in seen:  # an in-place result is its input, counted once
                    seen.add(key)
                    self.bytes += tensor_bytes(t)
        return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_flops(device: torch.device, repeats: int = 5) -> float:
    best = 0.0
    for m, k, n in MATMUL_SHAPES:
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        a @ b
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            a @ b
            sync(device)
            best = max(best, 2 * m * k * n / (time.perf_counter() - start))
    return best


def peak_bandwidth(device: torch.device, repeats: int = 5) -> float:
    src, dst = torch.rand(COPY_FLOATS, device=device), torch.empty(COPY_FLOATS, device=device)
    dst.copy_(src)
    best = 0.0
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = max(best, 2 * 4 * COPY_FLOATS / (time.perf_counter() - start))
    return best


def workloads(device: str) -> dict[str, Callable[[], object]]:
    def run(name: str, **params) -> Callable[[], object]:
        return lambda: scenarios.run(name, device=device, **params)

    return {
        "relay trace m=1024 n=256 L=6, 40960 samples": run(
            "compounding-noise", m=1024, n=256, layers=6, active=4, samples=40960, cleanup=["none"]),
        "circuits-in-superposition T=100 D=1000": run(
            "circuits-in-superposition", z=[2], samples=1000, capacity_D=[100]),
        "circuits-in-superposition T=D=5000": run(
            "circuits-in-superposition", T=5000, D=5000, z=[2], samples=48, capacity_D=[100]),
        "rotations T=557 D=1000": run("rotations-in-superposition", z=[2], samples=5000),
        "rotations T=D=50000 (block by block)": run("rotations-in-superposition", T=50_000, D=50_000, z=[2],
                                                    samples=48),
        "u-and m=d=1000": run("u-and", sweep_d=[1000], sweep_p=[0.1], sweep_d0=[0]),
        "toy-models training 1000 -> 100, 4 x 200 steps": run(
            "toy-models", features=1000, dims=100, sparsity=[0.9], instances=4, steps=200, batch=1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="", help="run the workloads whose name contains this")
    args = parser.parse_args()
    device = torch.device(args.device)
    flops, bandwidth = peak_flops(device), peak_bandwidth(device)
    ridge = flops / bandwidth
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__} on {where}: peak {flops / 1e9:.1f} GFLOP/s (float32 matmul), "
          f"{bandwidth / 1e9:.1f} GB/s (copy), ridge {ridge:.1f} FLOP/byte")
    print(f"{'workload':<48} {'seconds':>8} {'GFLOP':>9} {'GFLOP/s':>8} {'of peak':>8} {'GB':>8} {'GB/s':>7} "
          f"{'of peak':>8} {'FLOP/B':>7} {'of roofline':>11}")
    for name, work in workloads(args.device).items():
        if args.only not in name:
            continue
        counter = Counter()
        with counter:
            work()
        sync(device)
        start = time.perf_counter()
        work()
        sync(device)
        seconds = time.perf_counter() - start
        rate, moved = counter.flops / seconds, counter.bytes / seconds
        intensity = counter.flops / max(counter.bytes, 1)
        roof = min(flops, intensity * bandwidth)
        print(f"{name:<48} {seconds:>8.2f} {counter.flops / 1e9:>9.2f} {rate / 1e9:>8.1f} {rate / flops:>8.1%} "
              f"{counter.bytes / 1e9:>8.2f} {moved / 1e9:>7.1f} {moved / bandwidth:>8.1%} {intensity:>7.2f} "
              f"{rate / roof:>11.1%}")


if __name__ == "__main__":
    main()
