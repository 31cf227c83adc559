"""A trainable ReLU MLP on the Network stack, and a seeded training loop with lossless resume.

The loop knows nothing about circuits: it asks ``batch(generator, size)`` for inputs and
per-layer 0/1 targets. Everything that decides the next step (weights, AdamW moments, the step,
the data generator's state, the history) is in the checkpoint, so a resumed run continues
exactly where the checkpoint left off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from layers.checkpoint import WeightFileError, load_weights, save_weights
from layers.embeddings import make_embedding
from layers.errors import SuperposimError
from layers.network import Network, ReLUBlock
from layers.weights import Dense

LOSSES = ("bce", "lp")
# Settings a resumed run may change: how long to train, when to stop early, how often to save.
RESUMABLE = ("steps", "target_accuracy", "patience", "checkpoint_every")


class TrainingDiverged(SuperposimError, RuntimeError):
    """The loss or the weights stopped being finite; the last finite checkpoint is kept."""


class CheckpointError(SuperposimError, ValueError):
    """A checkpoint that cannot be resumed (another run's, another shape, not a checkpoint)."""


@dataclass(frozen=True)
class TrainConfig:
    m: int  # input features
    n: int  # stream width
    widths: tuple[int, ...]  # features per supervised layer (the circuit's layers 1..L)
    hidden: int = 64
    residual: bool = False
    learn_embedding: bool = False
    loss: str = "bce"
    lp: float = 4.0  # the p of the L^p loss
    supervise: str = "all"  # or "outputs"
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch: int = 512
    steps: int = 2000
    checkpoint_every: int = 200
    eval_every: int = 50
    target_accuracy: float = 0.999  # early stop once a batch reaches it on every supervised layer
    patience: int = 3  # ... on this many evaluations in a row
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self) | {"widths": list(self.widths)}


