"""sparsity: the first price. Interference on inactive features against the number active.

m features along random unit directions in R^n are written and read straight back (no layer).
The post bounds the noise by the JL distortion times sqrt(l); the typical interference is
sqrt(l / n); a threshold-1/2 read-out makes about (m - l) Q(0.5 sqrt(n / l)) false positives.

Row keys (one row per l): ``active``, ``interference_std``, ``predicted_std``, ``jl_bound``,
``false_positives_per_sample``, ``predicted_false_positives``, ``false_negatives_per_sample``,
``dedicated_interference_std``, ``dedicated_false_positives``.
Summary keys: ``largest_active_under_one_false_positive`` (measured over the l of the rows),
``predicted_largest_active`` (from the false-positive formula), ``post_threshold`` (n / (8 ln m)),
``rms_overlap``, ``predicted_rms_overlap``, ``max_overlap``, ``predicted_max_overlap``,
``welch_bound``, and the capacity curve: ``capacity_n``, ``capacity_measured``,
``capacity_predicted``, ``capacity_post`` (largest m with at most ``budget`` false positives per
sample, for l = ``capacity_active``; measured from the per-feature crossing rate, which does not
depend on m, so the largest m follows as l + budget / rate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from matplotlib.figure import Figure

from circuits import theory
from circuits.compile import compile_dedicated, compile_superposed
from circuits.sampling import ExactlyActive
from circuits.spec import Circuit
from circuits.trace import trace_noise
from layers import EMBEDDINGS, coherence
from layers.philox import DRAWS
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

PARAMS = {
    "m": Param(2048, "features", low=2),
    "n": Param(256, "stream width", low=1),
    "active": Param((1, 2, 4, 8, 16, 32, 64), "numbers of active features", kind="list[int]", low=0),
    "samples": Param(20000, "sampled inputs per l", low=1),
    "embedding": Param("random", "feature directions", kind="str", choices=EMBEDDINGS),
    "capacity_n": Param((32, 64, 128, 256), "stream widths of the capacity curve", kind="list[int]", low=1),
    "capacity_active": Param(4, "active features for the capacity curve", low=1),
    "capacity_probe": Param(4096, "features used to measure the crossing rate", low=2),
    "budget": Param(1.0, "false positives per sample allowed by the capacity curve", kind="float", low=1e-9),
}


def check(p: Values) -> None:
    require(max(p.active) <= p.m, f"active: every l must be <= m={p.m}, got {max(p.active)}")
    require(p.capacity_active < p.capacity_probe,
            f"capacity_active: must be < capacity_probe={p.capacity_probe}")
    if p.embedding == "identity":
        require(p.n >= p.m, f"n: the identity embedding needs n >= m={p.m}, got {p.n}")
    need = FLOAT * (3 * p.m * p.n + 3 * p.capacity_probe * max(p.capacity_n) + 8 * 4096 * p.m)
    require_memory(need, f"m={p.m}, n={p.n}, capacity_probe={p.capacity_probe}: the feature directions")


def _read_back(m: int, n: int, active: int, samples: int, embedding: str, ctx: Context, tag: str):
    circuit = Circuit(m, [])
    sup = compile_superposed(circuit, n, embedding, "none", ctx.generator(f"embedding:{tag}"), ctx.draws)
    sup = ctx.place(sup)
    ded = ctx.place(compile_dedicated(circuit))
    sampler = ExactlyActive(m, active, ctx.seed_for(f"inputs:{tag}:{active}"), ctx.device, ctx.draws)
    trace = trace_noise(circuit, {"s": sup.read_features, "d": ded.read_features}, sampler, samples,
                        progress=ctx.progress, device=ctx.device, desc=f"tracing n={n}, l={active}")
    return trace["s"][0], trace["d"][0], sup


def body(p: Values, ctx: Context) -> Outcome:
    m, n = p.m, p.n
    rows, sup = [], None
    for l in p.active:
        s, d, sup = _read_back(m, n, l, p.samples, p.embedding, ctx, "main")
        rows.append({
            "active": l,
            "interference_std": s.interference_std,
            "predicted_std": theory.interference_std(l, n),
            "jl_bound": theory.jl_bound(m, n, l),
            "false_positives_per_sample": s.false_positives,
            "predicted_false_positives": theory.false_positives(m, l, n),
            "false_negatives_per_sample": s.false_negatives,
            "dedicated_interference_std": d.interference_std,
            "dedicated_false_positives": d.false_positives,
        })
    under = [r["active"] for r in rows if r["false_positives_per_sample"] < 1.0]
    predicted = 0
    while predicted < m and theory.false_positives(m, predicted + 1, n) < 1.0:
        predicted += 1
    coh = coherence(sup.directions(0).cpu())
    cap = _capacity(p, ctx)
    summary = {
        "largest_active_under_one_false_positive": max(under) if under else 0,
        "predicted_largest_active": predicted,
        "post_threshold": theory.post_threshold(m, n),
        "rms_overlap": coh.rms_overlap,
        "predicted_rms_overlap": theory.rms_overlap(n),
        "max_overlap": coh.max_overlap,
        "predicted_max_overlap": theory.max_overlap(m, n),
        "welch_bound": coh.welch_bound,
        **cap,
    }

    return Outcome(rows, summary)


def _capacity(p: Values, ctx: Context) -> dict:
    l, probe, budget = p.capacity_active, p.capacity_probe, p.budget
    measured, predicted, post = [], [], []
    for n in p.capacity_n:
        s, _, _ = _read_back(probe, n, l, p.samples, "random", ctx, f"capacity:{n}")
        rate = s.false_positives / (probe - l)
        measured.append(l + budget / rate if rate > 0 else None)  # None: no crossing was seen
        q = theory.q_tail(0.5 * math.sqrt(n / l))
        predicted.append(l + budget / q if q > 0 else None)
        post.append(math.exp(n / (8 * l)) if n / (8 * l) < 700 else None)
    return {"capacity_n": list(p.capacity_n), "capacity_measured": measured,
            "capacity_predicted": predicted, "capacity_post": post}


def phase_lines(x: str, y: str, fixed: Mapping) -> list:
    """The post's threshold l = n / (8 ln m) on a map over n and l."""
    if {x, y} != {"n", "active"}:
        return []
    m = fixed.get("m", PARAMS["m"].default)
    ns = [2.0**k for k in range(3, 17)]
    ls = [theory.post_threshold(m, n) for n in ns]
    label = f"the post's l = n / (8 ln m), m={m}"
    return [(label, ns, ls) if x == "n" else (label, ls, ns)]


