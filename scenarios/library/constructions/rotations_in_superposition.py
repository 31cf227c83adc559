"""rotations-in-superposition: the experiment of "Rotations in Superposition" (Linsefors &
Bushnaq 2025), on the 2025 circuits-in-superposition construction (``circuits.cis2025``).

T conditional rotation circuits (width d = 4: a two-ReLU on-indicator step and two neurons for
the rotating vector x, each circuit its own random angle) in one network of D neurons per layer,
each small neuron spread over S large ones; z circuits active per input, with |x^0| = 1.
The dedicated twin runs every circuit on neurons of its own.

Row keys (one row per z and layer 0..L): ``z``, ``layer``, ``mse_active``, ``mse_inactive``
(|x - x_hat|^2 of the rotating vector, averaged over active / inactive circuits),
``predicted_mse_active`` (the post's eq. 6.55), ``predicted_mse_inactive`` (eq. 6.57),
``worst_error_active`` (largest |x - x_hat| of an active circuit over all inputs),
``switched_on`` (inactive circuits whose on-indicator reads above 1/2, per input),
``mse_on_active``, ``mse_on_inactive`` (error of the on-indicator), ``active_neurons``
(fraction of large neurons above 1e-4) beside ``predicted_active_neurons`` (z S / (D/d), no
circuit switched on by mistake), ``mse_dedicated`` (the twin, 0 up to rounding).
Summary keys: ``design`` (placement family used), ``capacity`` (largest T the placement holds
at this D/d and S; null when unbounded), ``capacity_progression`` (the published progression
rule's), ``neurons_per_large_neuron`` (small neurons each large neuron hosts, T S / (D/d)),
``mean_squared_overlap`` (E (<e_t|e_u>/S)^2 of this placement, against ``overlap_formula``
d/D - 1/(S T)), ``chi`` (per weight layer), ``params_large``, ``params_dedicated``,
``layers_better_than_chance`` (per z: layers whose mse_active is below 1, the error of guessing
the mean), ``robust_radius`` (smallest deviation that switches an inactive circuit on).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from circuits import cis2025, theory
from circuits.cis2025 import WEIGHT_FORMS, CiS2025, build_cis2025, dedicated_network
from circuits.designs import design_capacity, progression_capacity, transversal_capacity
from circuits.designs import mean_squared_overlap as placement_overlap
from circuits.exportable import view_of_cis2025
from circuits.metrics import ActiveUnits, Exact, PerCircuit
from circuits.readers import Chunk, DenseReader
from circuits.sampling import Batch
from circuits.small import PUBLISHED_BAND, robust_radius, rotation_circuits, rotation_inputs, rotation_readout
from circuits.trace import Truth, trace
from scenarios import plots
from scenarios.engine.memory import require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

D_SMALL = 4
DESIGNS = ("best", "transversal", "progression")

PARAMS = {
    "T": Param(557, "small circuits", low=1),
    "D": Param(1000, "neurons per layer of the large network (a multiple of d = 4)", low=4, high=2**20),
    "S": Param(6, "large neurons per small neuron", low=1),
    "L": Param(5, "layers", low=1, high=64),
    "z": Param((1, 2, 3), "numbers of active circuits", kind="list[int]", low=1),
    "weights": Param("capped", "weight form: capped (mean weights through the capped matrix) or plain",
                     kind="str", choices=WEIGHT_FORMS),
    "design": Param("best", "placement: best (transversal when it holds T), transversal, or progression "
                            "(the published rule)", kind="str", choices=DESIGNS),
    "band": Param(PUBLISHED_BAND, "the on-indicator's reset: 0 below the first value, 1 above the second",
                  kind="list[float]"),
    "samples": Param(5000, "sampled inputs per z", low=1),
}


def check(p: Values) -> None:
    T, D, S = p.T, p.D, p.S
    require(len(p.band) == 2 and 0 < p.band[0] < p.band[1] <= 1,
            f"band: two values with 0 < low < high <= 1, got {','.join(map(str, p.band))}")
    require(D % D_SMALL == 0, f"D: must be a multiple of d={D_SMALL} (d groups of D/d neurons), got {D}")
    n = D // D_SMALL
    require(S <= n, f"S: at most D/d={n}, got {S}")
    require(max(p.z) <= T, f"z: at most T={T} circuits can be active, got {max(p.z)}")
    caps = {"best": design_capacity(n, S), "transversal": transversal_capacity(n, S),
            "progression": progression_capacity(n, S)}
    cap = caps[p.design]
    require(cap is None or T <= cap, f"T: D/d={n} holds at most {cap} circuits with S={S} in the {p.design} "
                                     f"placement (two circuits share at most one neuron), got T={T}")
    # the weights as build_cis2025 keeps them, the dedicated twin (T d^2 entries a layer) and a
    # batch of measure: streams, read-outs and exact states of every circuit
    need = cis2025.memory_bytes(T, D, D_SMALL, S, p.L) + 16 * p.L * T * D_SMALL**2 + 64 * 2**24
    require_memory(need, f"T={T}, D={D}, S={S}, L={p.L}")


def build(p: Values, ctx: Context) -> tuple[CiS2025, torch.nn.Module]:
    small = rotation_circuits(p.T, p.L, ctx.generator("circuits"), tuple(p.band))
    net = build_cis2025(small, p.D, p.S, p.weights, ctx.generator("placement"), p.design)
    return net, dedicated_network(small)


class RotationInputs:
    """z of the T circuits active, each at a uniform random angle; drawn on the CPU, so the same
    inputs on any device. ``extra``: the active mask (batch, T), ``which`` (batch, z), ``a0``."""

    def __init__(self, net: CiS2025, z: int, gen: torch.Generator, device: torch.device | str) -> None:
        self.net, self.z, self.gen, self.device = net, z, gen, device

    def draw(self, b: int) -> Batch:
        T = self.net.small.T
        which = torch.rand(b, T, generator=self.gen).topk(self.z, dim=1).indices
        a0 = rotation_inputs(torch.rand(b, self.z, generator=self.gen) * 2 * math.pi)
        which, a0 = which.to(self.device), a0.to(self.device)
        active = torch.zeros(b, T, dtype=torch.bool, device=self.device).scatter_(1, which, True)
        return Batch.of(self.net.inputs(which, a0), active=active, which=which, a0=a0)


def rotation_truth(net: CiS2025) -> Truth:
    """Every circuit's exact state per layer, (batch, T d), zero for the inactive ones."""
    small = net.small

    def exact(batch: Batch) -> list[Exact]:
        which, a0 = batch.extra["which"], batch.extra["a0"]
        b, z, d = a0.shape
        out = []
        for state in small.run(which, a0):
            full = torch.zeros(b, small.T, d, device=a0.device).scatter_(1, which[:, :, None].expand(b, z, d), state)
            out.append(Exact(b, small.T * d, dense=full.reshape(b, -1)))
        return out

    return exact