class TrainedMLP(nn.Module):
    """A Network of ReLU blocks (stream n, hidden h) plus one linear head per supervised layer."""

    def __init__(self, cfg: TrainConfig, embedding: torch.Tensor | None = None) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(cfg.seed)
        phi = embedding if embedding is not None else make_embedding("random", cfg.m, cfg.n, g)
        embed = phi.T.contiguous().clone()
        blocks = []
        for _ in cfg.widths:
            blocks.append(ReLUBlock(
                Dense(nn.Parameter(torch.randn(cfg.hidden, cfg.n, generator=g) / math.sqrt(cfg.n))),
                nn.Parameter(torch.zeros(cfg.hidden)),
                Dense(nn.Parameter(torch.randn(cfg.n, cfg.hidden, generator=g) / math.sqrt(cfg.hidden))),
                residual=cfg.residual,
            ))
        self.network = Network(Dense(nn.Parameter(embed) if cfg.learn_embedding else embed), blocks)
        heads = [nn.Linear(cfg.n, w) for w in cfg.widths]
        with torch.no_grad():
            for head in heads:
                head.weight.copy_(torch.randn(head.weight.shape, generator=g) / math.sqrt(cfg.n))
                head.bias.zero_()
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every supervised layer."""
        streams = self.network.streams(x)
        return [head(s) for head, s in zip(self.heads, streams[1:])]


@dataclass
class TrainState:
    step: int = 0
    history: list[dict] = field(default_factory=list)  # one entry per evaluation
    seconds: float = 0.0
    stopped_early: bool = False


def _loss(cfg: TrainConfig, logits: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    layers = range(len(logits)) if cfg.supervise == "all" else [len(logits) - 1]
    total = logits[0].new_zeros(())
    for t in layers:
        if cfg.loss == "bce":
            total = total + nn.functional.binary_cross_entropy_with_logits(logits[t], targets[t])
        else:  # L^p on probabilities: p > 2 punishes the few large errors, as booleans want
            total = total + (torch.sigmoid(logits[t]) - targets[t]).abs().pow(cfg.lp).mean()
    return total / len(layers)


def _accuracy(logits: list[torch.Tensor], targets: list[torch.Tensor]) -> list[float]:
    return [float(((lg > 0) == (tg > 0.5)).float().mean()) for lg, tg in zip(logits, targets)]


def _pack(model: TrainedMLP, opt: torch.optim.Optimizer, gen: torch.Generator) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items() if v is not None}
    names = {id(p): k for k, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                tensors[f"opt.{names[id(p)]}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.data"] = gen.get_state()
    return tensors


def _unpack(tensors: dict, model: TrainedMLP, opt: torch.optim.Optimizer, gen: torch.Generator) -> None:
    if "rng.data" not in tensors:
        raise CheckpointError("it holds no optimiser and data state (a model file, not a checkpoint)")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"it holds non-finite values ({bad[0]})")
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise CheckpointError(f"its weights do not fit this network: {first}") from None
    params = dict(model.named_parameters())
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            name, _, slot = key[4:].rpartition(".")
            if name not in params or (slot != "step" and value.shape != params[name].shape):
                raise CheckpointError(f"its optimiser state {key!r} does not fit this network")
            state.setdefault(params[name], {})[slot] = value
    for p, slots in state.items():
        opt.state[p] = slots
    try:
        gen.set_state(tensors["rng.data"])
    except RuntimeError as err:
        raise CheckpointError(f"its data generator state is not one torch accepts ({err})") from None


def _finite(model: nn.Module, loss: torch.Tensor) -> bool:
    return bool(torch.isfinite(loss)) and all(bool(torch.isfinite(p).all()) for p in model.parameters())


def train(
    cfg: TrainConfig,
    batch: Callable[[torch.Generator, int], tuple[torch.Tensor, list[torch.Tensor]]],
    out_dir: str | Path | None = None,
    resume: bool = False,
    embedding: torch.Tensor | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[TrainedMLP, TrainState]:
    """Train with AdamW; checkpoint to ``out_dir`` every ``checkpoint_every`` steps; with
    ``resume`` continue from the checkpoint there. ``stop_after`` ends the run after that step
    as an interruption would (the model is not saved as final)."""
    model = TrainedMLP(cfg, embedding)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    state = TrainState()
    ckpt = Path(out_dir) / "checkpoint.safetensors" if out_dir is not None else None
    if resume:
        if ckpt is None or not ckpt.is_file():
            raise FileNotFoundError(f"nothing to resume: no checkpoint in {out_dir}")
        tensors, meta = load_weights(ckpt)
        if meta.get("kind") != "trained-mlp" or not {"step", "history", "seconds", "stopped_early"} <= meta.keys():
            raise CheckpointError(f"{ckpt} is not a training checkpoint")
        saved = dict(meta.get("train_config", {}))
        now = cfg.to_dict()
        differ = [k for k in dict.fromkeys([*saved, *now]) if k not in RESUMABLE and saved.get(k) != now.get(k)]
        if differ:
            said = ", ".join(f"{k}={saved.get(k)!r} there, {now.get(k)!r} now" for k in differ[:3])
            raise CheckpointError(f"{ckpt} was trained with other settings ({said}); resume with the same ones "
                                  f"(only {', '.join(RESUMABLE)} may change)")
        try:
            _unpack(tensors, model, opt, gen)
        except CheckpointError as err:
            raise CheckpointError(f"{ckpt} cannot be resumed: {err}") from None
        state = TrainState(meta["step"], meta["history"], meta["seconds"], meta["stopped_early"])
        # more steps, or other early-stop settings, ask for more training: the stop is lifted
        if any(saved.get(k) != getattr(cfg, k) for k in ("steps", "target_accuracy", "patience")):
            state.stopped_early = False
            state.history = [dict(h, restart=True) if i == len(state.history) - 1 else h
                             for i, h in enumerate(state.history)]
    bar = tqdm(total=cfg.steps, initial=state.step, disable=not progress, desc="training", leave=False)
    streak = _tail_streak(state.history, cfg.target_accuracy)
    start = time.perf_counter() - state.seconds
    saved_step = state.step if resume else None  # the step the checkpoint on disk holds

    def checkpoint() -> None:
        nonlocal saved_step
        assert ckpt is not None  # only called with an out_dir
        state.seconds = time.perf_counter() - start
        save_weights(ckpt, _pack(model, opt, gen), _meta(cfg, state))
        saved_step = state.step

    while state.step < cfg.steps and not state.stopped_early:
        x, targets = batch(gen, cfg.batch)
        logits = model(x)
        loss = _loss(cfg, logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state.step += 1
        bar.update(1)
        if not _finite(model, loss.detach()):
            bar.close()
            kept = f"; the checkpoint of step {saved_step} is kept" if ckpt is not None and saved_step else ""
            raise TrainingDiverged(f"training diverged at step {state.step}: the loss or the weights are no longer "
                                   f"finite ({_divergence_hint(cfg)}){kept}")
        if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
            acc = _accuracy([lg.detach() for lg in logits], targets)
            state.history.append({"step": state.step, "loss": float(loss.detach()), "accuracy": acc})
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", acc=f"{min(acc):.4f}")
            streak = streak + 1 if min(acc) >= cfg.target_accuracy else 0
            state.stopped_early = streak >= cfg.patience
        if ckpt is not None and (state.step % cfg.checkpoint_every == 0 or state.stopped_early):
            checkpoint()
        if stop_after is not None and state.step >= stop_after:
            bar.close()
            return model, state
    bar.close()
    state.seconds = time.perf_counter() - start
    if out_dir is not None:
        if saved_step != state.step:  # the final state always resumes as it is
            checkpoint()
        save_weights(Path(out_dir) / "model.safetensors",
                     {f"model.{k}": v for k, v in model.state_dict().items() if v is not None}, _meta(cfg, state))
    return model, state


def _divergence_hint(cfg: TrainConfig) -> str:
    """What to change. AdamW shrinks each weight by lr * weight_decay per step: past 1 that step
    alone flips and grows the weights, whatever the learning rate's own size."""
    if cfg.lr * cfg.weight_decay >= 1:
        return (f"weight_decay={cfg.weight_decay:g} with lr={cfg.lr:g} shrinks each weight by lr * weight_decay = "
                f"{cfg.lr * cfg.weight_decay:g} >= 1 per step; lower weight_decay")
    return f"lr={cfg.lr:g}; try a smaller one"


