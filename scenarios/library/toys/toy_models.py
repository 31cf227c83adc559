"""toy-models: "Toy Models of Superposition" (Elhage et al. 2022), x' = ReLU(W^T W x + b).

``features`` features, each uniform in [0, 1] with probability 1 - S and 0 otherwise, pass through
``dims`` dimensions and are reconstructed by a ReLU; the loss is the importance-weighted MSE
(importance I_f = importance^f, 1 for equal). One model is trained per sparsity S and instance,
all at once along an instance axis; for each S the instance with the lowest loss is kept.

The 2-in-1 phase diagram (``phase_grid`` > 0): two features, of importance 1 and r, in one
dimension, over a log grid of density 1 - S (0.01 to 1) and r (0.1 to 10), every cell trained
the same way; each cell's kept instance is classified from its signed weights (w1, w2):
dedicated to one feature, the antipodal pair (both represented, opposite signs) or other, beside
the closed-form phase: whichever of the three solutions' losses is lowest
(``circuits.theory.two_in_one_losses``).

Row keys (one row per sparsity and feature): ``sparsity``, ``feature``, ``importance``, ``norm``
(|W_f|), ``weights`` (W_f itself, signed; up to 16 dims), ``dimensionality`` (D_f = |W_f|^2 /
sum_j (W_f_hat . W_j)^2, the share of a dimension feature f holds), ``bias``, ``loss`` (of the
kept instance). Phase rows (one per cell): ``density``, ``relative_importance``, ``w1``, ``w2``,
``b1``, ``b2``, ``phase``, ``predicted_phase``, ``loss``, ``predicted_loss`` (of the predicted
phase's solution), ``predicted_dedicated_loss``, ``predicted_antipodal_loss``.
Summary keys: ``represented`` (per sparsity: features with |W_f| > 1/2), ``dims_per_feature``
(per sparsity: dims / |W|_F^2, what the paper plots against 1/(1 - S)),
``dims_per_represented_feature`` (dims / represented: 2/5 for a pentagon whatever its vectors'
length), ``angles`` (degrees between neighbouring represented features, around the circle, at the
highest sparsity; dims = 2 only), ``dedicated_dims_per_feature`` (1: the model without
superposition represents dims features), ``phase_agreement`` (the share of cells whose trained
phase is the closed-form one), ``phase_counts``.
"""

from __future__ import annotations

import math

import torch
from einops import einsum
from matplotlib.figure import Figure
from tqdm import tqdm

from circuits.theory import two_in_one_boundary, two_in_one_losses
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
    "importance": Param(1.0, "importance ratio per feature: I_f = importance^f (1: all equal)", kind="float",
                        low=0.01, high=100.0),
    "phase_grid": Param(12, "cells per axis of the 2-features-in-1-dimension phase diagram (0: none)", low=0,
                        high=64),
    "instances": Param(4, "models trained per sparsity (the lowest loss is kept)", low=1, high=64),
    "steps": Param(4000, "training steps", low=1),
    "batch": Param(1024, "samples per step", low=1),
    "lr": Param(1e-2, "Adam learning rate", kind="float", above=0.0, high=10.0),
}


def check(p: Values) -> None:
    models = len(p.sparsity) * p.instances
    need = FLOAT * models * (8 * p.features * p.dims + 6 * p.batch * (p.features + p.dims))
    need += FLOAT * p.phase_grid**2 * p.instances * (16 + 18 * p.batch)
    require_memory(need, f"{models} models of {p.features} features in {p.dims} dimension(s), batch {p.batch}")