def noise_figure(r: Result) -> Figure:
    # a log axis: the post's bound is many times the measurement and would squeeze it flat
    fig, ax = plots.figure(f"interference on an inactive feature, m={r.p.m}, n={r.p.n}", "active features l",
                           "read-out std (log; the dedicated 0 at the bottom)", log_y=True)
    x = [row["active"] for row in r.rows]
    plots.line(ax, x, [row["interference_std"] for row in r.rows], "measured", plots.MEASURED)
    plots.line(ax, x, [row["predicted_std"] for row in r.rows], "sqrt(l/n)", plots.PREDICTED, "--")
    plots.line(ax, x, [row["jl_bound"] for row in r.rows], "post's bound eps*sqrt(l)", "tab:orange", ":")
    plots.line(ax, x, [row["dedicated_interference_std"] for row in r.rows], "dedicated", plots.DEDICATED, "-s")
    ax.set_xscale("log", base=2)
    plots.finish(ax, integer_x=False)
    return fig


def capacity_figure(r: Result) -> Figure:
    cap = r.summary
    fig, ax = plots.figure(f"capacity at <= {r.p.budget:g} false positives per sample, "
                           f"l={r.p.capacity_active}", "stream width n", "largest m")
    ax.set_yscale("log")
    x = list(cap["capacity_n"])
    plots.line(ax, x, cap["capacity_measured"], "measured (crossing rate)", plots.MEASURED)
    plots.line(ax, x, cap["capacity_predicted"], "l + budget / Q(0.5 sqrt(n/l))", plots.PREDICTED, "--")
    plots.line(ax, x, cap["capacity_post"], "post: exp(n / 8l)", "tab:orange", ":")
    plots.line(ax, x, x, "dedicated: m = n", plots.DEDICATED, "-s")
    plots.finish(ax, integer_x=False)
    return fig


scenario = Scenario(
    name="sparsity",
    description="the first price: interference and false positives against the number of active features",
    params=PARAMS,
    body=body,
    figures={"interference": noise_figure, "capacity": capacity_figure},
    check=check,
    phase_lines=phase_lines,
    draws=DRAWS,
)