def _tail_streak(history: list[dict], target: float) -> int:
    """How many of the last evaluations in a row reached the target on every layer (counting
    from the last restart of a resumed run)."""
    count = 0
    for entry in reversed(history):
        if entry.get("restart") or min(entry["accuracy"]) < target:
            break
        count += 1
    return count


def _meta(cfg: TrainConfig, state: TrainState) -> dict:
    return {"kind": "trained-mlp", "train_config": cfg.to_dict(), "step": state.step, "history": state.history,
            "seconds": state.seconds, "stopped_early": state.stopped_early}


def load_trained(path: str | Path) -> tuple[TrainedMLP, dict]:
    """A model saved by ``train`` (model.safetensors or a checkpoint), with its metadata."""
    tensors, meta = load_weights(path)
    if meta.get("kind") != "trained-mlp" or "train_config" not in meta:
        raise WeightFileError(f"{path} holds no trained network")
    try:
        raw = dict(meta["train_config"])
        raw["widths"] = tuple(raw["widths"])
        cfg = TrainConfig(**raw)
    except (TypeError, KeyError, ValueError) as err:
        raise WeightFileError(f"{path}: its training config is not one this superposim knows ({err})") from None
    model = TrainedMLP(cfg)
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError as err:
        raise WeightFileError(f"{path}: the weights do not fit the network its config describes ({err})") from None
    return model, meta
