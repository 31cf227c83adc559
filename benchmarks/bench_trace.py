"""Speed of the noise tracer against plain-torch loops doing the same matmuls, in one process.

The workload is the compounding-noise scenario on the relay: m = 1024 features, n = 256, 6 layers,
100,000 samples, clean-up off, superposed network and dedicated twin. The plain loops use the very
same weight tensors and input sampler and run the same products for both networks: one keeps a
per-layer squared error (the least any script reporting these numbers must compute), the other
nothing at all (the products alone: this workload's roofline on this machine).

    python benchmarks/bench_trace.py [--samples N] [--repeats R]
"""

from __future__ import annotations

import argparse
import time

import torch

import scenarios
from circuits.compile import compile_dedicated, compile_superposed
from circuits.generators import relay
from circuits.sampling import ExactlyActive
from scenarios.engine.registry import Context

M, N, L, ACTIVE, BATCH = 1024, 256, 6, 4, 4096


def plain_loop(samples: int, ctx: Context, keep_error: bool = True) -> float:
    """Same networks, same inputs, hand-written forward and (``keep_error``) squared error per layer."""
    circuit = relay(M, L, ctx.generator("circuit"))
    nets = [compile_superposed(circuit, N, "random", "none", ctx.generator("embedding")),
            compile_dedicated(circuit)]
    perms = [torch.tensor([g.inputs[0] for g in layer]) for layer in circuit.layers]
    sampler = ExactlyActive(M, ACTIVE, ctx.seed_for("inputs"))
    # the weights' own products (x @ W.T as a dense, CSR or identity product), nothing around them
    mats = [(net.network.embed, list(net.readouts), [(b.read, b.bias, b.write) for b in net.network.blocks])
            for net in nets]
    sq = torch.zeros(2, L + 1, dtype=torch.float64)
    start = time.perf_counter()
    with torch.no_grad():
        done = 0
        while done < samples:
            b = min(BATCH, samples - done)
            x = sampler.sample(b)
            truths = [x]
            for perm in perms if keep_error else []:
                truths.append(truths[-1][:, perm])
            for k, (embed, reads, blocks) in enumerate(mats):
                stream = embed(x)
                for t in range(L + 1):
                    read = reads[t](stream)
                    if keep_error:
                        sq[k, t] += float(((read - truths[t]) ** 2).sum())
                    if t < L:
                        w_in, bias, w_out = blocks[t]
                        stream = w_out(w_in(stream) + bias)
            done += b
    return time.perf_counter() - start


def simulator(samples: int) -> float:
    start = time.perf_counter()
    scenarios.run("compounding-noise", m=M, n=N, layers=L, active=ACTIVE, samples=samples, cleanup=["none"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ctx = Context(seed=0, device=torch.device("cpu"))
    print(f"relay m={M} n={N} layers={L} active={ACTIVE} samples={args.samples}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    products = min(plain_loop(args.samples, ctx, keep_error=False) for _ in range(args.repeats))
    plain = min(plain_loop(args.samples, ctx) for _ in range(args.repeats))
    ours = min(simulator(args.samples) for _ in range(args.repeats))
    print(f"matrix products only {products:8.2f} s   (the roofline of this workload)")
    print(f"plain torch loop     {plain:8.2f} s   {plain / products:.2f}x the products (one squared error per layer)")
    print(f"superposim scenario  {ours:8.2f} s   {ours / products:.2f}x the products, "
          f"{ours / plain:.2f}x the plain loop  (best of {args.repeats})")


if __name__ == "__main__":
    main()
