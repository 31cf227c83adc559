"""superposition-scaling: "Superposition Yields Robust Neural Scaling" (Liu, Liu and Gore 2025): the
toy x' = ReLU(W W^T x + b) trained over width m and weight decay, loss against m.

``features`` features; feature i is on with probability p_i = i^-(1 + alpha) / sum_j j^-(1 + alpha)
(one feature on per sample on average) and then uniform in [0, 2]. W is (features, m), one row
per feature; the loss is the MSE over features. Weight decay gamma sets how much superposition
the model keeps: gamma > 0 shrinks every weight by lr * gamma per step (weak superposition: the
frequent features get rows, the rest none), gamma < 0 grows each row towards unit norm, by
lr * |gamma| * (|W_i| - 1) (strong superposition: every feature gets a row, and rows overlap).
Every width, alpha and weight decay is one model of one batched run (Adam, warm-up then cosine,
the same inputs for every model of a step; one batched product per width).

The two laws, printed beside what is measured:
- weak superposition: the m most frequent features are exact and each other one costs its
  variance, so loss = (1/features) sum_{i > m} (4/3 p_i - p_i^2) (``predicted_weak_loss``),
  about m^-alpha for many features;
- strong superposition: every feature is represented and reads the others through overlaps of
  mean square about 1/m (random directions in R^m), so loss ~ 1/m whatever alpha.

Row keys (one row per alpha, weight decay and width): ``alpha``, ``weight_decay``, ``width``,
``loss``, ``predicted_weak_loss``, ``represented`` (the share of features whose row has norm > 1/2),
``mean_sq_overlap`` (mean of (W_i . W_j)^2 / (|W_i|^2 |W_j|^2) over pairs of represented features),
``predicted_mean_sq_overlap`` (1/m).
Summary keys: ``fits`` (per alpha and weight decay: the fitted exponent of loss against m with
its 95% interval, the regime the shares say: strong when every width represents over 90% of the
features, weak when none represents more than m; the law's exponent there, -1 or -alpha, and
the exponent of ``predicted_weak_loss`` itself over these widths, which a finite feature count
steepens), ``dedicated_loss`` (0: with features dimensions no feature shares one).
"""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from layers.threads import sized_threads
from scenarios import plots
from scenarios.engine.fits import fit_power_law
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

PARAMS = {
    "features": Param(200, "features (the paper: 1000)", low=2, high=100_000),
    "widths": Param((5, 8, 12, 20, 32), "widths m (hidden dimensions)", kind="list[int]", low=1, high=10_000),
    "alpha": Param((0.5, 1.0), "exponents of the feature frequencies: p_i ~ i^-(1 + alpha)", kind="list[float]",
                   low=0.0, high=4.0),
    "weight_decay": Param((-1.0, 0.0, 1.0), "weight decays (negative: each row grows towards unit norm)",
                          kind="list[float]", low=-10.0, high=10.0),
    "steps": Param(4000, "training steps (the paper: 20,000)", low=1),
    "batch": Param(1024, "samples per step (the paper: 2048)", low=1),
    "lr": Param(1e-2, "peak Adam learning rate (linear warm-up over the first tenth, cosine to 5%)", kind="float",
                above=0.0, high=1.0),
    "eval_samples": Param(65_536, "samples to measure each loss", low=100),
}
REPRESENTED = 0.5  # a feature is represented when its row's norm passes this
EVAL_CHUNK = 4096


def check(p: Values) -> None:
    require(max(p.widths) <= p.features, f"widths: {max(p.widths)} is more than features={p.features}; "
                                         "a width past the feature count has nothing to share")
    models = len(p.widths) * len(p.alpha) * len(p.weight_decay)
    rows = max(p.batch, EVAL_CHUNK)
    need = FLOAT * models * (6 * p.features * max(p.widths) + 6 * rows * (p.features + max(p.widths)))
    require_memory(need, f"{models} models of {p.features} features, batch {p.batch}")
    if p.lr * max(p.weight_decay) >= 1:
        require(False, f"weight_decay={max(p.weight_decay):g} with lr={p.lr:g} shrinks each weight by "
                       f"lr * weight_decay >= 1 per step; lower one of them")


