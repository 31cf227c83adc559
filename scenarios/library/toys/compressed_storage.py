"""compressed-storage: T Bernoulli(p) features stored in D dimensions and read linearly.

Three ways to store them: along T random unit vectors, read back with the best scalar multiple
of the dot product (fitted on held-out samples); D of them exactly on the basis, the other T - D
guessed as their mean p (the dedicated network, the baseline that superposition must beat); and
a trained linear autoencoder x_hat = W^T W x + b (W of shape D x T, Adam on the MSE).

Row keys (one row per T, D, p): ``T``, ``D``, ``p``, ``mse_random``, ``predicted_random``
(T p / (T + D)), ``mse_dedicated``, ``predicted_dedicated`` (p (1 - p)(T - D) / T), ``mse_trained``,
``scale_random`` (the fitted alpha, against D / (D + T)), ``predicted_scale``.
Summary keys: ``random_beats_dedicated`` (in how many settings: none is expected, since
T / (T + D) >= (1 - p)(T - D) / T for every p: read linearly, superposition stores nothing better
than dropping features), ``settings``, ``samples``.
"""

from __future__ import annotations

import itertools

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from circuits import theory
from circuits.readout import best_scale
from circuits.sampling import Bernoulli
from layers import make_embedding
from layers.threads import sized_threads
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

PARAMS = {
    "T": Param((500,), "features stored", kind="list[int]", low=1, high=100_000),
    "D": Param((25, 50, 100, 250), "dimensions", kind="list[int]", low=1, high=100_000),
    "p": Param((0.02, 0.1), "probability that a feature is on", kind="list[float]", low=1e-6, high=1.0),
    "samples": Param(20000, "held-out samples per setting", low=100),
    "steps": Param(1500, "training steps of the linear autoencoder (0: skip it)", low=0),
    "batch": Param(512, "samples per training step", low=1),
    "lr": Param(0.01, "Adam learning rate of the autoencoder", kind="float", above=0.0, high=10.0),
}


def check(p: Values) -> None:
    T, D = max(p.T), max(p.D)
    need = FLOAT * (6 * T * D + 8 * 4096 * (T + D))
    require_memory(need, f"T={T}, D={D}: the embeddings and one batch")


def _trained(T: int, D: int, prob: float, p: Values, gen: torch.Generator, sampler: Bernoulli) -> torch.nn.Module:
    w = torch.nn.Parameter(torch.randn(D, T, generator=gen) / T**0.5)
    b = torch.nn.Parameter(torch.zeros(T))
    opt = torch.optim.Adam([w, b], lr=p.lr)
    with sized_threads(p.batch * T):
        for _ in range(p.steps):
            x = sampler.sample(p.batch)
            loss = ((x @ w.T @ w + b - x) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return w.detach(), b.detach()


@torch.no_grad()
def _measure(T: int, D: int, prob: float, p: Values, ctx: Context) -> dict:
    tag = f"{T}:{D}:{prob}"
    phi = make_embedding("random", T, D, ctx.generator(f"embedding:{tag}"))  # (T, D) unit rows
    fit = Bernoulli(T, prob, ctx.seed_for(f"fit:{tag}")).sample(4096)
    scale = best_scale(fit @ phi @ phi.T, fit)
    trained = None
    if p.steps and D < T:
        with torch.enable_grad():
            data = Bernoulli(T, prob, ctx.seed_for(f"train:{tag}"))
            trained = _trained(T, D, prob, p, ctx.generator(f"init:{tag}"), data)
    sampler = Bernoulli(T, prob, ctx.seed_for(f"eval:{tag}"))
    sums = torch.zeros(3, dtype=torch.float64)
    kept = min(D, T)
    done = 0
    while done < p.samples:
        x = sampler.sample(min(4096, p.samples - done))
        guess = x.clone()
        guess[:, kept:] = prob  # the dedicated network: D features exact, the rest their mean
        sums[0] += ((scale * (x @ phi @ phi.T) - x) ** 2).double().sum()
        sums[1] += ((guess - x) ** 2).double().sum()
        if trained is not None:
            w, b = trained
            sums[2] += ((x @ w.T @ w + b - x) ** 2).double().sum()
        done += len(x)
    cells = p.samples * T
    return {"T": T, "D": D, "p": prob,
            "mse_random": float(sums[0]) / cells, "predicted_random": theory.storage_mse_random(T, D, prob),
            "mse_dedicated": float(sums[1]) / cells, "predicted_dedicated": theory.storage_mse_dedicated(T, D, prob),
            "mse_trained": float(sums[2]) / cells if trained is not None else None,
            "scale_random": scale, "predicted_scale": D / (D + T)}


def body(p: Values, ctx: Context) -> Outcome:
    settings = list(itertools.product(p.T, p.D, p.p))
    rows = [_measure(T, D, prob, p, ctx)
            for T, D, prob in tqdm(settings, desc="settings", disable=not ctx.progress, leave=False)]
    # T / (T + D) >= (1 - p)(T - D) / T always: a linear read-out gains nothing from superposition
    wins = sum(r["mse_random"] < r["mse_dedicated"] for r in rows)
    summary = {"random_beats_dedicated": wins, "settings": len(rows), "samples": p.samples}
    return Outcome(rows, summary)


def mse_by_D_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    fig, ax = plots.figure("compressed storage: MSE per feature against D", "D (dimensions)", "MSE per feature")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for k, (T, prob) in enumerate(itertools.product(p.T, p.p)):
        sel = sorted((r for r in rows if r["T"] == T and r["p"] == prob), key=lambda r: r["D"])
        d = [r["D"] for r in sel]
        c = f"C{k % 10}"
        tag = f"T={T}, p={prob:g}"
        plots.line(ax, d, [r["mse_random"] for r in sel], f"{tag}: random", c, "o")
        plots.line(ax, d, [r["predicted_random"] for r in sel], f"{tag}: T p / (T + D)", c, "-")
        # dedicated as large hollow squares, trained as crosses on top: they often coincide
        plots.line(ax, d, [r["mse_dedicated"] or None for r in sel], f"{tag}: dedicated", c, "s", ms=9,
                   mfc="none")
        plots.line(ax, d, [r["predicted_dedicated"] or None for r in sel], f"{tag}: p (1 - p)(T - D) / T", c, ":")
        plots.line(ax, d, [r["mse_trained"] for r in sel], f"{tag}: trained linear", c, "x", ms=6, zorder=3)
    plots.value_ticks(ax, [r["D"] for r in rows])
    plots.finish(ax)
    return fig


scenario = Scenario(
    name="compressed-storage",
    description="T Bernoulli features in D dimensions, read linearly: random, dedicated and trained storage",
    params=PARAMS,
    body=body,
    figures={"mse_by_D": mse_by_D_figure},
    check=check,
    devices=("cpu",),
    cost="minutes",
)
