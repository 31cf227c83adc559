"""booleanish: the second price. The clean-up h removes interference only from boolean-ish values.

Active features take values 1 + sigma_on * N(0, 1), inactive ones leak sigma_off * N(0, 1); in
the "continuous" setting active values are uniform on [0, 1] and carry their value as meaning.
Each sample is written along random unit directions (superposed) or the basis (dedicated), read
back, and passed through h(x) = ReLU(2x - 0.5) - ReLU(2x - 1.5). The target is the boolean (on =
1, off = 0) for boolean-ish features and the value itself for continuous ones.

Row keys (one row per setting): ``setting``, ``sigma_on``, ``sigma_off``, ``mse_raw_superposed``,
``mse_cleaned_superposed``, ``predicted_cleaned_superposed``, ``mse_raw_dedicated``,
``mse_cleaned_dedicated``, ``predicted_cleaned_dedicated``, ``mse_cleaned_active_superposed``,
``mse_cleaned_active_dedicated`` (after h, over the active features only: where a continuous
value is destroyed), ``wrong_features_superposed``,
``wrong_features_dedicated`` (features per sample on the wrong side of 1/2 after h; null for
continuous features). Predictions treat each read-out as Gaussian around its value, with the
interference variance (sum of the other squared values) / n, and integrate h numerically.
Summary keys: ``readout_noise_std``, ``predicted_noise_std`` (sqrt(l / n)),
``distinguishable_levels`` (1 / (2 * noise std)), ``predicted_levels`` (sqrt(n / l) / 2).
"""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from circuits import theory
from layers import make_embedding
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

PARAMS = {
    "m": Param(1000, "features", low=2),
    "n": Param(256, "stream width", low=1),
    "active": Param(8, "active features per sample", low=1),
    "sigma_on": Param((0.0, 0.1, 0.2, 0.3), "spreads of on-values around 1", kind="list[float]", low=0.0,
                      high=100.0),
    "sigma_off": Param((0.0, 0.02, 0.05), "leak of off-values", kind="list[float]", low=0.0, high=100.0),
    "samples": Param(20000, "sampled inputs per setting", low=1),
    "batch": Param(2048, "samples per batch", low=1),
}


def check(p: Values) -> None:
    require(p.active <= p.m, f"active: must be <= m={p.m}, got {p.active}")
    need = FLOAT * (2 * p.m * p.n + 8 * p.batch * (p.m + p.n))
    require_memory(need, f"m={p.m}, n={p.n}, batch={p.batch}: the feature directions and one batch")


@torch.no_grad()
def _measure(p: Values, ctx: Context, phi: torch.Tensor, sigma_on: float, sigma_off: float, continuous: bool,
             tag: str) -> tuple:
    m, l = p.m, p.active
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed_for(tag))
    sums = torch.zeros(8, dtype=torch.float64)
    done = 0
    while done < p.samples:
        b = min(p.batch, p.samples - done)
        on = torch.zeros(b, m, device=ctx.device)
        idx = torch.rand(b, m, generator=gen, device=ctx.device).topk(l, dim=1).indices
        on.scatter_(1, idx, 1.0)
        if continuous:
            values = on * torch.rand(b, m, generator=gen, device=ctx.device)
            target = values
        else:
            noise = torch.randn(b, m, generator=gen, device=ctx.device)
            values = on * (1 + sigma_on * noise) + (1 - on) * sigma_off * noise
            target = on
        for k, read in enumerate((values @ phi @ phi.T, values)):  # superposed, dedicated
            cleaned = theory.cleanup(read)
            sums[3 * k] += float(((read - target) ** 2).sum(dtype=torch.float64))
            sums[3 * k + 1] += float(((cleaned - target) ** 2).sum(dtype=torch.float64))
            sums[3 * k + 2] += float(((cleaned > 0.5) != (target > 0.5)).sum())
            sums[6 + k] += float((((cleaned - target) ** 2) * on).sum(dtype=torch.float64))
        done += b
    cells = p.samples * m
    per_sample = [float(v) / p.samples for v in sums[[2, 5]]]
    on_cells = p.samples * l
    return [float(v) / cells for v in sums[[0, 1, 3, 4]]] + per_sample + [float(v) / on_cells for v in sums[6:]]


