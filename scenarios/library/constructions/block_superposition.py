"""block-superposition: block-structured ("ping-pong") computation, exact for one active circuit.

(D/d)^2 random boolean circuits (d - 1 gates and an on-indicator per layer) in D neurons per
layer plus 2 D/d one-hot neurons naming the active circuit's blocks (``circuits.block``). For each
z, inputs activate z random circuits. With z = 1 the active circuit is computed exactly at every
depth; with z >= 2 the weights joining one active circuit's blocks to another's write into the
live blocks, and the error grows with depth.

Row keys (one row per z and layer 0..L): ``z``, ``layer``, ``mse_active``, ``mse_inactive`` (per
small feature), ``switched_on`` (inactive circuits whose on-indicator reads above 1/2, per input),
``predicted_mse_active`` (0 for z = 1), ``predicted_mse_inactive`` and ``predicted_switched_on``
(z = 1: the D/d - 1 inactive circuits whose block is live read the active circuit's values, so
(D/d - 1) / (T - 1) times its mean squared value, and D/d - 1 switched on), ``mse_dedicated``.
Values that overflow are written as null, with the layer in ``summary.overflow_layer``.
Summary keys: ``T``, ``blocks``, ``one_hot_width`` (2 D/d extra neurons), ``silencing_bias``,
``params_large`` (non-zero weights and biases), ``params_dedicated``, ``overflow_layer`` (per z).
"""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from circuits.block import BlockNetwork, block_circuits, compile_block
from circuits.compile import CompiledNetwork, compile_dedicated
from circuits.metrics import PerCircuit, boolean_decode
from circuits.sampling import Batch
from circuits.trace import boolean_truth, each, trace
from scenarios import plots
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

PARAMS = {
    "D": Param(200, "neurons per layer (without the one-hot neurons)", low=2, high=2000),
    "d": Param(4, "neurons per small circuit: d - 1 gates and the on-indicator", low=2, high=64),
    "L": Param(10, "layers", low=1, high=64),
    "z": Param((1, 2), "numbers of active circuits", kind="list[int]", low=1),
    "samples": Param(1000, "sampled inputs per z", low=1),
}


