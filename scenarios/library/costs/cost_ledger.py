"""cost-ledger: what each network pays for a target error after L layers of the relay.

For the dedicated network and the superposed one with clean-up off and on: neurons, stream
width, parameters, and the largest number of simultaneously active features l for which the
wrong features per sample at the last layer stay within ``target``.

Row keys (one row per network): ``network``, ``stream_width``, ``neurons_per_layer``,
``total_neurons``, ``parameters``, ``nonzero_parameters``, ``max_active_measured`` (largest l of
``active`` within the target; the dedicated one is also run with all m on),
``max_active_predicted`` (largest integer l within the target by the predictions: Gaussian tails
of the relay recursion without clean-up, the mean-field model with it), ``wrong_features_at_max_active``.
Summary keys: ``target``, ``m``, ``n``, ``layers``, ``neurons_per_active_<network>``.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from circuits import theory
from circuits.compile import compile_dedicated, compile_superposed
from circuits.generators import relay
from circuits.sampling import ExactlyActive
from circuits.trace import trace_noise
from layers.philox import DRAWS
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

PARAMS = {
    "m": Param(1024, "features per layer", low=2),
    "n": Param(256, "stream width of the superposed networks", low=1),
    "layers": Param(4, "relay layers", low=1, high=32),
    "target": Param(0.1, "wrong features per sample allowed at the last layer", kind="float", low=0.0),
    "active": Param((1, 2, 3, 4, 6, 8, 12, 16, 24, 32), "numbers of active features to try",
                    kind="list[int]", low=1),
    "samples": Param(4000, "sampled inputs per l", low=1),
}


def check(p: Values) -> None:
    require(max(p.active) <= p.m, f"active: every l must be <= m={p.m}, got {max(p.active)}")
    features = (p.layers + 1) * p.m
    need = FLOAT * (14 * features * p.n + 4 * 4096 * features)
    require_memory(need, f"m={p.m}, n={p.n}, layers={p.layers}: the feature directions of every layer")


def _predicted_max(p: Values, cleanup: str) -> int:
    m, n, depth, best = p.m, p.n, p.layers, 0
    for l in range(1, max(p.active) + 1):
        if cleanup == "none":
            wrong = theory.wrong_features_gaussian(m, theory.relay_mse(m, n, l, depth)[-1])
        else:
            wrong = theory.mean_field_cleanup_relay(m, n, l, depth, grid=401, nodes=81)[1][-1]
        if wrong > p.target:
            break
        best = l
    return best


def body(p: Values, ctx: Context) -> Outcome:
    m, depth = p.m, p.layers
    circuit = relay(m, depth, ctx.generator("circuit"), ctx.draws)
    networks = {
        "dedicated": compile_dedicated(circuit),
        "superposed_none": compile_superposed(circuit, p.n, "random", "none", ctx.generator("embedding"), ctx.draws),
        "superposed_threshold": compile_superposed(circuit, p.n, "random", "threshold",
                                                   ctx.generator("embedding"), ctx.draws),
    }
    rows, curves = [], {}
    for name, net in networks.items():
        net = ctx.place(net)
        trials = sorted(set(p.active) | ({m} if name == "dedicated" else set()))
        wrong = {}
        for l in trials:
            sampler = ExactlyActive(m, l, ctx.seed_for(f"inputs:{l}"), ctx.device, ctx.draws)
            trace = trace_noise(circuit, {name: net.read_features}, sampler, p.samples,
                                progress=ctx.progress, device=ctx.device, desc=f"tracing {name}, l={l}")
            wrong[l] = trace[name][-1].wrong_features
        curves[name] = wrong
        ok = [l for l in trials if wrong[l] <= p.target]
        cost = net.cost()
        predicted = m if name == "dedicated" else _predicted_max(p, name.split("_")[1])
        rows.append({
            "network": name,
            "stream_width": max(cost.stream_widths),
            "neurons_per_layer": max(cost.neurons),
            "total_neurons": cost.total_neurons,
            "parameters": cost.parameters,
            "nonzero_parameters": cost.nonzero_parameters,
            "max_active_measured": max(ok) if ok else 0,
            "max_active_predicted": predicted,
            "wrong_features_at_max_active": wrong[max(ok)] if ok else None,
        })
    summary = {"target": p.target, "m": m, "n": p.n, "layers": depth}
    for r in rows:
        summary[f"neurons_per_active_{r['network']}"] = (
            r["neurons_per_layer"] / r["max_active_measured"] if r["max_active_measured"] else None)
    # per network, (l, wrong features per sample at the last layer) for every l tried
    return Outcome(rows, summary, data={"wrong_by_active": {k: sorted(w.items()) for k, w in curves.items()}})


def ledger_figure(result: Result) -> Figure:
    p, m, depth = result.p, result.p.m, result.p.layers
    curves = {name: dict(pairs) for name, pairs in result.data["wrong_by_active"].items()}
    fig, ax = plots.figure(f"relay, {depth} layers, m={m}: wrong features at the last layer",
                           "active features l", "wrong features per sample", log_y=True)
    colors = {"dedicated": plots.DEDICATED, "superposed_none": "tab:red",
              "superposed_threshold": plots.MEASURED}
    for name, wrong in curves.items():
        x = [l for l in sorted(wrong) if l <= max(p.active)]
        plots.line(ax, x, [wrong[l] for l in x], name, colors[name])
    ax.axhline(p.target, color="black", ls="--", lw=1, label="target")
    ax.set_xscale("log", base=2)
    plots.finish(ax, integer_x=False)
    return fig


scenario = Scenario(
    name="cost-ledger",
    description="neurons, parameters and affordable sparsity of each network at a target error",
    params=PARAMS,
    body=body,
    figures={"ledger": ledger_figure},
    check=check,
    cost="minutes",
    draws=DRAWS,
)
