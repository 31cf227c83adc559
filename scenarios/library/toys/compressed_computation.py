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

and, at ``p_default``, the mixing matrix's strength: M scaled by each of ``mixing_scale`` (the
embedding's noise scaled; 1 is the original, 0 no mixing), trained (``scaled_mixing``) and
naive (``naive_scaled``), whose loss per active feature is (f - h) / (6 f) + s^2 |M|_F^2 / (3 f)
in closed form (``predicted_naive_mixed``): the dropped ReLUs plus the mixing it ignores.

Every trained model of every p and variant is one instance of one batched run (Adam, cosine
schedule), the mixing strengths another. Row keys (one row per variant and p): ``variant``, ``p``,
``loss`` (MSE per output), ``loss_per_feature`` (loss / p: per active feature, comparable across
p), ``predicted_naive`` (the naive baseline's loss / p without mixing: 1/12), ``mixing_scale`` and
``mixing_std`` (of the M the row's labels carry), ``predicted_naive_mixed``. Summary keys: ``loss_with_mixing``,
``loss_without_mixing``, ``loss_naive`` (loss / p at ``p_default``), ``mixing_std`` (std of M's
off-diagonal entries, about 1/sqrt(embed)), ``best_mixing_scale`` and ``best_mixing_std`` (where
the trained loss per feature is lowest over the scales, 0 and 1 included), ``loss_at_best_mixing``,
``gain_at_best_mixing`` (1 - that loss over the naive one without mixing).
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
SCALED = ("scaled_mixing", "naive_scaled")

PARAMS = {
    "features": Param(100, "features", low=2, high=10_000),
    "neurons": Param(50, "MLP neurons", low=1, high=10_000),
    "embed": Param(1000, "width of the residual stream (the random embedding)", low=1, high=100_000),
    "p": Param((0.003, 0.01, 0.03, 0.1), "probabilities that a feature is on", kind="list[float]",
               low=1e-5, high=1.0),
    "p_default": Param(0.01, "the p of the summary and of the mixing-strength sweep", kind="float", low=1e-5,
                       high=1.0),
    "mixing_scale": Param((0.25, 0.5, 1.5, 2.0, 3.0), "factors on the mixing matrix M, trained at p_default "
                          "beside 0 (without) and 1 (with)", kind="list[float]", low=0.0, high=100.0),
    "steps": Param(5000, "training steps", low=1),
    "batch": Param(1024, "samples per step", low=1),
    "lr": Param(3e-3, "Adam learning rate (cosine schedule to 0)", kind="float", above=0.0, high=10.0),
    "eval_samples": Param(100_000, "samples to measure each loss", low=100),
}


def check(p: Values) -> None:
    require(p.p_default in p.p, f"p_default: {p.p_default} is not one of p={list(p.p)}")
    models = 2 * len(p.p)  # the strengths' run is trained after, never beside, this one
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


def train(p: Values, ctx: Context, m: torch.Tensor, probs: torch.Tensor,
          tag: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """One model per instance (labels with m[k], inputs with probs[k]), all at once; ``tag`` names
    the draws, so one batch of instances never moves another's."""
    k, f, h = len(probs), p.features, p.neurons
    gen = ctx.generator(f"{tag}init")
    w_in = torch.nn.Parameter(torch.randn(k, h, f, generator=gen) / math.sqrt(f))
    w_out = torch.nn.Parameter(torch.randn(k, f, h, generator=gen) / math.sqrt(h))
    opt = torch.optim.Adam([w_in, w_out], lr=p.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, p.steps)
    data = ctx.generator(f"{tag}data")
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
             predict: Callable[[torch.Tensor], torch.Tensor], tag: str = "") -> torch.Tensor:
    """MSE per output of ``predict(x)`` against the labels, per instance, on fresh samples."""
    gen = ctx.generator(f"{tag}eval")
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
    # every other mixing strength at p_default: a second batched run, with draws of its own
    scales = [sc for sc in p.mixing_scale if sc not in (0.0, 1.0)]
    probs_s = torch.tensor([p.p_default] * len(scales))
    m_s = torch.stack([sc * m_mix for sc in scales]) if scales else torch.zeros(0, f, f)
    w_in_s, w_out_s = train(p, ctx, m_s, probs_s, "strength:") if scales else (None, None)

    def mlp(w_in: torch.Tensor, w_out: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda x: einsum(w_out, torch.relu(einsum(w_in, x, "k h f, k b f -> k b h")), "k f h, k b h -> k b f")

    def naive(x: torch.Tensor) -> torch.Tensor:  # ReLU of the first min(h, f) features, 0 elsewhere
        out = torch.zeros_like(x)
        out[:, :, :h] = torch.relu(x[:, :, :h])
        return out

    losses = evaluate(p, ctx, m, probs, mlp(w_in, w_out))
    naive_mix = evaluate(p, ctx, m[:len(ps)], probs[:len(ps)], naive)
    if scales:
        losses_s = evaluate(p, ctx, m_s, probs_s, mlp(w_in_s, w_out_s), "strength:")
        naive_s = evaluate(p, ctx, m_s, probs_s, naive, "strength:")
    dropped = max(f - h, 0) / f
    off = m_mix[~torch.eye(f, dtype=torch.bool)]
    std, frobenius = float(off.std()), float((m_mix.double() ** 2).sum())

    def row(variant: str, prob: float, loss: torch.Tensor, scale: float) -> dict:
        return {"variant": variant, "p": prob, "loss": float(loss), "loss_per_feature": float(loss) / prob,
                "predicted_naive": dropped / 6, "mixing_scale": scale, "mixing_std": scale * std,
                "predicted_naive_mixed": dropped / 6 + scale**2 * frobenius / (3 * f)}

    rows = []
    for i, prob in enumerate(ps):
        rows += [row("with_mixing", prob, losses[i], 1.0), row("without_mixing", prob, losses[len(ps) + i], 0.0),
                 row("naive_baseline", prob, naive_mix[i], 1.0)]
    for j, sc in enumerate(scales):
        rows += [row("scaled_mixing", p.p_default, losses_s[j], sc), row("naive_scaled", p.p_default, naive_s[j], sc)]
    at = {r["variant"]: r["loss_per_feature"] for r in rows if r["p"] == p.p_default}
    best = min(_strength_curve(rows, p.p_default), key=lambda r: r["loss_per_feature"])
    summary = {"loss_with_mixing": at["with_mixing"], "loss_without_mixing": at["without_mixing"],
               "loss_naive": at["naive_baseline"], "predicted_naive_without_mixing": dropped / 6,
               "mixing_std": std, "predicted_mixing_std": 1 / math.sqrt(p.embed),
               "best_mixing_scale": best["mixing_scale"], "best_mixing_std": best["mixing_std"],
               "loss_at_best_mixing": best["loss_per_feature"],
               "gain_at_best_mixing": 1 - best["loss_per_feature"] / (dropped / 6)}
    return Outcome(rows, summary)


def _strength_curve(rows: list[dict], p_default: float) -> list[dict]:
    """The trained rows at p_default by mixing strength: without (0), scaled, with (1)."""
    kinds = ("with_mixing", "without_mixing", "scaled_mixing")
    return sorted((r for r in rows if r["p"] == p_default and r["variant"] in kinds), key=lambda r: r["mixing_scale"])


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


def loss_by_mixing_figure(result: Result) -> Figure:
    """Loss per active feature against the mixing matrix's strength, at p_default."""
    rows, s, p = result.rows, result.summary, result.p
    curve = _strength_curve(rows, p.p_default)
    fig, ax = plots.figure(f"compressed computation against mixing strength (p = {p.p_default:g})",
                           "std of the mixing matrix's entries (scale x that of the embedding)", "loss / p")
    plots.line(ax, [r["mixing_std"] for r in curve], [r["loss_per_feature"] for r in curve], "trained",
               plots.MEASURED)
    naive = sorted((r for r in rows if r["p"] == p.p_default and r["variant"] in ("naive_baseline", "naive_scaled")),
                   key=lambda r: r["mixing_scale"])
    plots.line(ax, [r["mixing_std"] for r in naive], [r["loss_per_feature"] for r in naive],
               "naive on the mixed labels", "grey", "s")
    xs = [r["mixing_std"] for r in curve]
    ax.plot(xs, [r["predicted_naive_mixed"] for r in curve], "--", color="grey", lw=1,
            label="naive, closed form: (f - h)/(6f) + s^2 |M|_F^2/(3f)")
    ax.axhline(s["predicted_naive_without_mixing"], color="black", lw=0.8, ls=":",
               label="naive without mixing: (f - h) / (6 f)")
    ax.axvline(s["mixing_std"], color=plots.MEASURED, lw=0.6, ls=":", label="the embedding's own mixing")
    ax.scatter([s["best_mixing_std"]], [s["loss_at_best_mixing"]], marker="*", s=80, color="tab:red", zorder=3,
               label=f"lowest: {s['loss_at_best_mixing']:.3f} at scale {s['best_mixing_scale']:g}")
    top = max(r["loss_per_feature"] for r in curve)
    ax.set_ylim(0, 1.15 * max(top, s["predicted_naive_without_mixing"]))
    plots.finish(ax)
    return fig


scenario = Scenario(
    name="compressed-computation",
    description="the residual-MLP toy: does it compute in superposition, or exploit its embedding's mixing?",
    params=PARAMS,
    body=body,
    figures={"loss_by_p": loss_by_p_figure, "loss_by_mixing": loss_by_mixing_figure},
    check=check,
    devices=("cpu",),
    cost="minutes",
)
