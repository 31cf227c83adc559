"""emulation-capacity: how many boolean features F a network of width D carries through L layers
within an error budget, with each error correction, and the exponent of F(D).

The circuit is the relay (each layer copies every feature; the 2025 construction draws a new
pattern order per layer, so a relay already routes every feature through fresh neurons, as a
permuted relay would), carried by ``circuits.correction``: ``linear`` (one ReLU per copy, the
averaging read-out passed on as read) and ``step`` (a two-ReLU step per copy that re-binarises it).
For each form and width D the search finds the largest m whose wrong features per sample at layer
L stay within ``budget`` (l on per input, ``seeds`` networks averaged): steps by 2 from m = D to
a bracket, then bisects it to ``tolerance``; m never passes what the placement holds. The
exponent k of F = c D^k is fitted on (ln D, ln F) with its 95% interval over the widths
(``scenarios.engine.fits``); a sweep over seeds gives the seed-to-seed spread.

Beside the measurement: the step form's law (``circuits.theory.correction_step_wrong``, the
largest m it keeps within budget), the placement's limit (what the design holds at n = D/d and
S), the template bound of Hänni et al. (width about D^1.5 up to logs, drawn through the first
measured point) and the ceiling of thresholded recovery after Adler & Shavit (about
D^2 / ln D features, drawn with prefactor 1).

Row keys (one row per form and width): ``form``, ``width`` (D), ``features`` (the largest m found,
null when even m = l + 1 misses the budget), ``features_failing`` (the smallest m measured above
it that misses), ``wrong_per_sample`` and ``wrong_failing`` at layer L, ``predicted_features``
(the step law's; null for linear), ``placement_limit``, ``features_per_neuron`` (F / D),
``ceiling`` (D^2 / ln D).
Summary keys: ``exponent`` per form (the fitted k, with ``exponent_low`` / ``exponent_high``, its
95% interval, and ``prefactor``), ``predicted_exponent_step`` (the law's), ``ceiling_exponent``
(the fitted local exponent of D^2 / ln D over the same widths), ``evaluations``.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from tqdm import tqdm

from circuits import theory
from circuits.correction import FORMS, WIDTH, compile_corrected_relay
from circuits.designs import design_capacity
from circuits.sampling import ExactlyActive
from circuits.trace import trace_noise
from scenarios import plots
from scenarios.engine.fits import fit_power_law
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result
from scenarios.engine.search import largest_passing_from

PARAMS = {
    "widths": Param((300, 500, 800, 1400, 2400), "network widths D (neurons per layer)", kind="list[int]",
                    low=8, high=20_000),
    "forms": Param(FORMS, "correction forms", kind="list[str]", choices=FORMS),
    "active": Param(2, "features on per input, l", low=1),
    "layers": Param(4, "depth L at which the budget is checked", low=2, high=64),
    "S": Param(6, "copies per feature (neurons per small neuron)", low=2, high=32),
    "budget": Param(0.1, "wrong features per sample allowed at layer L", kind="float", above=0),
    "tolerance": Param(0.05, "relative gap between the F found and the failing one above it", kind="float",
                       above=0, high=1),
    "samples": Param(200, "sampled inputs per trial", low=10),
    "seeds": Param(1, "networks (and input streams) averaged per trial", low=1, high=16),
}


def check(p: Values) -> None:
    for form in p.forms:
        d = WIDTH[form]
        for D in p.widths:
            require(D % d == 0 and D // d >= p.S, f"widths: the {form} form needs multiples of {d} with D/{d} >= "
                                                  f"S={p.S}, got {D}")
    require(max(p.widths) * 64 * p.samples <= 2e9, "samples: at most 2e9 reads per trial at the widest D "
                                                   "(about 64 D features each)")


def placement_limit(D: int, form: str, S: int) -> int:
    cap = design_capacity(D // WIDTH[form], S)
    return cap if cap is not None else D * D


def predicted_features(p: Values, D: int) -> int | None:
    """The largest m the step law keeps within budget at layer L (bisection on the law)."""
    n = D // WIDTH["step"]
    limit = placement_limit(D, "step", p.S)

    def ok(m: int) -> bool:
        return theory.correction_step_wrong(m, p.active, n, p.S, p.layers)[p.layers] <= p.budget

    return largest_passing_from(ok, min(D, limit), p.active + 1, limit, p.tolerance).passing


def body(p: Values, ctx: Context) -> Outcome:
    rows, evaluations, summary = [], 0, {}
    bar = tqdm(desc="trials", disable=not ctx.progress, leave=False)
    for form in p.forms:
        for D in p.widths:
            limit = placement_limit(D, form, p.S)
            wrong: dict[int, float] = {}

            def ok(m: int, D: int = D, form: str = form, wrong: dict = wrong) -> bool:
                runs = []
                for s in range(p.seeds):
                    net = ctx.place(compile_corrected_relay(m, p.layers, D, p.S, form,
                                                            ctx.generator(f"net:{form}:{D}:{m}:{s}")))
                    sampler = ExactlyActive(m, p.active, ctx.seed_for(f"inputs:{D}:{m}:{s}"), ctx.device)
                    stats = trace_noise(net.circuit, {"net": net.read_features}, sampler, p.samples,
                                        progress=False, device=ctx.device)["net"][p.layers]
                    runs.append(stats.false_positives + stats.false_negatives)
                wrong[m] = sum(runs) / len(runs)
                bar.update(1)
                return wrong[m] <= p.budget

            low = p.active + 1
            bracket = largest_passing_from(ok, max(low, min(D, limit)), low, limit, p.tolerance)
            evaluations += bracket.evaluations * p.seeds
            F, over = bracket.passing, bracket.failing
            rows.append({
                "form": form, "width": D, "features": F, "features_failing": over,
                "wrong_per_sample": None if F is None else wrong[F],
                "wrong_failing": None if over is None else wrong[over],
                "predicted_features": predicted_features(p, D) if form == "step" else None,
                "placement_limit": limit,
                "features_per_neuron": None if F is None else F / D,
                "ceiling": D * D / math.log(D),
            })
        fit = fit_power_law([r["width"] for r in rows if r["form"] == form],
                            [r["features"] for r in rows if r["form"] == form])
        summary[f"exponent_{form}"] = None if fit is None else fit.exponent
        summary[f"exponent_low_{form}"] = None if fit is None else fit.low
        summary[f"exponent_high_{form}"] = None if fit is None else fit.high
        summary[f"prefactor_{form}"] = None if fit is None else fit.prefactor
    bar.close()
    if "step" in p.forms:
        law = fit_power_law([r["width"] for r in rows if r["form"] == "step"],
                            [r["predicted_features"] for r in rows if r["form"] == "step"])
        summary["predicted_exponent_step"] = None if law is None else law.exponent
    ceiling = fit_power_law(list(p.widths), [D * D / math.log(D) for D in p.widths])
    summary["ceiling_exponent"] = None if ceiling is None else ceiling.exponent
    summary["evaluations"] = evaluations
    return Outcome(rows, summary, columns=list(rows[0]))


def capacity_figure(result: Result) -> Figure:
    """F against D on log-log axes, each form with its fit, beside the law, the placement's limit,
    the D^1.5 template bound and the D^2 / ln D ceiling."""
    p, rows, summary = result.p, result.rows, result.summary
    fig, ax = plots.figure(f"features carried through L={p.layers} layers, l={p.active} on, "
                           f"<= {p.budget} wrong per sample", "neurons per layer D", "features F", log_y=True)
    ax.set_xscale("log")
    D = list(p.widths)
    colors = {"step": "tab:blue", "linear": "tab:orange"}
    first = None
    for form in p.forms:
        sel = [r for r in rows if r["form"] == form]
        k = summary.get(f"exponent_{form}")
        low, high = summary.get(f"exponent_low_{form}"), summary.get(f"exponent_high_{form}")
        label = form if k is None else f"{form}: F ~ D^{k:.2f} [{low:.2f}, {high:.2f}]"
        plots.line(ax, [r["width"] for r in sel], [r["features"] for r in sel], label, colors[form])
        first = first or next((r for r in sel if r["features"]), None)
        if form == "step":
            plots.line(ax, D, [r["predicted_features"] for r in sel], "step: law", colors[form], style="--")
        ax.plot(D, [r["placement_limit"] for r in sel], ":", color=colors[form], linewidth=1,
                label=f"{form}: placement holds")
    ax.plot(D, [x * x / math.log(x) for x in D], "k-", linewidth=1, label="D^2 / ln D (threshold ceiling)")
    if first is not None:
        c = first["features"] / first["width"] ** 1.5
        ax.plot(D, [c * x**1.5 for x in D], "k--", linewidth=1,
                label="D^1.5 (linear template), through the first point")
    ax.plot(D, D, color="grey", linewidth=1, label="F = D (dedicated)")
    fig.set_size_inches(9.6, 4.2)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


scenario = Scenario(
    name="emulation-capacity",
    description="the most boolean features a width-D network carries through L layers with each error "
                "correction, and the fitted exponent of F(D)",
    params=PARAMS,
    body=body,
    check=check,
    figures={"capacity": capacity_figure},
    networks=lambda p, ctx: {
        "superposed": compile_corrected_relay(p.widths[0], p.layers, p.widths[0], p.S, "step",
                                              ctx.generator("net:graph"))},
    cost="minutes",
)
