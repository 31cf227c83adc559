"""circuits-in-superposition: T small boolean circuits in one D-wide network, at most z active.

Two constructions (``construction``): ``2025`` (``circuits.cis2025``, the default: neurons in d
groups, S-hot placements sharing at most one neuron, one shared bias per layer, capped or plain
weights; each gate and the on-indicator a two-ReLU step, so a small circuit is 2 (d + 1) wide)
and ``2024`` (``circuits.cis``, the earlier form: every small neuron spread over S neurons of an
affine-plane placement, biases carried by the indicator). For each z, inputs activate z random
circuits (random input bits, indicator 1); the others get all-zero inputs and should compute 0.

Row keys (one row per z and layer t = 0..L): ``active_circuits`` (z), ``layer``, ``mse_active``,
``mse_inactive`` (per small feature, read-out against the exact value, for the active and the
inactive circuits), ``predicted_mse_active``, ``predicted_mse_inactive`` (built from the error
layer u adds when it is fed exact values: in 2024 the sum over u <= t, the additive law, since
errors pass on; in 2025 layer t's own, since every step pair flattens errors below 1/4 and the
error stays flat until a value switches by mistake), ``switched_on`` (inactive
circuits whose indicator reads above 1/2, per input), ``mse_dedicated`` (the twin: 0).
Summary keys: ``construction``, ``small_neurons_per_large_neuron``, ``design_capacity``
(circuits the placement holds), ``params_large``, ``params_small_total`` (what T separate circuits
would need), ``capacity_D``, ``capacity_T_measured`` and ``capacity_T_design`` per construction
(``_2025``, ``_2024``: largest T whose active circuits stay within ``capacity_mse`` at the last
layer with ``capacity_z`` active; most T the placement holds), ``capacity_T_theory`` (D^2 / d^2).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from circuits import cis2025
from circuits.cis import CiS2024Network, compile_cis, plane_capacity, small_circuits
from circuits.cis2025 import CiS2025Network
from circuits.compile import CompiledNetwork, compile_dedicated
from circuits.metrics import PerCircuit, boolean_decode
from circuits.readers import Chunk
from circuits.sampling import Batch
from circuits.small import boolean_inputs
from circuits.spec import CircuitError
from circuits.trace import boolean_truth, each, trace
from scenarios import plots
from scenarios.engine.memory import require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

CONSTRUCTIONS = ("2025", "2024")

PARAMS = {
    "construction": Param("2025", "2025 (groups, shared biases, capped weights) or 2024 (the earlier form)",
                          kind="str", choices=CONSTRUCTIONS),
    "weights": Param("capped", "weight form of the 2025 construction", kind="str", choices=cis2025.WEIGHT_FORMS),
    "T": Param(100, "small circuits", low=1),
    "D": Param(1000, "neurons per layer of the large network", low=1, high=2**20),
    "d": Param(4, "gates per layer of each small circuit", low=1),
    "S": Param(6, "large neurons per small neuron", low=1),
    "L": Param(5, "layers", low=1, high=64),
    "z": Param((1, 2, 3), "numbers of active circuits", kind="list[int]", low=1),
    "samples": Param(1000, "sampled inputs per z", low=1),
    "capacity_D": Param((1000, 2000), "widths of the capacity table", kind="list[int]", low=1, high=2**13),
    "capacity_z": Param(2, "active circuits in the capacity table", low=1),
    "capacity_mse": Param(0.05, "MSE of active circuits allowed at the last layer", kind="float", low=0.0),
    "capacity_samples": Param(200, "sampled inputs per capacity trial", low=1),
}


BATCH = 256  # samples per pass of measure, fewer where a batch would pass BATCH_BYTES
BATCH_BYTES = 2**30


def _sample_bytes(T: int, D: int, d: int, L: int, width: int) -> int:
    """Bytes of one sample in ``measure``: per layer the read-outs, fresh read-outs, twin's
    read-outs and exact values of T (d + 1) features, both networks' streams, float64 errors."""
    features = T * (d + 1)
    return (L + 1) * (16 * features + 8 * D + 8 * T * width) + 24 * features


