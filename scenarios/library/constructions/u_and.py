"""u-and: Universal-AND's error law, case by case, with basis and superposed inputs.

One U-AND layer (d neurons, connection probability p, bias -(k - 1)) reads k-input ANDs of
m features with ``active`` of them on. For each case (how many of the AND's inputs are on:
``11``, ``10``, ``00`` for k = 2) the scenario samples ANDs of that case on every input and
compares the read-out error with docs/theory.md 3.2's law (see ``circuits.theory.uand_case``).

Row keys (one row per case): ``case``, ``mean_error``, ``std_error``, ``predicted_mean``,
``predicted_std``, ``predicted_std_independent`` (superposed inputs' noise taken as independent
across neurons, as docs/theory.md's per-neuron variance reads; equal to ``predicted_std`` for d0 = 0),
``error_rate`` (share with |error| > 1/2), ``reads``, ``unreadable`` (ANDs
with no shared neuron, left out of the statistics).
Summary keys: ``neurons``, ``pairs`` (m(m-1)/2), ``pairs_per_neuron``, ``mean_shared_neurons``,
``predicted_shared_neurons`` (p^k d), ``dedicated_neurons`` (one per pair), and the sweeps
``sweep_d``, ``sweep_p``, ``sweep_d0``: lists of {value, std_on (all inputs on), predicted_std_on,
predicted_std_on_independent, mean_off (one input off), predicted_mean_off}.
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from circuits import theory
from circuits.compile import compile_dedicated
from circuits.sampling import ExactlyActive
from circuits.spec import Circuit, Gate
from circuits.uand import WIRING_CHUNK, UAndNetwork, and_reads, compile_uand
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

PARAMS = {
    "m": Param(1000, "input features", low=2),
    "d": Param(1000, "neurons", low=1),
    "p": Param(0.1, "connection probability", kind="float", low=1e-6, high=1.0),
    "k": Param(2, "inputs per AND", low=2, high=8),
    "active": Param(3, "active input features", low=0),
    "d0": Param(0, "input stream width (0: inputs on the basis, no superposition)", low=0),
    "samples": Param(4000, "sampled inputs", low=1),
    "per_case": Param(32, "ANDs read per case and input", low=1),
    "sweep_d": Param((250, 500, 1000, 2000), "neuron counts of the sweep over d", kind="list[int]", low=1),
    "sweep_p": Param((0.05, 0.1, 0.2, 0.4), "probabilities of the sweep over p", kind="list[float]",
                     low=1e-6, high=1.0),
    "sweep_d0": Param((0, 4000, 2000, 1000, 500), "input widths of the sweep over d0", kind="list[int]", low=0),
    "sweep_samples": Param(1000, "sampled inputs per sweep point", low=1),
}


def check(p: Values) -> None:
    require(p.active <= p.m, f"active: must be <= m={p.m}, got {p.active}")
    require(p.k <= p.m, f"k: must be <= m={p.m}, got {p.k}")
    d = max(p.d, *p.sweep_d)
    m, d0, prob = p.m, max(p.d0, *p.sweep_d0), max(p.p, *p.sweep_p)
    # the read weight (dense at worst), its coordinate lists, the (m, d) wiring mask, the input
    # directions and their product with the wiring, one batch of sampled ANDs
    need = (FLOAT * d * m + 20 * prob * d * m + d * m + FLOAT * 2 * d0 * (m + d)
            + (1 + FLOAT) * 128 * p.per_case * d + FLOAT * WIRING_CHUNK)
    require_memory(need, f"m={p.m}, d={d}: the wiring of the U-AND neurons")


def _subsets(active: torch.Tensor, m: int, on: int, k: int, count: int, gen: torch.Generator) -> torch.Tensor:
    """For each input (its (b, l) active indices), ``count`` random k-subsets with ``on`` active and
    k - on inactive features, drawn without any (b, count, m) tensor."""
    b, l = active.shape
    pick_on = active.gather(1, torch.rand(b, count * l, generator=gen).view(b, count, l)
                            .topk(on, dim=-1).indices.view(b, -1)).view(b, count, on)
    off = k - on
    pick_off = torch.randint(0, m, (b, count, off), generator=gen)
    while off:  # redraw subsets that hit an active feature or repeat one: uniform over valid ones
        hit = (pick_off[..., :, None] == active[:, None, None, :]).any(-1).any(-1)
        ordered = pick_off.sort(dim=-1).values
        bad = hit | (ordered[..., 1:] == ordered[..., :-1]).any(-1)
        if not bad.any():
            break
        pick_off[bad] = torch.randint(0, m, (int(bad.sum()), off), generator=gen)
    return torch.cat([pick_on, pick_off], dim=-1)


def _measure(p: Values, ctx: Context, d: int, prob: float, d0: int, samples: int, tag: str) -> dict[int, dict]:
    """Per number of on inputs: error statistics of sampled ANDs."""
    m, k, l = p.m, p.k, p.active
    circuit = Circuit(m, [[Gate("AND", tuple(range(k)))]])  # the network is universal: any AND reads
    net = compile_uand(circuit, d, prob, d0, ctx.generator(f"uand:{tag}"))
    net = ctx.place(net)
    sampler = ExactlyActive(m, l, ctx.seed_for(f"inputs:{tag}"))  # drawn on the CPU: same inputs on any device
    gen = ctx.generator(f"subsets:{tag}")
    cases = [on for on in range(k, -1, -1) if on <= l and k - on <= m - l]
    sums = {on: torch.zeros(5, dtype=torch.float64) for on in cases}  # n, sum, sum^2, wrong, unreadable
    done = 0
    while done < samples:
        b = min(128, samples - done)
        active = sampler.sample_active(b)
        x = torch.zeros(b, m).scatter_(1, active, 1.0)
        for on in cases:
            subsets = _subsets(active, m, on, k, p.per_case, gen).to(ctx.device)
            reads, counts = and_reads(net, x.to(ctx.device), subsets)
            ok = counts > 0
            err = (reads - (1.0 if on == k else 0.0))[ok].double().cpu()
            sums[on] += torch.stack([torch.tensor(float(err.numel())), err.sum(), (err * err).sum(),
                                     (err.abs() > 0.5).sum().double(), (~ok).sum().double().cpu()])
        done += b
    out = {}
    for on, (n, s, q, wrong, bad) in ((on, v.tolist()) for on, v in sums.items()):
        mean = s / n if n else 0.0
        pm, ps = theory.uand_case(on, k, l, prob, d, m, d0)
        _, ps_ind = theory.uand_case(on, k, l, prob, d, m, d0, correlated=False)
        out[on] = {"n": n, "mean": mean, "std": max(q / n - mean * mean, 0.0) ** 0.5 if n else 0.0,
                   "rate": wrong / n if n else 0.0, "bad": bad, "pred_mean": pm, "pred_std": ps,
                   "pred_std_ind": ps_ind}
    out["net"] = net
    return out


def body(p: Values, ctx: Context) -> Outcome:
    k = p.k
    main = _measure(p, ctx, p.d, p.p, p.d0, p.samples, "main")
    net = main.pop("net")
    rows = []
    for on, r in main.items():
        rows.append({"case": "1" * on + "0" * (k - on), "mean_error": r["mean"], "std_error": r["std"],
                     "predicted_mean": r["pred_mean"], "predicted_std": r["pred_std"],
                     "predicted_std_independent": r["pred_std_ind"], "error_rate": r["rate"],
                     "reads": int(r["n"]), "unreadable": int(r["bad"])})
    pairs = p.m * (p.m - 1) // 2
    summary = {"neurons": p.d, "pairs": pairs, "pairs_per_neuron": pairs / p.d,
               "mean_shared_neurons": _mean_shared(net, k),
               "predicted_shared_neurons": p.p ** k * p.d, "dedicated_neurons": pairs}
    sweeps = {}
    for key, values in (("sweep_d", p.sweep_d), ("sweep_p", p.sweep_p), ("sweep_d0", p.sweep_d0)):
        points = []
        for v in tqdm(values, desc=key, disable=not ctx.progress, leave=False):
            d, prob, d0 = (v, p.p, p.d0) if key == "sweep_d" else \
                (p.d, v, p.d0) if key == "sweep_p" else (p.d, p.p, v)
            r = _measure(p, ctx, d, prob, d0, p.sweep_samples, f"{key}:{v}")
            r.pop("net")
            full, one_off = r.get(k), r.get(k - 1)
            points.append({"value": v,
                           "std_on": full["std"] if full else None,
                           "predicted_std_on": full["pred_std"] if full else None,
                           "predicted_std_on_independent": full["pred_std_ind"] if full else None,
                           "mean_off": one_off["mean"] if one_off else None,
                           "predicted_mean_off": one_off["pred_mean"] if one_off else None})
        sweeps[key] = points
    summary |= sweeps
    return Outcome(rows, summary)


def _mean_shared(net: UAndNetwork, k: int) -> float:
    """Mean number of neurons shared by k random distinct inputs (all pairs for k = 2)."""
    if k == 2:  # over ordered pairs a != b: each neuron of degree g is shared by g (g - 1) of them
        d, m = net.connections.shape
        degree = torch.bincount(net.connections.coalesce().indices()[0].cpu(), minlength=d).double()
        return float((degree * (degree - 1)).sum() / (m * (m - 1)))
    return float(net.shared_counts.mean())


def error_vs_d_p_d0_figure(result: Result) -> Figure:
    p, sweeps = result.p, result.summary
    k, pairs = p.k, result.summary["pairs"]
    fig = Figure(figsize=(12, 3.8))
    for ax, (key, label) in zip(fig.subplots(1, 3), (("sweep_d", "neurons d"), ("sweep_p", "probability p"),
                                                     ("sweep_d0", "input width d0"))):
        pts = sorted((pt for pt in sweeps[key] if key != "sweep_d0" or pt["value"] > 0),
                     key=lambda pt: pt["value"])
        basis = [pt for pt in sweeps[key] if key == "sweep_d0" and pt["value"] == 0]
        if basis and basis[0]["std_on"] is not None:  # d0 = 0: inputs on the basis, no curve to join
            ax.axhline(basis[0]["std_on"], color=plots.MEASURED, ls="--", lw=0.8, label="std, basis inputs")
        x = [pt["value"] for pt in pts]
        plots.line(ax, x, [pt["std_on"] for pt in pts], "std, all inputs on", plots.MEASURED)
        plots.line(ax, x, [pt["predicted_std_on"] for pt in pts], "predicted", plots.PREDICTED, "--")
        plots.line(ax, x, [pt["predicted_std_on_independent"] for pt in pts], "predicted, noise independent",
                   "tab:gray", ":")
        plots.line(ax, x, [pt["mean_off"] for pt in pts], "mean, one input off", "tab:orange")
        plots.line(ax, x, [pt["predicted_mean_off"] for pt in pts], "predicted", "tab:red", ":")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    fig.axes[0].set_ylabel("read-out error")
    fig.axes[0].legend(fontsize=7)
    fig.suptitle(f"U-AND, m={p.m}, l={p.active}, k={k}: error against d, p and d0 "
                 f"(dedicated: {pairs} neurons, error 0)", fontsize=10)
    return fig


def networks(p: Values, ctx: Context) -> dict:
    """The main U-AND network (its wiring as the run draws it), listing m of the ANDs it reads:
    AND(i, i + 1, ..., i + k - 1 mod m) for every feature i; and its dedicated twin."""
    gates = [Gate("AND", tuple((i + j) % p.m for j in range(p.k))) for i in range(p.m)]
    circuit = Circuit(p.m, [gates])
    return {"superposed": compile_uand(circuit, p.d, p.p, p.d0, ctx.generator("uand:main")),
            "dedicated": compile_dedicated(circuit)}


scenario = Scenario(
    name="u-and",
    description="Universal-AND: error of each case against docs/theory.md's law, against d, p and d0",
    params=PARAMS,
    body=body,
    figures={"error_vs_d_p_d0": error_vs_d_p_d0_figure},
    networks=networks,
    check=check,
    cost="minutes",
)
