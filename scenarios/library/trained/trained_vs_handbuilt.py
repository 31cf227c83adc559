"""trained-vs-handbuilt: one circuit; the hand-built superposed network, a trained one and the
dedicated twin, side by side on the same inputs.

The trained network is a ReLU MLP with the same stream width n and input embedding as the
hand-built one (its neurons per layer set by ``hidden``), trained with AdamW on the circuit's
exact gate values (binary cross-entropy or L^p) and read by least-squares probes fitted on
held-out inputs, so that all three are read and traced the same way.

Row keys (one row per layer, 0 = the input read-out): ``layer``, ``wrong_features_trained``,
``wrong_features_handbuilt``, ``wrong_features_dedicated``, ``mse_trained``, ``mse_handbuilt``,
``mse_dedicated``, ``neurons_trained``, ``neurons_handbuilt``, ``neurons_dedicated``,
``parameters_trained``, ``parameters_handbuilt``, ``parameters_dedicated`` (of the block
writing that layer).
Summary keys: ``accuracy_trained``, ``accuracy_handbuilt``, ``accuracy_dedicated`` (per output:
the last layer's gates), ``on_recall_trained``, ``on_recall_handbuilt`` (the share of outputs
that are on and read as on: accuracy alone flatters a network that answers 0), ``train_seconds``,
``train_steps``, ``stopped_early``, ``intended_share_trained``, ``intended_share_handbuilt``,
``intended_share_dedicated`` (graph layer: mean share of incoming weight on intended edges),
``accuracy_trained_heads``, ``on_recall_trained_heads`` (the trained network's own output
heads, logit > 0, instead of the linear probes).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from matplotlib.figure import Figure

from circuits.graph import FeatureGraph
from circuits.sampling import ExactlyActive
from circuits.spec import Circuit
from circuits.trace import trace_noise
from circuits.train import circuit_batches
from layers.training import TrainedMLP
from scenarios import plots
from scenarios.engine.circuit_shape import PARAMS as CIRCUIT_PARAMS
from scenarios.engine.circuit_shape import check as circuit_check
from scenarios.engine.circuit_shape import networks
from scenarios.engine.params import Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result
from scenarios.engine.training import TRAIN_PARAMS, require_training_memory, train_networks

DEFAULTS = {"m": 128, "n": 96, "layers": 2, "width": 32, "active": 2, "samples": 20000}
PARAMS = {k: (replace(p, default=DEFAULTS[k]) if k in DEFAULTS else p)
          for k, p in CIRCUIT_PARAMS.items()} | TRAIN_PARAMS


def check(p: Values) -> None:
    circuit_check(p)
    require(p.probe_samples > p.n, f"probe_samples: must exceed n={p.n} to fit a probe")
    require_training_memory(p)


@torch.no_grad()
def head_scores(model: TrainedMLP, circuit: Circuit, active: int, samples: int, seed: int) -> tuple[float, float]:
    """Per-output accuracy and on-recall of the network's own output heads (logit > 0)."""
    x, targets = circuit_batches(circuit, active)(torch.Generator().manual_seed(seed), samples)
    logits, truth = model(x)[-1], targets[-1] > 0.5
    said = logits > 0
    on = int(truth.sum())
    return float((said == truth).float().mean()), (float((said & truth).sum()) / on if on else 1.0)


def body(p: Values, ctx: Context) -> Outcome:
    built = train_networks(p, ctx)
    state, model = built.pop("state"), built.pop("model")
    circuit = built["handbuilt"].circuit
    sampler = ExactlyActive(p.m, p.active, ctx.seed_for("inputs"))
    trace = trace_noise(circuit, {k: v.read_features for k, v in built.items()}, sampler, p.samples,
                        progress=ctx.progress)
    rows = []
    for t in range(circuit.depth + 1):
        row = {"layer": t}
        for key in ("trained", "handbuilt", "dedicated"):
            row[f"wrong_features_{key}"] = trace[key][t].wrong_features
        for key in ("trained", "handbuilt", "dedicated"):
            row[f"mse_{key}"] = trace[key][t].mse
        for key in ("trained", "handbuilt", "dedicated"):
            row[f"neurons_{key}"] = 0 if t == 0 else built[key].network.blocks[t - 1].hidden
        for key in ("trained", "handbuilt", "dedicated"):
            row[f"parameters_{key}"] = 0 if t == 0 else built[key].network.blocks[t - 1].parameter_count()
        rows.append(row)
    last = {k: trace[k][-1] for k in built}
    outputs = circuit.widths[-1]
    summary = {f"accuracy_{k}": 1 - last[k].wrong_features / outputs for k in ("trained", "handbuilt", "dedicated")}
    for k in ("trained", "handbuilt"):
        on = last[k].active_per_sample
        summary[f"on_recall_{k}"] = 1 - last[k].false_negatives / on if on > 0 else None
    heads = head_scores(model, circuit, p.active, p.samples, ctx.seed_for("heads") % (2**31))
    summary["accuracy_trained_heads"], summary["on_recall_trained_heads"] = heads
    summary |= {"train_seconds": state.seconds, "train_steps": state.step, "stopped_early": state.stopped_early}
    for k, net in built.items():
        shares = [s for s in FeatureGraph.build(net).intended_share_by_layer() if s is not None]
        summary[f"intended_share_{k}"] = sum(shares) / len(shares) if shares else None
    history = state.history
    # the training history (step, loss, batch accuracy per layer), for the learning curve
    return Outcome(rows, summary, data={"history": [{k: h[k] for k in ("step", "loss", "accuracy")} for h in history]})


def learning_curve_figure(result: Result) -> Figure:
    history = result.data["history"]
    fig, ax = plots.figure("training: loss and worst layer's batch accuracy", "step", "loss", log_y=False)
    ax.set_yscale("log")
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["loss"] for h in history], color=plots.MEASURED, label="loss")
    ax2 = ax.twinx()
    ax2.plot(steps, [min(h["accuracy"]) for h in history], color="tab:orange", label="accuracy")
    ax2.set_ylabel("accuracy")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.12, 1.0), frameon=False)
    return fig


def errors_by_layer_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    fig, ax = plots.figure(f"wrong features per sample: m={p.m} in n={p.n}, l={p.active}",
                           "layer", "wrong features per sample")
    x = [r["layer"] for r in rows]
    plots.line(ax, x, [r["wrong_features_trained"] for r in rows], "trained (probes)", "tab:purple")
    plots.line(ax, x, [r["wrong_features_handbuilt"] for r in rows], "hand-built superposed", plots.MEASURED)
    plots.line(ax, x, [r["wrong_features_dedicated"] for r in rows], "dedicated", plots.DEDICATED, "-s")
    plots.finish(ax, integer_x=True)
    return fig


scenario = Scenario(
    name="trained-vs-handbuilt",
    description="a trained network against the hand-built superposed one and the dedicated twin",
    params=PARAMS,
    body=body,
    figures={"learning_curve": learning_curve_figure, "errors_by_layer": errors_by_layer_figure},
    check=check,
    networks=networks,
    exports=lambda p, ctx: {"superposed": lambda: networks(p, ctx)["superposed"],
                            "dedicated": lambda: networks(p, ctx)["dedicated"],
                            "trained": lambda: train_networks(p, ctx)["trained"]},
    devices=("cpu",),
    trainable=True,
)