def frequencies(features: int, alpha: float) -> torch.Tensor:
    """p_i = i^-(1 + alpha), normalised to sum 1."""
    p = torch.arange(1, features + 1, dtype=torch.float64) ** -(1.0 + alpha)
    return p / p.sum()


def sample(probs: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
    """(len(probs), batch, features): the same two uniforms for every frequency law, so the models
    of one step see the same draws, only thresholded by their own p."""
    u = torch.rand(batch, probs.shape[1], generator=generator)
    v = torch.rand(batch, probs.shape[1], generator=generator)
    return (u < probs[:, None, :]) * (2 * v)


def predicted_weak_loss(probs: torch.Tensor, width: int) -> float:
    """The loss when the ``width`` most frequent features are exact and every other one outputs its
    mean p_i (the best constant): its variance 4/3 p_i - p_i^2 each, averaged over features."""
    rest = probs[width:].double()
    return float((4 / 3 * rest - rest**2).sum()) / probs.numel()


def schedule(step: int, steps: int, lr: float) -> float:
    """Linear warm-up over the first tenth of the steps, then cosine down to 5% of ``lr``."""
    warm = max(1, steps // 10)
    if step < warm:
        return lr * (step + 1) / warm
    if steps == warm:
        return lr
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warm) / (steps - warm))))


def decay_(w: torch.Tensor, decay: torch.Tensor, lr: float) -> None:
    """Weight decay per model (decay: (models,)): positive shrinks every weight by lr * decay,
    negative moves each row's norm towards 1 by lr * |decay| * (|W_i| - 1)."""
    shrink = decay.clamp_min(0)[:, None, None]
    grow = decay.clamp_max(0)[:, None, None]
    norms = w.norm(dim=2, keepdim=True) + 1e-8
    w.mul_(1 - lr * shrink).add_(lr * grow * w * (1 - 1 / norms))


def _models(p: Values) -> list[tuple[float, float, int]]:
    """(alpha, weight decay, width) of each model, in row order."""
    return [(a, g, m) for a in p.alpha for g in p.weight_decay for m in p.widths]


