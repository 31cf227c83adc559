"""toy-models: "Toy Models of Superposition" (Elhage et al. 2022), x' = ReLU(W^T W x + b).

``features`` features, each uniform in [0, 1] with probability 1 - S and 0 otherwise, pass through
``dims`` dimensions and are reconstructed by a ReLU; the loss is the importance-weighted MSE
(importance I_f = importance^f, 1 for equal). One model is trained per sparsity S and instance,
all at once along an instance axis; for each S the instance with the lowest loss is kept.

Row keys (one row per sparsity and feature): ``sparsity``, ``feature``, ``importance``, ``norm``
(|W_f|), ``dimensionality`` (D_f = |W_f|^2 / sum_j (W_f_hat . W_j)^2, the share of a dimension
feature f holds), ``bias``, ``loss`` (of the kept instance).
Summary keys: ``represented`` (per sparsity: features with |W_f| > 1/2), ``dims_per_feature``
(per sparsity: dims / |W|_F^2, what the paper plots against 1/(1 - S)), ``angles`` (degrees between
neighbouring represented features, around the circle, at the highest sparsity; dims = 2 only),
``dedicated_dims_per_feature`` (1: the model without superposition represents dims features).
"""

from __future__ import annotations

import math

import torch
from einops import einsum
from matplotlib.figure import Figure
from tqdm import tqdm

from layers.threads import sized_threads
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

PARAMS = {
    "features": Param(5, "features", low=1, high=10_000),
    "dims": Param(2, "hidden dimensions", low=1, high=10_000),
    "sparsity": Param((0.0, 0.5, 0.8, 0.9, 0.95, 0.99), "sparsities S (a feature is 0 with probability S)",
                      kind="list[float]", low=0.0, high=0.9999),
    "importance": Param(1.0, "importance decay per feature: I_f = importance^f (1: all equal)", kind="float",
                        low=0.01, high=1.0),
    "instances": Param(4, "models trained per sparsity (the lowest loss is kept)", low=1, high=64),
    "steps": Param(4000, "training steps", low=1),
    "batch": Param(1024, "samples per step", low=1),
    "lr": Param(1e-2, "Adam learning rate", kind="float", above=0.0, high=10.0),
}


def check(p: Values) -> None:
    models = len(p.sparsity) * p.instances
    need = FLOAT * models * (8 * p.features * p.dims + 6 * p.batch * (p.features + p.dims))
    require_memory(need, f"{models} models of {p.features} features in {p.dims} dimension(s), batch {p.batch}")