def batch_size(T: int, D: int, d: int, L: int, width: int) -> int:
    return max(1, min(BATCH, BATCH_BYTES // _sample_bytes(T, D, d, L, width)))


def small_width(p: Values) -> int:
    """Neurons of one small circuit per layer: d gates and the indicator, two per value in 2025."""
    return 2 * (p.d + 1) if p.construction == "2025" else p.d + 1


def capacity_of(construction: str, D: int, d: int, S: int) -> int | None:
    if construction == "2025":
        return cis2025.capacity(D, 2 * (d + 1), S)
    return plane_capacity(D, S * (d + 1))


def check(p: Values) -> None:
    require(max(p.z) <= p.T, f"z: at most T={p.T} circuits can be active, got {max(p.z)}")
    require(p.d >= 2, f"d: each small circuit's AND / OR gates read two of the d features of the layer "
                         f"before, so d must be >= 2, got {p.d}")
    width = small_width(p)
    if p.construction == "2025":
        require(p.D % width == 0, f"D: the 2025 construction needs a multiple of 2 (d + 1) = {width} "
                                     f"(one group per small neuron), got {p.D}")
        require(p.S <= p.D // width, f"S: at most D / {width} = {p.D // width}, got {p.S}")
    cap = capacity_of(p.construction, p.D, p.d, p.S)
    require(cap is None or p.T <= cap,
            f"T: D={p.D} holds at most {cap} circuits of {width} x S={p.S} neurons that share at most "
            f"one neuron ({p.construction} construction), got T={p.T}")
    require(p.capacity_z <= p.T, "capacity_z: must be <= T")
    need = _memory(p, p.construction, p.T, p.D)
    for D in p.capacity_D:  # the capacity table's largest network, for each construction
        for construction in CONSTRUCTIONS:
            cap = capacity_of(construction, D, p.d, p.S)
            need = max(need, _memory(p, construction, D * D if cap is None else cap, D))
    require_memory(need, f"T={p.T}, D={p.D}, L={p.L} (and the capacity table up to D={max(p.capacity_D)})")


def _memory(p: Values, construction: str, T: int, D: int) -> int:
    """Bytes one run of ``measure`` takes: the 2025 weights as weight_layer stores them (the 2024
    ones dense), and a batch of ``measure`` (``_sample_bytes`` each)."""
    width = small_width(p.replace(construction=construction))
    batch = batch_size(T, D, p.d, p.L, width) * _sample_bytes(T, D, p.d, p.L, width)
    if construction == "2025":
        width = small_width(p.replace(construction="2025"))
        return cis2025.memory_bytes(T, D - D % width, width, p.S, p.L) + batch
    return (p.L + 3) * D * D * 4 + batch


def build(p: Values, T: int, D: int, ctx: Context, tag: str = "") -> CiS2024Network | CiS2025Network:
    """The large network of ``p.construction`` for T random small circuits at width D."""
    smalls = small_circuits(T, p.d, p.L, ctx.generator(f"circuits{tag}"))
    if p.construction == "2025":
        return cis2025.compile_boolean_cis2025(smalls, D, p.S, p.weights, ctx.generator(f"placement{tag}"))
    return compile_cis(smalls, D, p.S, ctx.generator(f"placement{tag}"))


def _inputs(T: int, d: int, z: int, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    active = torch.zeros(batch, T, dtype=torch.bool)
    active.scatter_(1, torch.rand(batch, T, generator=gen).topk(z, dim=1).indices, True)
    bits = (torch.rand(batch, T, d + 1, generator=gen) < 0.5).float()
    bits[:, :, d] = 1.0
    return (bits * active[:, :, None]).reshape(batch, -1), active


@torch.no_grad()
def _fresh(net: CiS2024Network | CiS2025Network, exact: list[torch.Tensor]) -> list[torch.Tensor]:
    """Read-outs of each layer when it is fed the exact values of the layer before."""
    if isinstance(net, CiS2025Network):
        return _fresh_2025(net, exact)
    out = [exact[0]]
    for t, (inc, place) in enumerate(zip(net.incidences, net.placements)):
        small = torch.sparse.mm(inc, exact[t].T).T  # (batch, width) small pre-activations
        large = torch.relu(torch.sparse.mm(place.t(), small.T).T)  # (batch, D)
        out.append(torch.sparse.mm(place, large.T).T / net.S)
    return out


def _fresh_2025(net: CiS2025Network, exact: list[torch.Tensor]) -> list[torch.Tensor]:
    cis = net.cis
    g = net.circuit.n_inputs // cis.small.T - 1  # gates per circuit layer
    out = [exact[0]]
    for layer, block in enumerate(net.network.blocks):
        values = exact[layer].view(exact[layer].shape[0], cis.small.T, g + 1)
        pairs = boolean_inputs(torch.cat([values[:, :, g:], values[:, :, :g]], dim=2))  # pair 0: the indicator
        ideal = pairs.reshape(pairs.shape[0], -1) if layer == 0 else cis.embed_all(pairs, layer)
        out.append(net.readouts[layer + 1](block(ideal)))
    return out


class CircuitInputs:
    """z of the T circuits active, each active circuit's inputs random bits and its indicator on;
    drawn on the CPU, so the same inputs on any device. ``extra["active"]``: (batch, T) bool.
    Inputs are drawn in blocks of BATCH (of the ``samples`` in all) and handed out in batches of
    any size, so that the inputs of a seed do not depend on how many samples a pass takes."""

    def __init__(self, T: int, d: int, z: int, gen: torch.Generator, device: torch.device | str,
                 samples: int) -> None:
        self.T, self.d, self.z, self.gen, self.device = T, d, z, gen, device
        self.left = samples
        # the drawn inputs not yet handed out, as bits (0/1 values: a quarter of the floats' memory)
        self.x, self.active = torch.zeros(0, T * (d + 1), dtype=torch.bool), torch.zeros(0, T, dtype=torch.bool)

    def draw(self, batch: int) -> Batch:
        if self.x.shape[0] < batch:
            block = min(BATCH, self.left)
            x, active = _inputs(self.T, self.d, self.z, block, self.gen)
            self.x, self.active = torch.cat([self.x, x.bool()]), torch.cat([self.active, active])
            self.left -= block
        x, active = self.x[:batch].float(), self.active[:batch]
        self.x, self.active = self.x[batch:], self.active[batch:]
        return Batch.of(x.to(self.device), active=active.to(self.device))


class FreshReader:
    """Each layer's read-outs when it is fed the exact values of the layer before: the error a
    layer adds by itself, which the additive law sums."""

    def __init__(self, net: CiS2024Network | CiS2025Network) -> None:
        self.net = net

    def read_chunks(self, batch: Batch) -> Iterator[Chunk]:
        fresh = _fresh(self.net, [e.dense() for e in batch.exact])
        return (Chunk(t, slice(0, batch.size), slice(0, r.shape[1]), r) for t, r in enumerate(fresh))


@torch.no_grad()
def measure(net: CiS2024Network | CiS2025Network, twin: CompiledNetwork, T: int, d: int, z: int, samples: int,
            gen: torch.Generator, device: torch.device | str = "cpu") -> list[dict]:
    """Per layer: squared error of the active and the inactive circuits' features, the same for
    each layer fed exact inputs (the additive law), the dedicated twin's, indicator switch-ons."""
    depth = net.circuit.depth + 1
    width = 2 * (d + 1) if isinstance(net, CiS2025Network) else d + 1  # small neurons per circuit
    got = trace({"net": net.read_features, "fresh": FreshReader(net), "twin": twin.read_features},
                CircuitInputs(T, d, z, gen, device, samples), samples, boolean_truth(net.circuit, device),
                each(("net", "fresh", "twin"), {"circuits": lambda: PerCircuit(depth, T, d + 1, boolean_decode(d))}),
                batch_size(T, net.network.stream_widths[-1], d, depth - 1, width), progress=False)
    reads, fresh, twins = (got[k]["circuits"] for k in ("net", "fresh", "twin"))
    rows, added_active, added_inactive = [], 0.0, 0.0
    keep = 0.0 if isinstance(net, CiS2025Network) else 1.0  # 2025: step pairs reset the error every layer
    for t in range(depth):
        e_act, e_in, f_act, f_in = reads[t].error_active, reads[t].error_inactive, fresh[t].error_active, \
            fresh[t].error_inactive
        n_act, n_in = reads[t].active * (d + 1), reads[t].inactive * (d + 1)  # features of each
        switched, twin_err = reads[t].switched_on, twins[t].error_active + twins[t].error_inactive
        added_active = keep * added_active + f_act / n_act
        added_inactive = keep * added_inactive + f_in / max(n_in, 1)
        rows.append({"active_circuits": z, "layer": t, "mse_active": e_act / n_act,
                     "mse_inactive": e_in / max(n_in, 1), "predicted_mse_active": added_active,
                     "predicted_mse_inactive": added_inactive, "switched_on": switched / samples,
                     "mse_dedicated": twin_err / (n_act + n_in)})
    return rows


def body(p: Values, ctx: Context) -> Outcome:
    T, D, d, S, L = p.T, p.D, p.d, p.S, p.L
    net = ctx.place(build(p, T, D, ctx))
    twin = ctx.place(compile_dedicated(net.circuit))
    rows = []
    for z in tqdm(p.z, desc="active circuits", disable=not ctx.progress, leave=False):
        rows += measure(net, twin, T, d, z, p.samples, ctx.generator(f"inputs:{z}"), ctx.device)
    summary = {
        "construction": p.construction,
        "small_neurons_per_large_neuron": T * small_width(p) * S / D,
        "design_capacity": capacity_of(p.construction, D, d, S),
        "params_large": sum(b.nonzero_parameters() for b in net.network.blocks),
        "params_small_total": T * L * (d * (d + 1) + (d + 1) * (d + 1)),
    }
    summary |= _capacity(p, ctx)
    return Outcome(rows, summary)


def _capacity(p: Values, ctx: Context) -> dict:
    """Largest T (by bisection) whose active circuits stay within the MSE budget, per D and
    construction."""
    d, S, z = p.d, p.S, p.capacity_z
    out = {"capacity_D": list(p.capacity_D)}
    for construction in CONSTRUCTIONS:
        q = p.replace(construction=construction)
        measured, designs = [], []
        for D in tqdm(p.capacity_D, desc=f"capacity {construction}", disable=not ctx.progress, leave=False):
            cap = capacity_of(construction, D, d, S)
            fits = construction == "2024" or D % small_width(q) == 0
            designs.append(cap if fits else None)
            if not fits or (cap is not None and cap < z):
                measured.append(None)
                continue
            cap = cap if cap is not None else D * D

            def ok(T: int, D: int = D, q: Values = q) -> bool:
                try:
                    net = ctx.place(build(q, T, D, ctx, f":{D}:{T}"))
                except CircuitError:  # the small circuits break an assumption of the construction
                    return False
                rows = measure(net, ctx.place(compile_dedicated(net.circuit)), T, d, z, p.capacity_samples,
                               ctx.generator(f"capacity-inputs:{D}:{T}"), ctx.device)
                return rows[-1]["mse_active"] <= p.capacity_mse

            lo, hi = z - 1, cap  # ok(lo) holds by convention (no circuit at all)
            if ok(hi):
                lo = hi
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if ok(mid) else (lo, mid)
            measured.append(lo if lo >= z else None)
        out[f"capacity_T_measured_{construction}"] = measured
        out[f"capacity_T_design_{construction}"] = designs
    out["capacity_T_theory"] = [D * D // (d * d) for D in p.capacity_D]
    return out


def mse_by_layer_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    T, D, d, S, L = p.T, p.D, p.d, p.S, p.L
    fig, ax = plots.figure(f"circuits in superposition ({p.construction}): T={T}, D={D}, d={d}, S={S}", "layer",
                           "MSE per small feature", log_y=True)
    colors = ["tab:blue", "tab:orange", "tab:red", "tab:purple"]
    for k, z in enumerate(p.z):
        sel = [r for r in rows if r["active_circuits"] == z]
        x = [r["layer"] for r in sel]
        c = colors[k % len(colors)]
        plots.line(ax, x, [r["mse_active"] for r in sel], f"z={z}: active", c)
        plots.line(ax, x, [r["mse_inactive"] for r in sel], f"z={z}: inactive", c, "-s")
        plots.line(ax, x, [r["predicted_mse_active"] for r in sel], f"z={z}: predicted", c, ":")
    plots.line(ax, sorted({r["layer"] for r in rows}), [0.0] * (L + 1), "dedicated", plots.DEDICATED, "-^")
    plots.finish(ax, integer_x=True)
    return fig


scenario = Scenario(
    name="circuits-in-superposition",
    description="T small boolean circuits in one network with z active (2025 or 2024 construction): "
                "error by layer, capacity",
    params=PARAMS,
    body=body,
    figures={"mse_by_layer": mse_by_layer_figure},
    check=check,
    networks=lambda p, ctx: {
                        "superposed": build(p, p.T, p.D, ctx),
                    },
    cost="minutes",
)
