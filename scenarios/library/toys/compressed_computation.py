"""compressed-computation: the residual-MLP toy of Braun et al. 2025, as re-examined by Bhagat,
Molas Medina, Giglemiani and Heimersheim 2025.

100 features x_i, each uniform in [-1, 1] with probability p and 0 otherwise, are embedded in a
residual stream by a fixed random W_E (unit columns, width ``embed``); one MLP layer of 50 ReLU
neurons adds to the stream, and the read-out W_E^T must give y_i = x_i + ReLU(x_i). Since
W_E^T W_E x = x + (W_E^T W_E - I) x, the MLP must output ReLU(x) + M x with the mixing matrix
M = I - W_E^T W_E; that equivalent model, y_hat = W_out ReLU(W_in x), is what is trained here,
for three variants:

- ``with_mixing``: M from the random embedding (the original setup);
- ``without_mixing``: M = 0 (an embedding with orthonormal columns);
- ``naive_baseline``: not trained: 50 neurons compute ReLU(x_i) of 50 features exactly, the
  other 50 outputs are 0 (so it pays E[ReLU(x)^2] = 1/6 per active dropped feature, and M x).

Every trained model of every p and variant is one instance of one batched run (Adam, cosine
schedule). Row keys (one row per variant and p): ``variant``, ``p``, ``loss`` (MSE per output),
``loss_per_feature`` (loss / p: per active feature, comparable across p), ``predicted_naive``
(the naive baseline's loss / p without mixing: 1/12). Summary keys: ``loss_with_mixing``,
``loss_without_mixing``, ``loss_naive`` (loss / p at ``p_default``), ``mixing_std`` (std of M's
off-diagonal entries, about 1/sqrt(embed)).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from einops import einsum
from matplotlib.figure import Figure
from tqdm import tqdm

from layers.threads import sized_threads
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

VARIANTS = ("with_mixing", "without_mixing", "naive_baseline")

PARAMS = {
    "features": Param(100, "features", low=2, high=10_000),
    "neurons": Param(50, "MLP neurons", low=1, high=10_000),
    "embed": Param(1000, "width of the residual stream (the random embedding)", low=1, high=100_000),
    "p": Param((0.003, 0.01, 0.03, 0.1), "probabilities that a feature is on", kind="list[float]",
               low=1e-5, high=1.0),
    "p_default": Param(0.01, "the p of the summary", kind="float", low=1e-5, high=1.0),
    "steps": Param(5000, "training steps", low=1),
    "batch": Param(1024, "samples per step", low=1),
    "lr": Param(3e-3, "Adam learning rate (cosine schedule to 0)", kind="float", above=0.0, high=10.0),
    "eval_samples": Param(100_000, "samples to measure each loss", low=100),
}


def check(p: Values) -> None:
    require(p.p_default in p.p, f"p_default: {p.p_default} is not one of p={list(p.p)}")
    models = 2 * len(p.p)
    need = FLOAT * (p.embed * p.features * 3 + models * (6 * p.neurons * p.features
                                                               + 4 * p.batch * (p.features + p.neurons)))
    require_memory(need, f"{models} models of {p.features} features, embedding width {p.embed}")


def mixing(features: int, embed: int, generator: torch.Generator) -> torch.Tensor:
    """M = I - W_E^T W_E for a random W_E with unit columns."""
    w = torch.randn(embed, features, generator=generator)
    w = w / w.norm(dim=0, keepdim=True)
    return torch.eye(features) - w.T @ w


def sample(probs: torch.Tensor, batch: int, features: int, generator: torch.Generator) -> torch.Tensor:
    """(instances, batch, features): uniform in [-1, 1] with each instance's probability, else 0."""
    on = torch.rand(len(probs), batch, features, generator=generator) < probs[:, None, None]
    return (2 * torch.rand(len(probs), batch, features, generator=generator) - 1) * on