def train(p: Values, ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """W (models, features, max width; a narrower model's extra columns are 0), b (models,
    features), and each model's frequency law's index into p.alpha. The models of one width are
    one batched product, so no model pays for a wider one's columns."""
    models = _models(p)
    n, wide = p.features, max(p.widths)
    law = torch.tensor([p.alpha.index(a) for a, _, _ in models])
    gen = ctx.generator("init")
    dev = ctx.device  # drawn on the CPU, so a seed trains the same start on every device
    start = torch.randn(len(models), n, wide, generator=gen)  # model k starts from its first m columns
    bias = torch.randn(len(models), n, generator=gen)
    groups = []  # per width: the models' indices, their frequency laws, W (k, n, m), b (k, n), decays
    for m in p.widths:
        idx = torch.tensor([k for k, (_, _, width) in enumerate(models) if width == m])
        groups.append((idx, law[idx], torch.nn.Parameter((start[idx, :, :m] / math.sqrt(m)).to(dev)),
                       torch.nn.Parameter(bias[idx].to(dev)),
                       torch.tensor([models[k][1] for k in idx.tolist()], device=dev)))
    probs = torch.stack([frequencies(n, a) for a in p.alpha]).float()
    opt = torch.optim.Adam([t for g in groups for t in g[2:4]], lr=p.lr)
    data = ctx.generator("data")
    with sized_threads(len(models) * p.batch * n):
        for step in tqdm(range(p.steps), desc="training", disable=not ctx.progress, leave=False):
            lr = schedule(step, p.steps, p.lr)
            for group in opt.param_groups:
                group["lr"] = lr
            x = sample(probs, p.batch, data).to(dev)
            loss = x.new_zeros(())
            for _, laws, w, b, _ in groups:
                xs = x[laws.to(dev)]
                out = torch.relu(torch.bmm(torch.bmm(xs, w), w.transpose(1, 2)) + b[:, None, :])
                loss = loss + ((out - xs) ** 2).mean(dim=(1, 2)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                for _, _, w, _, decay in groups:
                    decay_(w, decay, lr)
            opt.step()
    w_all = torch.zeros(len(models), n, wide, device=dev)
    b_all = torch.zeros(len(models), n, device=dev)
    for idx, _, w, b, _ in groups:
        w_all[idx.to(dev), :, :w.shape[2]] = w.detach()
        b_all[idx.to(dev)] = b.detach()
    return w_all, b_all, law


@torch.no_grad()
def evaluate(p: Values, ctx: Context, w: torch.Tensor, b: torch.Tensor, law: torch.Tensor) -> torch.Tensor:
    """Each model's MSE over features on ``eval_samples`` fresh samples (float64 sums)."""
    probs = torch.stack([frequencies(p.features, a) for a in p.alpha]).float()
    gen = ctx.generator("eval")
    total = torch.zeros(w.shape[0], dtype=torch.float64)
    done = 0
    while done < p.eval_samples:
        size = min(EVAL_CHUNK, p.eval_samples - done)
        x = sample(probs, size, gen)[law].to(w.device)
        out = torch.relu(torch.bmm(torch.bmm(x, w), w.transpose(1, 2)) + b[:, None, :])
        total += ((out - x) ** 2).double().sum(dim=(1, 2)).cpu()
        done += size
    return total / (p.eval_samples * p.features)


def overlap_stats(w: torch.Tensor) -> tuple[float, float]:
    """(share of rows with norm > 1/2, mean squared cosine between distinct such rows) of one W."""
    norms = w.norm(dim=1)
    kept = w[norms > REPRESENTED]
    share = kept.shape[0] / w.shape[0]
    if kept.shape[0] < 2:
        return share, math.nan
    unit = (kept / kept.norm(dim=1, keepdim=True)).double()
    gram = (unit @ unit.T) ** 2
    k = kept.shape[0]
    return share, float((gram.sum() - gram.diagonal().sum()) / (k * (k - 1)))


def _regime(rows: list[dict], features: int) -> str:
    if all(r["represented"] > 0.9 for r in rows):
        return "strong"
    if all(r["represented"] * features <= r["width"] for r in rows):
        return "weak"
    return "intermediate"


def body(p: Values, ctx: Context) -> Outcome:
    w, b, law = train(p, ctx)
    losses = evaluate(p, ctx, w, b, law)
    w = w.cpu()
    laws = {a: frequencies(p.features, a) for a in p.alpha}
    rows = []
    for k, (a, g, m) in enumerate(_models(p)):
        share, overlap = overlap_stats(w[k, :, :m])
        rows.append({"alpha": a, "weight_decay": g, "width": m, "loss": float(losses[k]),
                     "predicted_weak_loss": predicted_weak_loss(laws[a], m), "represented": share,
                     "mean_sq_overlap": overlap, "predicted_mean_sq_overlap": 1 / m})
    fits = []
    for a in p.alpha:
        for g in p.weight_decay:
            sel = [r for r in rows if r["alpha"] == a and r["weight_decay"] == g]
            fit = fit_power_law([r["width"] for r in sel], [r["loss"] for r in sel])
            weak = fit_power_law([r["width"] for r in sel], [r["predicted_weak_loss"] for r in sel])
            regime = _regime(sel, p.features)
            fits.append({"alpha": a, "weight_decay": g, "regime": regime,
                         "exponent": fit.exponent if fit else None, "low": fit.low if fit else None,
                         "high": fit.high if fit else None,
                         "predicted_exponent": {"strong": -1.0, "weak": -a}.get(regime),
                         "predicted_weak_exponent_here": weak.exponent if weak else None})
    return Outcome(rows, {"fits": fits, "dedicated_loss": 0.0})


def _label(fit: dict) -> str:
    said = f"gamma = {fit['weight_decay']:g}"
    if fit["exponent"] is None:
        return said
    interval = "" if fit["low"] is None or math.isnan(fit["low"]) else \
        f" [{fit['low']:.2f}, {fit['high']:.2f}]"
    return f"{said}: m^{fit['exponent']:.2f}{interval} ({fit['regime']})"


def loss_by_width_figure(result: Result) -> Figure:
    """Loss against m, one panel per alpha, one line per weight decay, with both laws."""
    p, rows, fits = result.p, result.rows, result.summary["fits"]
    fig = Figure(figsize=(5.2 * len(p.alpha), 4.4))
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")
    for i, a in enumerate(p.alpha):
        ax = fig.add_subplot(1, len(p.alpha), i + 1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for j, g in enumerate(p.weight_decay):
            sel = [r for r in rows if r["alpha"] == a and r["weight_decay"] == g]
            fit = next(f for f in fits if f["alpha"] == a and f["weight_decay"] == g)
            plots.line(ax, [r["width"] for r in sel], [r["loss"] for r in sel], _label(fit),
                       colors[j % len(colors)])
        sel = [r for r in rows if r["alpha"] == a and r["weight_decay"] == p.weight_decay[0]]
        ms = [r["width"] for r in sel]
        ax.plot(ms, [r["predicted_weak_loss"] for r in sel], "--", color="black", lw=1,
                label="weak law: (1/n) sum_{i>m} var x_i")
        top = max(r["loss"] for r in rows if r["alpha"] == a)
        ax.plot(ms, [top * ms[0] / m for m in ms], ":", color="grey", lw=1, label="1/m")
        ax.set_title(f"alpha = {a:g} (p_i ~ i^-{1 + a:g}), {p.features} features", fontsize=10)
        ax.set_xlabel("width m")
        ax.set_ylabel("loss (MSE per feature)")
        plots.value_ticks(ax, ms)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left", frameon=False)
    fig.tight_layout()
    return fig


def geometry_figure(result: Result) -> Figure:
    """The share of features represented, and m times their mean squared overlap (1 for random
    directions), against m."""
    p, rows = result.p, result.rows
    fig = Figure(figsize=(10.4, 4.0))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    styles = ("-o", "--s", ":^", "-.v")
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")
    for i, a in enumerate(p.alpha):
        for j, g in enumerate(p.weight_decay):
            sel = [r for r in rows if r["alpha"] == a and r["weight_decay"] == g]
            ms = [r["width"] for r in sel]
            label = f"alpha {a:g}, gamma {g:g}"
            plots.line(left, ms, [r["represented"] for r in sel], label, colors[j % len(colors)],
                       styles[i % len(styles)])
            plots.line(right, ms, [None if math.isnan(r["mean_sq_overlap"]) else r["mean_sq_overlap"] * r["width"]
                                   for r in sel], label, colors[j % len(colors)], styles[i % len(styles)])
    ms = list(p.widths)
    left.plot(ms, [m / p.features for m in ms], ":", color="black", lw=1, label="m / n (one row per dimension)")
    right.axhline(1.0, color="black", lw=1, ls=":", label="random directions: 1")
    for ax, title, ylabel in ((left, "features represented (|W_i| > 1/2)", "share of features"),
                              (right, "overlap of represented rows", "m x mean (cos W_i W_j)^2")):
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("width m")
        ax.set_ylabel(ylabel)
        plots.value_ticks(ax, ms)
        ax.grid(alpha=0.3)
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


scenario = Scenario(
    name="superposition-scaling",
    description="Superposition Yields Robust Neural Scaling: loss against width, strong and weak superposition "
                "set by weight decay",
    params=PARAMS,
    body=body,
    figures={"loss_by_width": loss_by_width_figure, "geometry": geometry_figure},
    check=check,
    cost="minutes",
)