def train(p: Values, ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """W (models, dims, features), b (models, features) and the final loss per model; model k has
    sparsity p.sparsity[k // instances]."""
    S = torch.tensor(p.sparsity).repeat_interleave(p.instances)
    models, m, n = len(S), p.features, p.dims
    gen = ctx.generator("init")
    w = torch.nn.Parameter(torch.randn(models, n, m, generator=gen) * math.sqrt(2.0 / (n + m)))
    b = torch.nn.Parameter(torch.zeros(models, m))
    importance = p.importance ** torch.arange(m, dtype=torch.float32)
    opt = torch.optim.Adam([w, b], lr=p.lr)
    data = ctx.generator("data")
    losses = torch.zeros(models)
    with sized_threads(models * p.batch * m):
        for step in tqdm(range(p.steps), desc="training", disable=not ctx.progress, leave=False):
            on = torch.rand(models, p.batch, m, generator=data) >= S[:, None, None]
            x = torch.rand(models, p.batch, m, generator=data) * on
            hidden = einsum(w, x, "k n m, k b m -> k b n")
            out = torch.relu(einsum(w, hidden, "k n m, k b n -> k b m") + b[:, None, :])
            per_model = (importance * (x - out) ** 2).sum(-1).mean(-1)  # weighted MSE summed over features
            opt.zero_grad(set_to_none=True)
            per_model.sum().backward()
            opt.step()
            if step >= p.steps - 50:  # the loss of each model, averaged over its last steps
                losses += per_model.detach() / min(50, p.steps)
    return w.detach(), b.detach(), losses


def dimensionality(w: torch.Tensor) -> torch.Tensor:
    """D_f = |W_f|^2 / sum_j (W_f_hat . W_j)^2 per feature, for W (dims, features)."""
    norms = w.norm(dim=0)
    unit = w / norms.clamp_min(1e-12)
    overlaps = (unit.T @ w) ** 2  # (f, j)
    return torch.where(norms > 1e-6, norms**2 / overlaps.sum(1), torch.zeros_like(norms))


def neighbour_angles(w: torch.Tensor, represented: torch.Tensor) -> list[float]:
    """Angles (degrees) between consecutive represented features around the circle (dims = 2)."""
    cols = w[:, represented]
    if w.shape[0] != 2 or cols.shape[1] < 2:
        return []
    theta = torch.atan2(cols[1], cols[0]).sort().values
    gaps = torch.diff(torch.cat([theta, theta[:1] + 2 * math.pi]))
    return [float(g) * 180 / math.pi for g in gaps]


def body(p: Values, ctx: Context) -> Outcome:
    w, b, losses = train(p, ctx)
    k = p.instances
    rows, represented, per_dim, kept = [], [], [], []
    for i, s in enumerate(p.sparsity):
        best = i * k + int(losses[i * k:(i + 1) * k].argmin())
        kept.append(best)
        wi, norms, dims = w[best], w[best].norm(dim=0), dimensionality(w[best])
        for f in range(p.features):
            rows.append({"sparsity": s, "feature": f, "importance": p.importance ** f, "norm": float(norms[f]),
                         "dimensionality": float(dims[f]), "bias": float(b[best, f]), "loss": float(losses[best])})
        represented.append(int((norms > 0.5).sum()))
        per_dim.append(p.dims / float((wi**2).sum()))
    top = max(range(len(p.sparsity)), key=lambda i: p.sparsity[i])
    angles = neighbour_angles(w[kept[top]], w[kept[top]].norm(dim=0) > 0.5)
    summary = {"represented": represented, "dims_per_feature": per_dim, "angles": angles or None,
               "dedicated_dims_per_feature": 1.0}
    # in the plane, the kept instance's W (2, features) per sparsity: the geometry figure draws its columns
    return Outcome(rows, summary, data={"weights": [w[k].tolist() for k in kept]} if p.dims == 2 else {})


FRACTIONS = (1.0, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8, 1 / 3)
FRACTION_NAMES = ("1", "3/4", "2/3", "1/2", "2/5", "3/8", "1/3")


def dims_per_feature_figure(result: Result) -> Figure:
    rows, p, per_dim = result.rows, result.p, result.summary["dims_per_feature"]
    fig, ax = plots.figure(f"{plots.count(p.features, 'feature')} in {plots.count(p.dims, 'dimension')}",
                           "1 / (1 - S)",
                           "dimensions per feature")
    ax.set_xscale("log")
    inv = [1 / (1 - s) for s in p.sparsity]
    ax.plot(inv, per_dim, "-", color="black", lw=1, label="dims / |W|_F^2")
    for s, x in zip(p.sparsity, inv):
        d = [r["dimensionality"] for r in rows if r["sparsity"] == s and r["norm"] > 0.5]
        ax.scatter([x] * len(d), d, s=10, color=plots.MEASURED, alpha=0.5)
    ax.scatter([], [], s=10, color=plots.MEASURED, label="D_f of represented features")
    # the fractions beside the axes, in two columns where they crowd (2/5, 3/8, 1/3 lie close)
    column, previous = 0, None
    for frac, name in zip(FRACTIONS, FRACTION_NAMES):
        ax.axhline(frac, color="grey", lw=0.5, ls=":")
        column = 1 - column if previous is not None and previous - frac < 0.05 else 0
        ax.text(1.01 + 0.06 * column, frac, name, va="center", fontsize=7, color="grey",
                transform=ax.get_yaxis_transform())
        previous = frac
    ax.set_ylim(0, 1.1)
    plots.value_ticks(ax, [round(x, 3) for x in inv])
    plots.finish(ax)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.14, 1.0), frameon=False)
    return fig


def geometry_figure(result: Result) -> Figure | None:
    """The columns of W in the plane (none for dims != 2: no plane to draw them in)."""
    p = result.p
    if p.dims != 2:
        return None
    weights = result.data["weights"]
    cols = len(weights)
    fig = Figure(figsize=(2.2 * cols, 2.6))
    for i, (s, w) in enumerate(zip(p.sparsity, weights)):
        ax = fig.add_subplot(1, cols, i + 1)
        for f in range(p.features):
            ax.plot([0, float(w[0][f])], [0, float(w[1][f])], "-o", ms=3, color=plt_color(f, p.features))
        ax.set_xlim(-1.3, 1.3)
        ax.set_ylim(-1.3, 1.3)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"S = {s:g}", fontsize=9)
    fig.suptitle("columns of W (one per feature; colour: importance, darkest most important)", fontsize=9)
    return fig


def plt_color(f: int, m: int) -> tuple:
    from matplotlib import colormaps

    return colormaps["viridis"](0.9 * f / max(m - 1, 1))


scenario = Scenario(
    name="toy-models",
    description="Toy Models of Superposition: features in fewer dimensions by sparsity; geometry and "
                "dimensionality",
    params=PARAMS,
    body=body,
    figures={"dims_per_feature": dims_per_feature_figure, "geometry": geometry_figure},
    check=check,
    devices=("cpu",),
    cost="minutes",
)
