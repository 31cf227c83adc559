"""Training a network on a scenario's circuit, shared by ``superposim train`` and the
scenarios that compare a trained network with hand-built ones: the training parameters, their
memory guard, and ``train_networks`` (the hand-built pair a scenario builds, plus a trained one
read by probes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from circuits.spec import Circuit

if TYPE_CHECKING:
    from scenarios.engine.registry import Context

from circuits.train import fit_probes, train_on_circuit
from layers.training import LOSSES, TrainConfig
from scenarios.engine.circuit_shape import networks
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values

TRAIN_PARAMS = {
    "hidden": Param(64, "neurons per layer of the trained network", low=1),
    "steps": Param(3000, "training steps at most", low=1),
    "batch": Param(512, "samples per step", low=1),
    "lr": Param(3e-3, "AdamW learning rate", kind="float", above=0.0),
    "weight_decay": Param(1e-4, "AdamW weight decay", kind="float", low=0.0),
    "loss": Param("bce", "training loss", kind="str", choices=LOSSES),
    "lp": Param(4.0, "the p of the L^p loss", kind="float", low=2.0),
    "supervise": Param("all", "layers whose gates are trained", kind="str", choices=("all", "outputs")),
    "residual": Param(False, "residual blocks", kind="bool"),
    "learn_embedding": Param(False, "train the input embedding too", kind="bool"),
    "checkpoint_every": Param(200, "steps between checkpoints", low=1),
    "eval_every": Param(50, "steps between accuracy checks", low=1),
    "target_accuracy": Param(0.999, "early stop once every layer's batch accuracy reaches it",
                             kind="float", low=0.0, high=1.0),
    "patience": Param(3, "early stop after this many evaluations in a row at target_accuracy", low=1),
    "probe_samples": Param(20000, "held-out samples to fit the probes", low=2),
}


def require_training_memory(p: Values) -> None:
    """Refuse, before any work, a training run whose network, batches or probes cannot fit.
    A batch holds the inputs and every layer's stream, neurons and targets, each about three
    times (values, gradients, AdamW's view); the probes hold probe_samples read-outs per layer."""
    layers = getattr(p, "layers", 1)
    widths = getattr(p, "width", p.m) * layers
    weights = 10 * p.hidden * p.n * layers
    batch = 3 * p.batch * (p.m + layers * (p.n + p.hidden) + 2 * widths)
    probes = 4 * p.probe_samples * p.n * (layers + 1)
    require_memory(FLOAT * (weights + batch + probes),
                   f"hidden={p.hidden}, n={p.n}, batch={p.batch}, probe_samples={p.probe_samples}: "
                   "the trained network, its batches and its probes")


def train_config(p: Values, circuit: Circuit, seed: int) -> TrainConfig:
    return TrainConfig(
        m=p.m, n=p.n, widths=tuple(circuit.widths[1:]), hidden=p.hidden, residual=p.residual,
        learn_embedding=p.learn_embedding, loss=p.loss, lp=p.lp, supervise=p.supervise, lr=p.lr,
        weight_decay=p.weight_decay, batch=p.batch, steps=p.steps, checkpoint_every=p.checkpoint_every,
        eval_every=p.eval_every, target_accuracy=p.target_accuracy, patience=p.patience, seed=seed)


def train_networks(p: Values, ctx: Context, out_dir: str | Path | None = None, resume: bool = False,
                   build: Callable[[Values, Context], dict] = networks) -> dict:
    """The hand-built and dedicated networks that ``build`` (a scenario's ``networks``) makes,
    and a trained one with its probes, keyed ``handbuilt``, ``dedicated``, ``trained``; plus the
    training state and the model. Training runs on the CPU: scenarios that train say so."""
    nets = build(p, ctx)
    hand = ctx.place(nets["superposed"])
    circuit = hand.circuit
    cfg = train_config(p, circuit, ctx.seed_for("training") % (2**31))
    model, state = train_on_circuit(circuit, cfg, p.active, embedding=hand.directions(0), out_dir=out_dir,
                                    resume=resume, progress=ctx.progress)
    trained = ctx.place(fit_probes(model, circuit, p.active, p.probe_samples, ctx.seed_for("probes") % (2**31)))
    return {"handbuilt": hand, "dedicated": ctx.place(nets["dedicated"]), "trained": trained, "state": state,
            "model": model}