class CircuitStates:
    """Each circuit's state read from the large network: the input itself at layer 0, the
    un-embedding (1/S) <e^l_t| A^l after; ``streams=True`` reads the raw streams of layers >= 1."""

    def __init__(self, net: CiS2025, streams: bool = False) -> None:
        self.net, self.streams = net, streams

    def read_chunks(self, batch: Batch) -> Iterator[Chunk]:
        x, rows = batch.dense(), slice(0, batch.size)
        streams = self.net.network.streams(x)
        for layer, stream in enumerate(streams):
            if self.streams:
                if layer:
                    yield Chunk(layer, rows, slice(0, stream.shape[1]), stream)
                continue
            read = x if layer == 0 else self.net.unembed(stream, layer).reshape(batch.size, -1)
            yield Chunk(layer, rows, slice(0, read.shape[1]), read)


@torch.no_grad()
def measure(net: CiS2025, twin: torch.nn.Module, z: int, samples: int, gen: torch.Generator,
            device: torch.device | str = "cpu") -> list[dict]:
    """One row per layer for z active circuits over ``samples`` inputs, streamed in batches."""
    T, d = net.small.T, net.small.d
    layers = net.small.L + 1
    batch = max(1, min(1000, 2**24 // (T * d * net.S)))  # the read-out gathers (batch, d, T, S)
    def per_circuit():
        return PerCircuit(layers, T, d, rotation_readout)

    metrics = {"net": {"circuits": per_circuit}, "twin": {"circuits": per_circuit},
               "streams": {"units": lambda: ActiveUnits(layers)}}
    got = trace({"net": CircuitStates(net), "streams": CircuitStates(net, streams=True),
                 "twin": DenseReader(twin.streams)}, RotationInputs(net, z, gen, device), samples, rotation_truth(net),
                metrics, batch, progress=False)
    reads, twins, units = got["net"]["circuits"], got["twin"]["circuits"], got["streams"]["units"]
    n_act, n_in = samples * z, samples * (T - z)
    rows = []
    for layer in range(layers):
        r = reads[layer]
        s = [r.error_active, r.error_inactive, r.on_error_active, r.on_error_inactive, r.switched_on,
             units[layer], twins[layer].error_active]
        rows.append({
            "z": z, "layer": layer,
            "mse_active": s[0] / n_act,
            "predicted_mse_active": theory.rotation_mse_active(layer, z, T, net.D, net.S),
            "mse_inactive": s[1] / n_in if n_in else 0.0,
            "predicted_mse_inactive": theory.rotation_mse_inactive(layer, z, T, net.D, net.S),
            "worst_error_active": r.worst_active,
            "switched_on": s[4] / samples,
            "mse_on_active": s[2] / n_act,
            "mse_on_inactive": s[3] / n_in if n_in else 0.0,
            "active_neurons": s[5] / samples if layer else None,
            "predicted_active_neurons": min(1.0, z * net.S / net.n) if layer else None,
            "mse_dedicated": s[6] / n_act,
        })
    return rows


COLUMNS = ["z", "layer", "mse_active", "predicted_mse_active", "mse_inactive", "predicted_mse_inactive",
           "worst_error_active", "switched_on", "mse_on_active", "mse_on_inactive", "active_neurons",
           "predicted_active_neurons",
           "mse_dedicated"]


def body(p: Values, ctx: Context) -> Outcome:
    T, D, S = p.T, p.D, p.S
    net, twin = build(p, ctx)
    net, twin = ctx.place(net), ctx.place(twin)
    rows = []
    for z in tqdm(p.z, desc="active circuits", disable=not ctx.progress, leave=False):
        rows += measure(net, twin, z, p.samples, ctx.generator(f"inputs:{z}"), ctx.device)
    n = D // D_SMALL
    base = net.patterns[0].cpu()
    summary = {
        "design": net.design,  # the family the construction was built with
        "capacity": design_capacity(n, S),
        "capacity_progression": progression_capacity(n, S),
        "neurons_per_large_neuron": T * S / n,
        "mean_squared_overlap": placement_overlap(base, n),
        "overlap_formula": theory.cis_overlap(T, D, D_SMALL, S),
        "chi": net.chi,
        "params_large": sum(b.nonzero_parameters() for b in net.network.blocks),
        "params_dedicated": sum(b.nonzero_parameters() for b in twin.blocks),
        "layers_better_than_chance": [sum(1 for r in rows if r["z"] == z and r["layer"] > 0 and r["mse_active"] < 1)
                                      for z in p.z],
        "robust_radius": float(robust_radius(net.small).min()),
    }
    return Outcome(rows, summary, COLUMNS)


COLORS = ["tab:purple", "tab:red", "tab:orange", "tab:brown", "tab:pink"]


def _title(p: Values) -> str:
    return f"T={p.T}, D={p.D}, S={p.S}, {p.weights} weights"


def mse_by_layer_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    title = _title(p)
    fig, ax = plots.figure(f"rotating vector: {title}", "layer", "mean squared error |x - x_hat|^2", log_y=True)
    for k, z in enumerate(p.z):
        sel = [r for r in rows if r["z"] == z]
        x, c = [r["layer"] for r in sel], COLORS[k % len(COLORS)]
        plots.line(ax, x, [r["mse_active"] for r in sel], f"z={z} active", c)
        plots.line(ax, x, [r["predicted_mse_active"] for r in sel], f"z={z} eq. 6.55", c, "--x")
        plots.line(ax, x, [r["mse_inactive"] for r in sel], f"z={z} inactive", c, ":s")
    plots.line(ax, list(range(p.L + 1)), [r["mse_dedicated"] for r in rows if r["z"] == p.z[0]],
               "dedicated", plots.DEDICATED, "-^")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    plots.finish(ax, integer_x=True)
    return fig


def seizures_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    title = _title(p)
    fig, ax = plots.figure(f"inactive circuits switched on: {title}", "layer", "per input", log_y=True)
    for k, z in enumerate(p.z):
        sel = [r for r in rows if r["z"] == z]
        plots.line(ax, [r["layer"] for r in sel], [r["switched_on"] for r in sel], f"z={z}", COLORS[k % len(COLORS)])
    ax.set_ylim(bottom=0)  # counts: no negative half on the symmetric log axis
    plots.finish(ax, integer_x=True)
    return fig


def exports(p: Values, ctx: Context) -> dict:
    """The large network (the most active circuits of ``z``, each at a uniform random angle)."""
    def a0(batch: int, z: int, gen: torch.Generator) -> torch.Tensor:
        return rotation_inputs(torch.rand(batch, z, generator=gen) * 2 * math.pi)

    return {"superposed": lambda: view_of_cis2025(build(p, ctx)[0], max(p.z), a0,
                                                  {"kind": "active-rotations", "angle": "uniform"})}


scenario = Scenario(
    name="rotations-in-superposition",
    description="conditional rotations in superposition (2025 construction): error by layer vs eq. 6.55/6.57",
    params=PARAMS,
    body=body,
    figures={"mse_by_layer": mse_by_layer_figure, "seizures": seizures_figure},
    exports=exports,
    check=check,
    cost="minutes",
)
