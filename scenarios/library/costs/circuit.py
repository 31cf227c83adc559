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

from circuits.compile import CLEANUPS, compile_dedicated, compile_superposed
from circuits.generators import random_circuit
from circuits.sampling import ExactlyActive
from circuits.spec import GATES
from circuits.trace import trace_noise
from layers import EMBEDDINGS, coherence
from scenarios import plots
from scenarios.memory import FLOAT, require_memory
from scenarios.params import Param, require
from scenarios.registry import Outcome, Scenario

PARAMS = {
    "m": Param(200, "input features", low=1),
    "n": Param(64, "stream width of the superposed network", low=1),
    "layers": Param(3, "gate layers", low=1, high=64),
    "width": Param(100, "gates per layer", low=1),
    "fan_in": Param(2, "inputs per AND / OR gate", low=2),
    "gates": Param(("and", "or"), "gate kinds to draw from", kind="list[str]",
                   choices=tuple(g.lower() for g in GATES)),
    "active": Param(3, "input features on per sample", low=0),
    "samples": Param(10000, "sampled inputs", low=1),
    "embedding": Param("random", "feature directions", kind="str", choices=EMBEDDINGS),
    "cleanup": Param("threshold", "clean-up before each write", kind="str", choices=CLEANUPS),
}


def check(p) -> None:
    require(p["active"] <= p["m"], f"active: must be <= m={p['m']}, got {p['active']}")
    # the widest gate drawn: fan_in for AND / OR, two for ANDNOT, one for BUF / NOT
    need = max(p["fan_in"] if g in ("and", "or") else 2 if g == "andnot" else 1 for g in p["gates"])
    require(need <= p["m"], f"fan_in: gates of {need} inputs need m >= {need} (the inputs), got m={p['m']}")
    require(p["layers"] == 1 or need <= p["width"],
            f"fan_in: gates of {need} inputs need width >= {need} (the previous layer), got width={p['width']}")
    if p["embedding"] == "identity":
        need = max(p["m"], p["width"])
        require(p["n"] >= need,
                f"n: the identity embedding needs n >= {need} (one direction per feature), got {p['n']}")
    features = p["m"] + p["layers"] * p["width"]
    need = FLOAT * (3 * features * p["n"] + 4 * p["layers"] * p["width"] * p["n"] + 4 * 4096 * features)
    require_memory(need, f"m={p['m']}, width={p['width']}, layers={p['layers']}, n={p['n']}: "
                         "the feature directions and the traced batches")


def networks(p, ctx) -> dict:
    circuit = random_circuit(p["m"], p["layers"], p["width"], p["fan_in"],
                             [g.upper() for g in p["gates"]], ctx.generator("circuit"))
    return {
        "superposed": compile_superposed(circuit, p["n"], p["embedding"], p["cleanup"],
                                         ctx.generator("embedding")).to(ctx.device),
        "dedicated": compile_dedicated(circuit).to(ctx.device),
    }


def body(p, ctx) -> Outcome:
    nets = networks(p, ctx)
    sup, ded = nets["superposed"], nets["dedicated"]
    circuit = sup.circuit
    sampler = ExactlyActive(p["m"], p["active"], ctx.seed_for("inputs"), ctx.device)
    trace = trace_noise(circuit, {"superposed": sup.read_features, "dedicated": ded.read_features},
                        sampler, p["samples"], progress=ctx.progress, device=ctx.device,
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

    def figure():
        fig, ax = plots.figure(
            f"random circuit: m={p['m']} in n={p['n']}, {p['active']} active, cleanup={p['cleanup']}",
            "layer", "wrong features per sample")
        x = [r["layer"] for r in rows]
        plots.line(ax, x, [r["wrong_features_superposed"] for r in rows], "superposed", plots.MEASURED)
        plots.line(ax, x, [r["wrong_features_dedicated"] for r in rows], "dedicated", plots.DEDICATED)
        plots.finish(ax, integer_x=True)
        return fig

    return Outcome(rows, summary, {"wrong_features": figure})


scenario = Scenario("circuit", "a random circuit compiled superposed and dedicated: wrong gate outputs per layer",
                    PARAMS, body, check, networks)