def train(p: Values, ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """W (models, dims, features), b (models, features) and the final loss per model; model k has
    sparsity p.sparsity[k // instances]."""
    S = torch.tensor(p.sparsity).repeat_interleave(p.instances)
    importance = (p.importance ** torch.arange(p.features, dtype=torch.float32)).expand(len(S), -1)
    return fit(S, importance, p.dims, p, ctx, "")


def fit(S: torch.Tensor, importance: torch.Tensor, dims: int, p: Values, ctx: Context,
        tag: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train one toy per row of S (models,) and importance (models, features) in ``dims``
    dimensions, all at once; W, b and each model's loss averaged over its last 50 steps. ``tag``
    names the draws (the main run's are "init" and "data")."""
    models, m, n = len(S), importance.shape[1], dims
    gen = ctx.generator(f"{tag}init")
    w = torch.nn.Parameter(torch.randn(models, n, m, generator=gen) * math.sqrt(2.0 / (n + m)))
    b = torch.nn.Parameter(torch.zeros(models, m))
    opt = torch.optim.Adam([w, b], lr=p.lr)
    data = ctx.generator(f"{tag}data")
    losses = torch.zeros(models)
    with sized_threads(models * p.batch * m):
        for step in tqdm(range(p.steps), desc="training", disable=not ctx.progress, leave=False):
            on = torch.rand(models, p.batch, m, generator=data) >= S[:, None, None]
            x = torch.rand(models, p.batch, m, generator=data) * on
            hidden = einsum(w, x, "k n m, k b m -> k b n")
            out = torch.relu(einsum(w, hidden, "k n m, k b n -> k b m") + b[:, None, :])
            per_model = (importance[:, None, :] * (x - out) ** 2).sum(-1).mean(-1)  # weighted MSE, summed over features
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
                         "dimensionality": float(dims[f]), "bias": float(b[best, f]), "loss": float(losses[best])}
                        | ({"weights": wi[:, f].tolist()} if p.dims <= SIGNED_UP_TO else {}))
        represented.append(int((norms > 0.5).sum()))
        per_dim.append(p.dims / float((wi**2).sum()))
    top = max(range(len(p.sparsity)), key=lambda i: p.sparsity[i])
    angles = neighbour_angles(w[kept[top]], w[kept[top]].norm(dim=0) > 0.5)
    summary = {"represented": represented, "dims_per_feature": per_dim, "angles": angles or None,
               "dedicated_dims_per_feature": 1.0,
               "dims_per_represented_feature": [p.dims / r if r else None for r in represented]}
    if p.phase_grid:
        phase_rows, phase_summary = phase_diagram(p, ctx)
        rows += phase_rows
        summary |= phase_summary
    # in the plane, the kept instance's W (2, features) per sparsity: the geometry figure draws its columns
    return Outcome(rows, summary, data={"weights": [w[k].tolist() for k in kept]} if p.dims == 2 else {})


SIGNED_UP_TO = 16  # rows carry W_f itself (signed) up to this many dimensions
PHASES = ("dedicated_to_1", "dedicated_to_2", "antipodal", "other")
DENSITIES = (0.01, 1.0)  # the phase diagram's axes, log-spaced: feature density 1 - S ...
IMPORTANCES = (0.1, 10.0)  # ... and the second feature's importance relative to the first


def _logspace(ends: tuple[float, float], k: int) -> list[float]:
    return [ends[0] * (ends[1] / ends[0]) ** (i / max(k - 1, 1)) for i in range(k)]


def classify(w1: float, w2: float) -> str:
    """The phase of two features in one dimension from their signed weights: a feature is
    represented when |w| > 1/2; both, with opposite signs, is the antipodal pair."""
    on1, on2 = abs(w1) > 0.5, abs(w2) > 0.5
    if on1 and on2:
        return "antipodal" if w1 * w2 < 0 else "other"
    return "dedicated_to_1" if on1 else "dedicated_to_2" if on2 else "other"


def predicted_phase(density: float, importance: float) -> tuple[str, dict[str, float]]:
    losses = two_in_one_losses(density, importance)
    return min(losses, key=lambda k: losses[k]), losses


def phase_diagram(p: Values, ctx: Context) -> tuple[list[dict], dict]:
    """Two features (importance 1 and r) in one dimension over a grid of density and r, every
    cell's instances trained at once; each cell's best instance classified from its weights."""
    densities, ratios = _logspace(DENSITIES, p.phase_grid), _logspace(IMPORTANCES, p.phase_grid)
    cells = [(d, r) for r in ratios for d in densities]
    S = torch.tensor([1 - d for d, _ in cells]).repeat_interleave(p.instances)
    importance = torch.tensor([[1.0, r] for _, r in cells]).repeat_interleave(p.instances, dim=0)
    w, b, losses = fit(S, importance, 1, p, ctx, "phase:")
    rows = []
    k = p.instances
    for c, (d, r) in enumerate(cells):
        best = c * k + int(losses[c * k:(c + 1) * k].argmin())
        w1, w2 = float(w[best, 0, 0]), float(w[best, 0, 1])
        guess, closed = predicted_phase(d, r)
        rows.append({"density": d, "relative_importance": r, "w1": w1, "w2": w2,
                     "b1": float(b[best, 0]), "b2": float(b[best, 1]), "phase": classify(w1, w2),
                     "predicted_phase": guess, "loss": float(losses[best]),
                     "predicted_loss": closed[guess], "predicted_dedicated_loss": min(closed["dedicated_to_1"],
                                                                                      closed["dedicated_to_2"]),
                     "predicted_antipodal_loss": closed["antipodal"]})
    agree = sum(r["phase"] == r["predicted_phase"] for r in rows) / len(rows)
    counts = {ph: sum(r["phase"] == ph for r in rows) for ph in PHASES}
    return rows, {"phase_agreement": agree, "phase_counts": counts}


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
    per_kept = result.summary.get("dims_per_represented_feature")
    if per_kept:
        plots.line(ax, inv, per_kept, "dims / represented features", "tab:orange", "--s", ms=3)
    top = max(range(len(p.sparsity)), key=lambda i: p.sparsity[i])
    kept = [r["norm"] for r in rows if r.get("sparsity") == p.sparsity[top] and r["norm"] > 0.5]
    if kept:  # |W|_F^2 counts length as well as directions: longer vectors pull the line down
        ax.text(0.02, 0.02, f"at S = {p.sparsity[top]:g}: represented |W_f| = {min(kept):.2f} to {max(kept):.2f}, "
                f"so dims / |W|_F^2 sits {1 / (sum(n * n for n in kept) / len(kept)):.2f}x under dims / represented",
                transform=ax.transAxes, fontsize=7, color="grey")
    for s, x in zip(p.sparsity, inv):
        d = [r["dimensionality"] for r in rows if r.get("sparsity") == s and r["norm"] > 0.5]
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


PHASE_COLORS = {"dedicated_to_1": "#c6dbef", "dedicated_to_2": "#fdd0a2", "antipodal": "#6a51a3", "other": "#d9d9d9"}
PHASE_NAMES = {"dedicated_to_1": "dimension to feature 1 (feature 2 dropped)",
               "dedicated_to_2": "dimension to feature 2 (feature 1 dropped)",
               "antipodal": "antipodal pair (superposition)", "other": "other"}


def phase_figure(result: Result) -> Figure | None:
    """The 2-in-1 phase diagram: each cell coloured by the trained phase, the closed-form
    boundaries drawn over it."""
    cells = [r for r in result.rows if "phase" in r]
    if not cells:
        return None
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    densities = sorted({r["density"] for r in cells})
    ratios = sorted({r["relative_importance"] for r in cells})
    grid = torch.zeros(len(ratios), len(densities))
    for r in cells:
        grid[ratios.index(r["relative_importance"]), densities.index(r["density"])] = PHASES.index(r["phase"])
    fig, ax = plots.figure("2 features in 1 dimension: the trained phase", "feature density 1 - S",
                           "relative importance of feature 2")
    ax.grid(False)

    def edges(v: list[float]) -> list[float]:  # cell edges halfway (in log) between the grid's values
        mids = [math.sqrt(a * b) for a, b in zip(v, v[1:])]
        return [v[0] ** 2 / mids[0], *mids, v[-1] ** 2 / mids[-1]] if len(v) > 1 else [v[0] / 2, v[0] * 2]

    xe, ye = edges(densities), edges(ratios)
    ax.pcolormesh(xe, ye, grid.numpy(), cmap=ListedColormap(list(PHASE_COLORS.values())),
                  vmin=-0.5, vmax=len(PHASES) - 0.5, shading="flat")
    ax.set_xscale("log")
    ax.set_yscale("log")
    dense = _logspace((densities[0], 4 / 7 * 0.999), 200)
    lows = [two_in_one_boundary(d) for d in dense]
    ax.plot(dense, [lo[0] for lo in lows if lo], "-", color="black", lw=1.2,
            label="closed form: antipodal = dedicated")
    ax.plot(dense, [lo[1] for lo in lows if lo], "-", color="black", lw=1.2)
    ax.plot([4 / 7, densities[-1]], [1, 1], "--", color="black", lw=1, label="closed form: r = 1")
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    handles = [Patch(color=PHASE_COLORS[ph], label=PHASE_NAMES[ph]) for ph in PHASES]
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    agree = result.summary.get("phase_agreement")
    if agree is not None:
        ax.set_title(f"2 features in 1 dimension: trained phase ({100 * agree:.0f}% of cells as the closed form)",
                     fontsize=10)
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
    figures={"dims_per_feature": dims_per_feature_figure, "geometry": geometry_figure, "phase": phase_figure},
    check=check,
    devices=("cpu",),
    cost="minutes",
)