def _predicted(p: Values, sigma_on: float, sigma_off: float, continuous: bool, superposed: bool) -> float:
    m, n, l = p.m, p.n, p.active
    if continuous:
        # on-values v ~ U(0, 1), E[v^2] = 1/3; target v, averaged over a grid of v
        var = (l - 1) / 3 / n if superposed else 0.0
        grid = [(k + 0.5) / 200 for k in range(200)]
        on = sum(theory.cleanup_mse_gaussian(v, var, v) for v in grid) / len(grid)
        off = theory.cleanup_mse_gaussian(0.0, l / 3 / n if superposed else 0.0, 0.0)
        return (l * on + (m - l) * off) / m
    mass_on, mass_off = 1 + sigma_on**2, sigma_off**2
    var_on = ((l - 1) * mass_on + (m - l) * mass_off) / n if superposed else 0.0
    var_off = (l * mass_on + (m - l - 1) * mass_off) / n if superposed else 0.0
    on = theory.cleanup_mse_gaussian(1.0, var_on + sigma_on**2, 1.0)
    off = theory.cleanup_mse_gaussian(0.0, var_off + sigma_off**2, 0.0)
    return (l * on + (m - l) * off) / m


def body(p: Values, ctx: Context) -> Outcome:
    phi = make_embedding("random", p.m, p.n, ctx.generator("embedding")).to(ctx.device)
    settings = [(f"on~{so:g},off~{sf:g}", so, sf, False) for so in p.sigma_on for sf in p.sigma_off]
    settings.append(("continuous", None, None, True))
    rows = []
    for label, so, sf, cont in tqdm(settings, desc="settings", disable=not ctx.progress, leave=False):
        raw_s, clean_s, raw_d, clean_d, bits_s, bits_d, on_s, on_d = _measure(
            p, ctx, phi, so or 0.0, sf or 0.0, cont, f"values:{label}")
        rows.append({
            "setting": label,
            "sigma_on": so,
            "sigma_off": sf,
            "mse_raw_superposed": raw_s,
            "mse_cleaned_superposed": clean_s,
            "predicted_cleaned_superposed": _predicted(p, so or 0.0, sf or 0.0, cont, True),
            "mse_raw_dedicated": raw_d,
            "mse_cleaned_dedicated": clean_d,
            "predicted_cleaned_dedicated": _predicted(p, so or 0.0, sf or 0.0, cont, False),
            "mse_cleaned_active_superposed": on_s,
            "mse_cleaned_active_dedicated": on_d,
            "wrong_features_superposed": None if cont else bits_s,
            "wrong_features_dedicated": None if cont else bits_d,
        })
    noise = math.sqrt(rows[0]["mse_raw_superposed"] - rows[0]["mse_raw_dedicated"])
    summary = {
        "readout_noise_std": noise,
        "predicted_noise_std": math.sqrt(p.active / p.n),
        "distinguishable_levels": 1 / (2 * noise),
        "predicted_levels": math.sqrt(p.n / p.active) / 2,
    }
    return Outcome(rows, summary)


def cleanup_error_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    fig, ax = plots.figure(f"error left after clean-up h, m={p.m} in n={p.n}, l={p.active}",
                           "setting", "per-feature MSE after h", log_y=True)
    x = list(range(len(rows)))
    plots.line(ax, x, [r["mse_cleaned_superposed"] for r in rows], "superposed: measured", plots.MEASURED)
    plots.line(ax, x, [r["predicted_cleaned_superposed"] for r in rows], "superposed: predicted",
               plots.PREDICTED, "--")
    plots.line(ax, x, [r["mse_cleaned_dedicated"] for r in rows], "dedicated: measured", plots.DEDICATED, "-s")
    plots.line(ax, x, [r["mse_raw_superposed"] for r in rows], "superposed, no clean-up", "tab:red", ":")
    ax.set_xticks(x, [r["setting"] for r in rows], rotation=60, ha="right", fontsize=7)
    plots.finish(ax, integer_x=False)
    return fig


scenario = Scenario(
    name="booleanish",
    description="the second price: clean-up removes interference only from boolean-ish features",
    params=PARAMS,
    body=body,
    figures={"cleanup_error": cleanup_error_figure},
    check=check,
)
