"""Speed of the noise tracer against a plain-torch loop doing the same matmuls, in one process.

The workload is the compounding-noise scenario on the relay: m = 1024 features, n = 256, 6 layers,
100,000 samples, clean-up off, superposed network and dedicated twin. The plain loop uses the very
same weight tensors and input sampler, runs the same products for both networks and keeps only a
per-layer squared error, which is the least any script reporting these numbers must compute.

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


def plain_loop(samples: int, ctx: Context) -> float:
    """Same networks, same inputs, hand-written forward and squared error per layer."""
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
            for perm in perms:
                truths.append(truths[-1][:, perm])
            for k, (embed, reads, blocks) in enumerate(mats):
                stream = embed(x)
                for t in range(L + 1):
                    read = reads[t](stream)
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
    plain = min(plain_loop(args.samples, ctx) for _ in range(args.repeats))
    ours = min(simulator(args.samples) for _ in range(args.repeats))
    print(f"plain torch loop     {plain:8.2f} s")
    print(f"superposim scenario  {ours:8.2f} s   ratio {ours / plain:.2f}x  (best of {args.repeats})")


if __name__ == "__main__":
    main()
