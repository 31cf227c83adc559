"""circuits-in-superposition: T small circuits in one D-wide network, at most z active at once.

See ``circuits.cis`` for the construction. For each z, inputs activate z random circuits (random
input bits, indicator 1); the others get all-zero inputs and should compute exactly 0.

Row keys (one row per z and layer t = 0..L): ``active_circuits`` (z), ``layer``, ``mse_active``,
``mse_inactive`` (per small feature, read-out against the exact value, for the active and the
inactive circuits), ``predicted_mse_active``, ``predicted_mse_inactive`` (the additive law: the sum
over layers u <= t of the error layer u adds when it is fed exact values, which grows linearly
when each layer adds the same, as the 2025 construction predicts), ``switched_on`` (inactive
circuits whose indicator reads above 1/2, per input), ``mse_dedicated`` (the twin: 0).
Summary keys: ``small_neurons_per_large_neuron``, ``design_capacity`` (circuits the placement
holds), ``params_large``, ``params_small_total`` (what T separate circuits would need),
``capacity_D``, ``capacity_T_measured`` (largest T whose active circuits stay within
``capacity_mse`` at the last layer with ``capacity_z`` active), ``capacity_T_theory`` (D^2 / d^2).
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from circuits.cis import compile_cis, design_capacity, small_circuits
from circuits.compile import compile_dedicated
from circuits.evaluate import Evaluator
from scenarios import plots
from scenarios.params import Param, require
from scenarios.registry import Outcome, Scenario

PARAMS = {
    "T": Param(557, "small circuits", low=1),
    "D": Param(1000, "neurons per layer of the large network", low=1),
    "d": Param(4, "gates per layer of each small circuit", low=1),
    "S": Param(6, "large neurons per small neuron", low=1),
    "L": Param(5, "layers", low=1, high=32),
    "z": Param((1, 2, 3), "numbers of active circuits", kind="list[int]", low=1),
    "samples": Param(1000, "sampled inputs per z", low=1),
    "capacity_D": Param((1000, 2000), "widths of the capacity table", kind="list[int]", low=1),
    "capacity_z": Param(2, "active circuits in the capacity table", low=1),
    "capacity_mse": Param(0.05, "MSE of active circuits allowed at the last layer", kind="float", low=0.0),
    "capacity_samples": Param(200, "sampled inputs per capacity trial", low=1),
}


def check(p) -> None:
    require(max(p["z"]) <= p["T"], f"z: at most T={p['T']} circuits can be active, got {max(p['z'])}")
    cap = design_capacity(p["D"], p["S"] * (p["d"] + 1))
    require(p["T"] <= cap, f"T: D={p['D']} holds at most {cap} circuits of {p['d'] + 1} x S={p['S']} "
                           f"neurons that share at most one neuron, got T={p['T']}")
    require(p["capacity_z"] <= p["T"], "capacity_z: must be <= T")


def _inputs(T: int, d: int, z: int, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    active = torch.zeros(batch, T, dtype=torch.bool)
    active.scatter_(1, torch.rand(batch, T, generator=gen).topk(z, dim=1).indices, True)
    bits = (torch.rand(batch, T, d + 1, generator=gen) < 0.5).float()
    bits[:, :, d] = 1.0
    return (bits * active[:, :, None]).reshape(batch, -1), active


@torch.no_grad()
def _fresh(net, exact: list[torch.Tensor]) -> list[torch.Tensor]:
    """Read-outs of each layer when it is fed the exact values of the layer before."""
    out = [exact[0]]
    for t, (inc, place) in enumerate(zip(net.incidences, net.placements)):
        small = torch.sparse.mm(inc, exact[t].T).T  # (batch, width) small pre-activations
        large = torch.relu(torch.sparse.mm(place.t(), small.T).T)  # (batch, D)
        out.append(torch.sparse.mm(place, large.T).T / net.S)
    return out


@torch.no_grad()
def measure(net, twin, T: int, d: int, z: int, samples: int, gen: torch.Generator,
            device: torch.device | str = "cpu"):
    """Per layer: sums of squared error (active, inactive, additive-law active / inactive,
    dedicated), cell counts, and indicator switch-ons."""
    evaluator = Evaluator(net.circuit, device)
    depth = net.circuit.depth + 1
    acc = torch.zeros(depth, 8, dtype=torch.float64)
    done = 0
    while done < samples:
        b = min(256, samples - done)
        x, active = _inputs(T, d, z, b, gen)  # drawn on the CPU: the same inputs on any device
        x, active = x.to(device), active.to(device)
        exact = evaluator(x)
        mask = active.repeat_interleave(d + 1, dim=1).double()
        reads, fresh, twins = net.read_features(x), _fresh(net, exact), twin.read_features(x)
        for t in range(depth):
            err = (reads[t] - exact[t]).double() ** 2
            new = (fresh[t] - exact[t]).double() ** 2
            on_reads = reads[t].view(b, T, d + 1)[:, :, d]
            acc[t] += torch.stack([
                (err * mask).sum(), (err * (1 - mask)).sum(), (new * mask).sum(), (new * (1 - mask)).sum(),
                mask.sum(), (1 - mask).sum(), ((on_reads > 0.5) & ~active).sum().double(),
                ((twins[t] - exact[t]).double() ** 2).sum()]).cpu()
        done += b
    rows, added_active, added_inactive = [], 0.0, 0.0
    for t in range(depth):
        e_act, e_in, f_act, f_in, n_act, n_in, switched, twin_err = acc[t].tolist()
        added_active += f_act / n_act
        added_inactive += f_in / max(n_in, 1)
        rows.append({"active_circuits": z, "layer": t, "mse_active": e_act / n_act,
                     "mse_inactive": e_in / max(n_in, 1), "predicted_mse_active": added_active,
                     "predicted_mse_inactive": added_inactive, "switched_on": switched / samples,
                     "mse_dedicated": twin_err / (n_act + n_in)})
    return rows


def body(p, ctx) -> Outcome:
    T, D, d, S, L = p["T"], p["D"], p["d"], p["S"], p["L"]
    smalls = small_circuits(T, d, L, ctx.generator("circuits"))
    net = compile_cis(smalls, D, S, ctx.generator("placement")).to(ctx.device)
    net.incidences = [m.to(ctx.device) for m in net.incidences]
    net.placements = [m.to(ctx.device) for m in net.placements]
    twin = compile_dedicated(net.circuit).to(ctx.device)
    rows = []
    for z in tqdm(p["z"], desc="active circuits", disable=not ctx.progress, leave=False):
        rows += measure(net, twin, T, d, z, p["samples"], ctx.generator(f"inputs:{z}"), ctx.device)
    summary = {
        "small_neurons_per_large_neuron": T * (d + 1) * S / D,
        "design_capacity": design_capacity(D, S * (d + 1)),
        "params_large": net.network.parameter_count(),
        "params_small_total": T * L * (d * (d + 1) + (d + 1) * (d + 1)),
    }
    summary |= _capacity(p, ctx)

    def figure():
        fig, ax = plots.figure(f"circuits in superposition: T={T}, D={D}, d={d}, S={S}", "layer",
                               "MSE per small feature", log_y=True)
        colors = ["tab:blue", "tab:orange", "tab:red", "tab:purple"]
        for k, z in enumerate(p["z"]):
            sel = [r for r in rows if r["active_circuits"] == z]
            x = [r["layer"] for r in sel]
            c = colors[k % len(colors)]
            plots.line(ax, x, [r["mse_active"] for r in sel], f"z={z}: active", c)
            plots.line(ax, x, [r["mse_inactive"] for r in sel], f"z={z}: inactive", c, "-s")
            plots.line(ax, x, [r["predicted_mse_active"] for r in sel], f"z={z}: additive law", c, ":")
        plots.line(ax, sorted({r["layer"] for r in rows}), [0.0] * (L + 1), "dedicated", plots.DEDICATED, "-^")
        ax.legend(fontsize=7)
        return fig

    return Outcome(rows, summary, {"mse_by_layer": figure})


def _capacity(p, ctx) -> dict:
    """Largest T (by bisection) whose active circuits stay within the MSE budget, per D."""
    d, S, L, z = p["d"], p["S"], p["L"], p["capacity_z"]
    measured = []
    for D in tqdm(p["capacity_D"], desc="capacity", disable=not ctx.progress, leave=False):
        cap = design_capacity(D, S * (d + 1))
        if cap < z:
            measured.append(None)
            continue

        def ok(T: int, D=D) -> bool:
            smalls = small_circuits(T, d, L, ctx.generator(f"capacity:{D}:{T}"))
            net = compile_cis(smalls, D, S, ctx.generator(f"capacity-placement:{D}:{T}"))
            rows = measure(net, compile_dedicated(net.circuit), T, d, z, p["capacity_samples"],
                           ctx.generator(f"capacity-inputs:{D}:{T}"))
            return rows[-1]["mse_active"] <= p["capacity_mse"]

        lo, hi = z - 1, cap  # ok(lo) holds by convention (no circuit at all)
        if ok(hi):
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        measured.append(lo if lo >= z else None)
    return {"capacity_D": list(p["capacity_D"]), "capacity_T_measured": measured,
            "capacity_T_theory": [D * D // (d * d) for D in p["capacity_D"]],
            "capacity_T_design": [design_capacity(D, S * (d + 1)) for D in p["capacity_D"]]}


scenario = Scenario("circuits-in-superposition",
                    "T small circuits in one network with z active: error of active and inactive circuits by layer",
                    PARAMS, body, check)
