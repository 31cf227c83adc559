"""u-and-depth: U-AND layers stacked, naively and with error correction between them.

The circuit is the copy relay (``circuits.generators.copy_relay``): k features carried as two
copies, each layer an AND of a feature with its copy, so activity stays at 2 l features while
every layer is a real U-AND layer. Naively, each U-AND block reads the previous block's ANDs
straight from its neurons through their averaging read-outs; those read-outs are non-negative
and overlap, so every read carries a positive error (mean E[(N - 1)_+] on an off AND) and a
neuron summing p m of them drifts upwards. With correction, a block of two ReLUs per feature
writes h(read-out) onto its own direction before the next U-AND block, which then sees clean
booleans, so every layer should show the single-layer law of docs/theory.md 3.2 (``circuits.theory.
uand_case``), which the prediction columns give.

Row keys (one row per layer, 0 = the inputs): ``layer``, ``mse_naive``, ``mse_corrected``,
``predicted_mse``, ``mse_dedicated``, ``wrong_features_naive``, ``wrong_features_corrected``,
``wrong_features_dedicated``
(wrong features per sample), ``interference_mean_naive``, ``interference_mean_corrected``,
``predicted_interference_mean`` (read-out of off features), ``signal_mean_naive``,
``signal_mean_corrected``, ``predicted_signal_mean``, ``neurons_naive``, ``neurons_corrected``,
``neurons_dedicated`` (neurons spent to compute the layer).
Summary keys: ``features``, ``pairs``, ``first_failing_layer_naive``,
``first_failing_layer_corrected`` (first layer with more than one wrong feature per sample).
"""

from __future__ import annotations

from matplotlib.figure import Figure

from circuits import theory
from circuits.compile import CompiledNetwork, compile_dedicated
from circuits.generators import copy_relay
from circuits.sampling import Duplicated, ExactlyActive
from circuits.trace import trace_noise
from circuits.uand import compile_uand_stack
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

PARAMS = {
    "k": Param(500, "features (each carried as two copies)", low=1),
    "d": Param(4000, "neurons per U-AND block", low=1),
    "p": Param(0.05, "connection probability", kind="float", low=1e-6, high=1.0),
    "active": Param(2, "active features (twice as many copies)", low=1),
    "layers": Param(4, "U-AND layers", low=1, high=32),
    "samples": Param(2000, "sampled inputs", low=1),
}


def check(p: Values) -> None:
    require(p.active <= p.k, f"active: must be <= k={p.k}, got {p.active}")
    need = FLOAT * (4 * p.layers * p.d * 2 * p.k + 4 * 512 * 2 * p.k * (p.layers + 1))
    require_memory(need, f"k={p.k}, d={p.d}, layers={p.layers}: the U-AND blocks")


def networks(p: Values, ctx: Context) -> dict:
    """The naive and the corrected U-AND stack over one copy relay, and its dedicated twin."""
    circuit = copy_relay(p.k, p.layers, ctx.generator("circuit"))
    return {
        "naive": ctx.place(compile_uand_stack(circuit, p.d, p.p, "none", ctx.generator("uand"))),
        "corrected": ctx.place(compile_uand_stack(circuit, p.d, p.p, "cleanup", ctx.generator("uand"))),
        "dedicated": ctx.place(compile_dedicated(circuit)),
    }


def body(p: Values, ctx: Context) -> Outcome:
    k, d, prob, l = p.k, p.d, p.p, p.active
    m, on = 2 * k, 2 * l
    nets = networks(p, ctx)
    circuit = nets["dedicated"].circuit
    sampler = Duplicated(ExactlyActive(k, l, ctx.seed_for("inputs")))
    trace = trace_noise(circuit, {name: net.read_features for name, net in nets.items()}, sampler,
                        p.samples, batch_size=512, progress=ctx.progress, device=ctx.device)
    # the single-layer law on clean inputs: on features are case 11 (2l - 2 others on), off ones 00
    mean_on, std_on = theory.uand_case(2, 2, on, prob, d)
    mean_off, std_off = theory.uand_case(0, 2, on, prob, d)
    predicted_mse = (on * (mean_on**2 + std_on**2) + (m - on) * (mean_off**2 + std_off**2)) / m
    rows = []
    for t in range(circuit.depth + 1):
        row = {"layer": t}
        for key in ("mse", "wrong_features", "interference_mean", "signal_mean"):
            for name in ("naive", "corrected") + (("dedicated",) if key in ("mse", "wrong_features") else ()):
                r = trace[name][t]
                row[f"{key}_{name}"] = {"mse": r.mse, "wrong_features": r.wrong_features,
                                        "interference_mean": r.interference_mean, "signal_mean": r.signal_mean}[key]
            if key == "mse":
                row["predicted_mse"] = predicted_mse if t else 0.0
            if key == "interference_mean":
                row["predicted_interference_mean"] = mean_off if t else 0.0
            if key == "signal_mean":
                row["predicted_signal_mean"] = 1 + mean_on if t else 1.0
        for name, net in nets.items():
            blocks = net.network.blocks
            row[f"neurons_{name}"] = 0 if t == 0 else sum(blocks[b].hidden for b in _blocks_into(net, t))
        rows.append(row)

    def first_failing(name: str):
        bad = [r["layer"] for r in rows if r[f"wrong_features_{name}"] > 1]
        return bad[0] if bad else None

    summary = {"features": m, "pairs": m * (m - 1) // 2, "first_failing_layer_naive": first_failing("naive"),
               "first_failing_layer_corrected": first_failing("corrected")}
    columns = ["layer", "mse_naive", "mse_corrected", "predicted_mse", "mse_dedicated", "wrong_features_naive",
               "wrong_features_corrected", "wrong_features_dedicated", "interference_mean_naive",
               "interference_mean_corrected",
               "predicted_interference_mean", "signal_mean_naive", "signal_mean_corrected",
               "predicted_signal_mean", "neurons_naive", "neurons_corrected", "neurons_dedicated"]
    return Outcome(rows, summary, columns)


def _blocks_into(net: CompiledNetwork, layer: int) -> range:
    """The blocks that compute ``layer`` from the layer before (correction blocks included)."""
    return net.blocks_of_layer(layer - 1)


def mse_by_layer_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    k, d, prob, l = p.k, p.d, p.p, p.active
    fig, ax = plots.figure(f"stacked U-AND: k={k} copied features, d={d}, p={prob:g}, l={l}", "layer",
                           "per-feature MSE", log_y=True)
    x = [r["layer"] for r in rows]
    plots.line(ax, x, [r["mse_naive"] for r in rows], "naive stack", "tab:red")
    plots.line(ax, x, [r["mse_corrected"] for r in rows], "with error correction", plots.MEASURED)
    plots.line(ax, x, [r["predicted_mse"] for r in rows], "single-layer law", plots.PREDICTED, "--")
    plots.line(ax, x, [r["mse_dedicated"] for r in rows], "dedicated", plots.DEDICATED, "-s")
    plots.finish(ax, integer_x=True)
    return fig


scenario = Scenario(
    name="u-and-depth",
    description="stacked U-AND layers: the naive stack against one with error correction",
    params=PARAMS,
    body=body,
    figures={"mse_by_layer": mse_by_layer_figure},
    check=check,
    networks=networks,
    cost="minutes",
)
