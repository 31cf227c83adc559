"""circuit: one random layered circuit, compiled superposed and dedicated, run on the same inputs.

Row keys (one row per layer t, t = 0 the read-out of the input stream): ``layer``, ``features``,
``wrong_features_superposed``, ``wrong_features_dedicated`` (wrong features per sample after thresholding
the read-out at 1/2), ``mse_superposed``, ``mse_dedicated``, ``neurons_superposed``,
``neurons_dedicated``.
Summary keys: ``stream_width_superposed``, ``stream_width_dedicated``, ``parameters_superposed``,
``parameters_dedicated``, ``neurons_superposed``, ``neurons_dedicated``, ``rms_overlap``,
``max_overlap``, ``welch_bound``, ``accuracy_superposed``, ``accuracy_dedicated``.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from circuits.sampling import ExactlyActive
from circuits.trace import trace_noise
from layers import coherence
from layers.philox import DRAWS
from scenarios import plots
from scenarios.engine.circuit_shape import PARAMS, check, networks
from scenarios.engine.params import Values
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result


def body(p: Values, ctx: Context) -> Outcome:
    nets = networks(p, ctx)
    sup, ded = nets["superposed"], nets["dedicated"]
    circuit = sup.circuit
    sampler = ExactlyActive(p.m, p.active, ctx.seed_for("inputs"), ctx.device, ctx.draws)
    trace = trace_noise(circuit, {"superposed": sup.read_features, "dedicated": ded.read_features},
                        sampler, p.samples, progress=ctx.progress, device=ctx.device,
                        desc="tracing superposed and dedicated")
    cs, cd = sup.cost(), ded.cost()
    rows = []
    for t, (s, d) in enumerate(zip(trace["superposed"], trace["dedicated"])):
        rows.append({
            "layer": t,
            "features": s.features,
            "wrong_features_superposed": s.wrong_features,
            "wrong_features_dedicated": d.wrong_features,
            "mse_superposed": s.mse,
            "mse_dedicated": d.mse,
            "neurons_superposed": 0 if t == 0 else cs.neurons[t - 1],
            "neurons_dedicated": 0 if t == 0 else cd.neurons[t - 1],
        })
    coh = coherence(sup.directions(0).cpu())
    gates_total = sum(circuit.widths[1:])
    summary = {
        "stream_width_superposed": max(cs.stream_widths),
        "stream_width_dedicated": max(cd.stream_widths),
        "parameters_superposed": cs.parameters,
        "parameters_dedicated": cd.parameters,
        "neurons_superposed": cs.total_neurons,
        "neurons_dedicated": cd.total_neurons,
        "rms_overlap": coh.rms_overlap,
        "max_overlap": coh.max_overlap,
        "welch_bound": coh.welch_bound,
        "accuracy_superposed": 1 - sum(r["wrong_features_superposed"] for r in rows[1:]) / gates_total,
        "accuracy_dedicated": 1 - sum(r["wrong_features_dedicated"] for r in rows[1:]) / gates_total,
    }
    return Outcome(rows, summary)


def wrong_features_figure(r: Result) -> Figure:
    p = r.p
    fig, ax = plots.figure(f"random circuit: m={p.m} in n={p.n}, {p.active} active, cleanup={p.cleanup}",
                           "layer", "wrong features per sample")
    x = [row["layer"] for row in r.rows]
    plots.line(ax, x, [row["wrong_features_superposed"] for row in r.rows], "superposed", plots.MEASURED)
    plots.line(ax, x, [row["wrong_features_dedicated"] for row in r.rows], "dedicated", plots.DEDICATED)
    plots.finish(ax, integer_x=True)
    return fig


scenario = Scenario(
    name="circuit",
    description="a random circuit compiled superposed and dedicated: wrong gate outputs per layer",
    params=PARAMS,
    body=body,
    check=check,
    networks=networks,
    figures={"wrong_features": wrong_features_figure},
    trainable=True,
    draws=DRAWS,
)
