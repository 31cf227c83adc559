"""compounding-noise: error against depth, superposed (clean-up off and on) and dedicated.

The relay (docs/theory.md 2.3) copies m features through L layers; without clean-up it is linear and
its read-out MSE follows sigma2_{t+1} = (1 + m/n) sigma2_t + l/n. With the clean-up h before
every write, docs/theory.md's zeroth-order prediction is a flat (l/n)(1 - l/m); the mean-field
(density-evolution) columns add what h lets through, which compounds too.

Row keys (one row per clean-up and layer t = 0..L, t = 0 the read-out of the input stream):
``cleanup``, ``layer``, ``mse_superposed``, ``predicted_mse``, ``predicted_mse_mean_field``,
``mse_dedicated``, ``wrong_features_per_sample``, ``predicted_wrong_features``,
``wrong_features_dedicated``, ``active_per_sample``, ``neurons_superposed``, ``neurons_dedicated``.
Predictions are null where no closed form applies (gates other than the relay).

``storage``: ``stored`` holds every layer's m x n directions; ``on-demand`` makes them chunk by
chunk from their seeds (``circuits.streamed``), with the same numbers, so that m = 10^6 runs in a
few GB; ``auto`` takes on-demand when the stored matrices would pass 2 GiB.

Summary keys: ``storage`` (the one used), ``chunk`` (features per chunk, on-demand); per
clean-up, ``mse_last_layer_<cleanup>``, ``growth_per_layer_<cleanup>`` (geometric mean of the
MSE ratio between layers), and ``parameters_superposed_<cleanup>``; ``parameters_dedicated``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from matplotlib.figure import Figure

from circuits import theory
from circuits.compile import CLEANUPS, compile_dedicated, compile_superposed
from circuits.generators import random_circuit, relay
from circuits.sampling import ExactlyActive
from circuits.streamed import ChunkedNetwork, ChunkPlan, StreamedSuperposed, plan_streamed
from circuits.trace import trace_noise
from layers import EMBEDDINGS
from layers.philox import DRAWS
from layers.weights import plan
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

GATE_SETS = {"and": ("AND",), "or": ("OR",), "mixed": ("AND", "OR", "BUF")}

PARAMS = {
    "m": Param(1024, "features per layer", low=1),
    "n": Param(256, "stream width of the superposed network", low=1),
    "active": Param(4, "input features on per sample", low=0),
    "layers": Param(6, "layers", low=1, high=64),
    "gate": Param("relay", "what each layer computes", kind="str", choices=("relay", "and", "or", "mixed")),
    "cleanup": Param(CLEANUPS, "clean-up settings to run", kind="list[str]", choices=CLEANUPS),
    "samples": Param(20000, "sampled inputs", low=1),
    "embedding": Param("random", "feature directions", kind="str", choices=EMBEDDINGS),
    "storage": Param("auto", "directions stored, or made on demand chunk by chunk (same numbers)", kind="str",
                     choices=("auto", "stored", "on-demand")),
}
STORED_LIMIT = 2 * 2**30  # bytes of stored directions beyond which auto makes them on demand


def _stored_bytes(p: Values) -> int:
    """The stored network as its weights would be planned (dense random directions: the
    embedding, and per layer a read of at most two neurons per gate, its write and a read-out),
    the directions held while it is built, and the traced batches."""
    m, n, depth = p.m, p.n, p.layers
    hidden = 2 * m
    weights = [plan((n, m), n * m), plan((m, n), m * n)]
    weights += depth * [plan((hidden, n), hidden * n), plan((n, hidden), n * hidden), plan((m, n), m * n)]
    directions = (depth + 1) * m * n
    return sum(w.nbytes for w in weights) + FLOAT * (directions + 4 * 4096 * (depth + 1) * m)


@dataclass(frozen=True)
class Storage:
    """How a run holds its superposed network: ``stored``, or ``on-demand`` with its chunk plan;
    and the memory that takes."""

    kind: str
    plan: ChunkPlan | None
    bytes: int


@cache
def storage_of(p: Values) -> Storage:
    """The storage plan of a run, decided once for its parameters (check and body both ask)."""
    kind = p.storage if p.storage != "auto" else ("on-demand" if _stored_bytes(p) > STORED_LIMIT else "stored")
    if kind == "stored":
        return Storage(kind, None, _stored_bytes(p))
    plan = plan_streamed([p.m] * (p.layers + 1), p.n, 1 if p.gate == "relay" else 2, p.samples, p.active)
    return Storage(kind, plan, plan.bytes)


def check(p: Values) -> None:
    require(p.active <= p.m, f"active: must be <= m={p.m}, got {p.active}")
    require(p.gate == "relay" or p.m >= 2, "m: gates of fan-in 2 need m >= 2")
    if p.embedding == "identity":
        require(p.n >= p.m, f"n: the identity embedding needs n >= m={p.m}, got {p.n}")
    sizes = f"m={p.m}, n={p.n}, layers={p.layers}"
    storage = storage_of(p)
    if storage.kind == "stored":
        require_memory(storage.bytes, f"{sizes}: the feature directions of every layer (try storage=on-demand)")
    else:
        require_memory(storage.bytes,
                       f"{sizes}, samples={p.samples}: the streamed run (chunks, per-feature indices, the twin)")


def _circuit(p: Values, ctx: Context):
    gen = ctx.generator("circuit")
    if p.gate == "relay":
        return relay(p.m, p.layers, gen, ctx.draws)
    return random_circuit(p.m, p.layers, p.m, 2, GATE_SETS[p.gate], gen, ctx.draws)


def networks(p: Values, ctx: Context) -> dict:
    """The dedicated twin and the superposed network with the first clean-up setting, stored (a
    feature graph reads its weights)."""
    require_memory(_stored_bytes(p), f"m={p.m}, n={p.n}, layers={p.layers}: the stored network a graph reads")
    circuit = _circuit(p, ctx)
    sup = compile_superposed(circuit, p.n, p.embedding, p.cleanup[0], ctx.generator("embedding"),
                             ctx.draws)
    return {"superposed": ctx.place(sup), "dedicated": ctx.place(compile_dedicated(circuit))}


def body(p: Values, ctx: Context) -> Outcome:
    m, n, l, depth = p.m, p.n, p.active, p.layers
    circuit = _circuit(p, ctx)
    dedicated = ctx.place(compile_dedicated(circuit))
    cost_ded = dedicated.cost()
    storage = storage_of(p)
    rows, summary, costs = [], {"storage": storage.kind}, {}
    dedicated_trace = None
    for cleanup in dict.fromkeys(p.cleanup):
        sampler = ExactlyActive(m, l, ctx.seed_for("inputs"), ctx.device, ctx.draws)
        desc = f"tracing, clean-up {cleanup}"
        if storage.plan is None:
            sup = compile_superposed(circuit, n, p.embedding, cleanup, ctx.generator("embedding"), ctx.draws)
            sup = ctx.place(sup)
            costs[cleanup] = sup.cost()
            trace = trace_noise(circuit, {"superposed": sup.read_features, "dedicated": dedicated.read_features},
                                sampler, p.samples, progress=ctx.progress, device=ctx.device, desc=desc)
        else:
            plan = storage.plan
            summary["chunk"] = plan.chunk
            sup = StreamedSuperposed(circuit, n, p.embedding, cleanup, ctx.generator("embedding"),
                                     plan.chunk, ctx.device, ctx.draws)
            costs[cleanup] = sup.cost()
            readers = {"superposed": sup}
            if dedicated_trace is None:  # exact and fed the same inputs each time: traced once
                readers["dedicated"] = ChunkedNetwork(dedicated, plan.batch * plan.chunk, ctx.device)
            trace = trace_noise(circuit, readers, sampler, p.samples, plan.batch, ctx.progress, ctx.device, desc)
            dedicated_trace = trace.setdefault("dedicated", dedicated_trace)
        pred_mse, pred_wrong, mean_field = _predictions(p, cleanup)
        for t, (s, d) in enumerate(zip(trace["superposed"], trace["dedicated"])):
            rows.append({
                "cleanup": cleanup,
                "layer": t,
                "mse_superposed": s.mse,
                "predicted_mse": pred_mse[t] if pred_mse else None,
                "predicted_mse_mean_field": mean_field[t] if mean_field else None,
                "mse_dedicated": d.mse,
                "wrong_features_per_sample": s.wrong_features,
                "predicted_wrong_features": pred_wrong[t] if pred_wrong else None,
                "wrong_features_dedicated": d.wrong_features,
                "active_per_sample": s.active_per_sample,
                "neurons_superposed": 0 if t == 0 else costs[cleanup].neurons[t - 1],
                "neurons_dedicated": 0 if t == 0 else cost_ded.neurons[t - 1],
            })
        mses = [r["mse_superposed"] for r in rows if r["cleanup"] == cleanup]
        summary[f"mse_last_layer_{cleanup}"] = mses[-1]
        summary[f"growth_per_layer_{cleanup}"] = (
            (mses[-1] / mses[0]) ** (1 / depth) if mses[0] > 0 else None)
        summary[f"parameters_superposed_{cleanup}"] = costs[cleanup].parameters
    summary["parameters_dedicated"] = cost_ded.parameters
    summary["mse_dedicated_max"] = max(r["mse_dedicated"] for r in rows)
    return Outcome(rows, summary)


def _predictions(p: Values, cleanup: str):
    """(docs/theory.md MSE, wrong features, mean-field MSE) per layer; None where no form applies."""
    if p.gate != "relay" or p.embedding == "identity":
        return None, None, None
    m, n, l, depth = p.m, p.n, p.active, p.layers
    if cleanup == "none":
        mse = theory.relay_mse(m, n, l, depth)
        return mse, [theory.wrong_features_gaussian(m, v) for v in mse], None
    flat = [theory.cleanup_mse(m, n, l)] * (depth + 1)
    mf_mse, mf_wrong = theory.mean_field_cleanup_relay(m, n, l, depth)
    return flat, mf_wrong, mf_mse


def mse_by_layer_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    m, n, l = p.m, p.n, p.active
    fig, ax = plots.figure(
        f"{p.gate}: m={m} features in n={n}, l={l} active", "layer t", "per-feature MSE", log_y=True)
    styles = {"none": ("tab:red", "clean-up off"), "threshold": ("tab:blue", "clean-up on")}
    for cleanup, (color, label) in styles.items():
        sel = [r for r in rows if r["cleanup"] == cleanup]
        if not sel:
            continue
        x = [r["layer"] for r in sel]
        plots.line(ax, x, [r["mse_superposed"] for r in sel], f"{label}: measured", color)
        plots.line(ax, x, [r["predicted_mse"] for r in sel], f"{label}: predicted", color, "--")
        plots.line(ax, x, [r["predicted_mse_mean_field"] for r in sel],
                   f"{label}: mean-field", color, ":")
    x = sorted({r["layer"] for r in rows})
    plots.line(ax, x, [0.0] * len(x), "dedicated (exact)", plots.DEDICATED, "-s")
    plots.finish(ax, integer_x=True)
    return fig


scenario = Scenario(
    name="compounding-noise",
    description="error against depth: superposed relay with clean-up off and on, against theory and the dedicated twin",
    params=PARAMS,
    body=body,
    figures={"mse_by_layer": mse_by_layer_figure},
    check=check,
    networks=networks,
    trainable=True,
    draws=DRAWS,
)