def labels(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """ReLU(x) + M x per instance (M: instances x features x features)."""
    return torch.relu(x) + einsum(m, x, "k i j, k b j -> k b i")


def train(p: Values, ctx: Context, m: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k, f, h = len(probs), p.features, p.neurons
    gen = ctx.generator("init")
    w_in = torch.nn.Parameter(torch.randn(k, h, f, generator=gen) / math.sqrt(f))
    w_out = torch.nn.Parameter(torch.randn(k, f, h, generator=gen) / math.sqrt(h))
    opt = torch.optim.Adam([w_in, w_out], lr=p.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, p.steps)
    data = ctx.generator("data")
    with sized_threads(w_in.shape[0] * p.batch * f):
        for _ in tqdm(range(p.steps), desc="training", disable=not ctx.progress, leave=False):
            x = sample(probs, p.batch, f, data)
            out = einsum(w_out, torch.relu(einsum(w_in, x, "k h f, k b f -> k b h")), "k f h, k b h -> k b f")
            loss = ((out - labels(x, m)) ** 2).mean(dim=(1, 2)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return w_in.detach(), w_out.detach()


@torch.no_grad()
def evaluate(p: Values, ctx: Context, m: torch.Tensor, probs: torch.Tensor,
             predict: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """MSE per output of ``predict(x)`` against the labels, per instance, on fresh samples."""
    gen = ctx.generator("eval")
    total = torch.zeros(len(probs), dtype=torch.float64)
    done = 0
    while done < p.eval_samples:
        b = min(8192, p.eval_samples - done)
        x = sample(probs, b, p.features, gen)
        total += ((predict(x) - labels(x, m)) ** 2).double().sum(dim=(1, 2))
        done += b
    return total / (p.eval_samples * p.features)


def body(p: Values, ctx: Context) -> Outcome:
    f, h = p.features, p.neurons
    ps = list(p.p)
    m_mix = mixing(f, p.embed, ctx.generator("embedding"))
    # instances: every p with mixing, then every p without
    probs = torch.tensor(ps * 2)
    m = torch.stack([m_mix] * len(ps) + [torch.zeros(f, f)] * len(ps))
    w_in, w_out = train(p, ctx, m, probs)

    def trained(x: torch.Tensor) -> torch.Tensor:
        return einsum(w_out, torch.relu(einsum(w_in, x, "k h f, k b f -> k b h")), "k f h, k b h -> k b f")

    def naive(x: torch.Tensor) -> torch.Tensor:  # ReLU of the first min(h, f) features, 0 elsewhere
        out = torch.zeros_like(x)
        out[:, :, :h] = torch.relu(x[:, :, :h])
        return out

    losses = evaluate(p, ctx, m, probs, trained)
    naive_mix = evaluate(p, ctx, m[:len(ps)], probs[:len(ps)], naive)
    dropped = max(f - h, 0) / f
    rows = []
    for i, prob in enumerate(ps):
        for variant, loss in (("with_mixing", losses[i]), ("without_mixing", losses[len(ps) + i]),
                              ("naive_baseline", naive_mix[i])):
            rows.append({"variant": variant, "p": prob, "loss": float(loss), "loss_per_feature": float(loss) / prob,
                         "predicted_naive": dropped / 6})
    at = {r["variant"]: r["loss_per_feature"] for r in rows if r["p"] == p.p_default}
    off = m_mix[~torch.eye(f, dtype=torch.bool)]
    summary = {"loss_with_mixing": at["with_mixing"], "loss_without_mixing": at["without_mixing"],
               "loss_naive": at["naive_baseline"], "predicted_naive_without_mixing": dropped / 6,
               "mixing_std": float(off.std()), "predicted_mixing_std": 1 / math.sqrt(p.embed)}
    return Outcome(rows, summary)


def loss_by_p_figure(result: Result) -> Figure:
    rows = result.rows
    dropped = 6 * result.summary["predicted_naive_without_mixing"]
    fig, ax = plots.figure("compressed computation: loss per active feature", "p (feature probability)",
                           "loss / p")
    ax.set_xscale("log")
    for variant, color in zip(VARIANTS, (plots.MEASURED, "tab:orange", "grey")):
        sel = [r for r in rows if r["variant"] == variant]
        plots.line(ax, [r["p"] for r in sel], [r["loss_per_feature"] for r in sel], variant.replace("_", " "),
                   color, "-o" if variant != "naive_baseline" else "--s")
    ax.axhline(dropped / 6, color="black", lw=0.8, ls=":", label="naive without mixing: (f - h) / (6 f)")
    plots.finish(ax)
    return fig


scenario = Scenario(
    name="compressed-computation",
    description="the residual-MLP toy: does it compute in superposition, or exploit its embedding's mixing?",
    params=PARAMS,
    body=body,
    figures={"loss_by_p": loss_by_p_figure},
    check=check,
    devices=("cpu",),
    cost="minutes",
)