def check(p: Values) -> None:
    D, d = p.D, p.d
    require(D % d == 0, f"D: must be a multiple of d={d} (blocks of d neurons), got {D}")
    T = (D // d) ** 2
    require(max(p.z) <= T, f"z: at most T=(D/d)^2={T} circuits can be active, got {max(p.z)}")
    require(T * d * p.L <= 4_000_000, f"D: (D/d)^2 d L = {T * d * p.L} small neurons is more than the "
                                         "4,000,000 this scenario builds gate by gate")


def build(p: Values, ctx: Context) -> BlockNetwork:
    return compile_block(block_circuits(p.D, p.d, p.L, ctx.generator("circuits")), p.D)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class BlockInputs:
    """z of the T circuits active, each active circuit's values random bits and its indicator
    (the last of its d) on; drawn on the CPU. ``extra["active"]``: (batch, T) bool."""

    def __init__(self, T: int, d: int, z: int, gen: torch.Generator, device: torch.device | str) -> None:
        self.T, self.d, self.z, self.gen, self.device = T, d, z, gen, device

    def draw(self, b: int) -> Batch:
        T, d, z = self.T, self.d, self.z
        which = torch.rand(b, T, generator=self.gen).topk(z, dim=1).indices
        bits = (torch.rand(b, z, d, generator=self.gen) < 0.5).float()
        bits[:, :, d - 1] = 1.0  # the on-indicator
        x = torch.zeros(b, T, d).scatter_(1, which[:, :, None].expand(b, z, d), bits).reshape(b, -1)
        active = torch.zeros(b, T, dtype=torch.bool).scatter_(1, which, True)
        return Batch.of(x.to(self.device), active=active.to(self.device))


@torch.no_grad()
def measure(net: BlockNetwork, twin: CompiledNetwork, z: int, samples: int, gen: torch.Generator,
            device: torch.device | str) -> list[dict]:
    T, d, B = net.block_count**2, net.circuit.n_inputs // net.block_count**2, net.block_count
    layers = net.circuit.depth + 1
    per_circuit = {"circuits": lambda: PerCircuit(layers, T, d, boolean_decode(d - 1))}
    got = trace({"net": net.read_features, "twin": twin.read_features}, BlockInputs(T, d, z, gen, device), samples,
                boolean_truth(net.circuit, device), each(("net", "twin"), per_circuit), 256, progress=False)
    reads, twins = got["net"]["circuits"], got["twin"]["circuits"]
    rows = []
    n_act, n_in = samples * z * d, samples * (T - z) * d
    for t in range(layers):
        e_act, e_in, switched = reads[t].error_active, reads[t].error_inactive, reads[t].switched_on
        twin_err = twins[t].error_active + twins[t].error_inactive
        mean_v2 = reads[t].exact_norm_active / n_act
        rows.append({"z": z, "layer": t, "mse_active": _finite(e_act / n_act),
                     "predicted_mse_active": 0.0 if z == 1 else None,
                     "mse_inactive": _finite(e_in / n_in) if n_in else 0.0,
                     "predicted_mse_inactive": (B - 1) / (T - 1) * mean_v2 if z == 1 and T > 1 else None,
                     "switched_on": switched / samples, "predicted_switched_on": float(B - 1) if z == 1 else None,
                     "mse_dedicated": twin_err / (n_act + n_in)})
    return rows


def body(p: Values, ctx: Context) -> Outcome:
    net = ctx.place(build(p, ctx))
    twin = ctx.place(compile_dedicated(net.circuit))
    rows = []
    for z in tqdm(p.z, desc="active circuits", disable=not ctx.progress, leave=False):
        rows += measure(net, twin, z, p.samples, ctx.generator(f"inputs:{z}"), ctx.device)
    B, d = net.block_count, p.d
    summary = {
        "T": B * B, "blocks": B, "one_hot_width": 2 * B, "silencing_bias": net.silence,
        "params_large": sum(b.nonzero_parameters() for b in net.network.blocks),
        "params_dedicated": sum(b.nonzero_parameters() for b in twin.network.blocks),
        "overflow_layer": [next((r["layer"] for r in rows if r["z"] == z and r["mse_active"] is None), None)
                           for z in p.z],
        "neurons_per_layer": p.D + 2 * B, "neurons_per_layer_dedicated": B * B * d,
    }
    return Outcome(rows, summary)


def mse_by_layer_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    B, d = result.summary["blocks"], p.d
    fig, ax = plots.figure(f"block superposition: D={p.D}, d={d}, T={B * B}", "layer",
                           "MSE per small feature", log_y=True)
    colors = ["tab:blue", "tab:red", "tab:orange", "tab:purple"]
    for k, z in enumerate(p.z):
        sel = [r for r in rows if r["z"] == z]
        c = colors[k % len(colors)]
        plots.line(ax, [r["layer"] for r in sel], [r["mse_active"] for r in sel], f"z={z}: active", c)
        plots.line(ax, [r["layer"] for r in sel], [r["mse_inactive"] for r in sel], f"z={z}: inactive", c, ":s")
    plots.line(ax, list(range(p.L + 1)), [0.0] * (p.L + 1), "dedicated", plots.DEDICATED, "-^")
    plots.finish(ax, integer_x=True)
    return fig


scenario = Scenario(
    name="block-superposition",
    description="block-structured circuits in superposition: exact for one active circuit, (D/d)^2 circuits",
    params=PARAMS,
    body=body,
    figures={"mse_by_layer": mse_by_layer_figure},
    check=check,
    networks=lambda p, ctx: {"superposed": build(p, ctx)},
)
