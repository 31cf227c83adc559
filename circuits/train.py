"""Training networks on circuits, and linear probes that read a trained network's features.

The data are the circuit's exact values on sampled sparse inputs; the probes make a trained
network a CompiledNetwork like the hand-built ones (read-outs = probe directions), so the noise
tracer and the feature graph work on it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from circuits.compile import CompiledNetwork
from circuits.evaluate import Evaluator
from circuits.spec import Circuit
from layers.training import TrainConfig, TrainedMLP, TrainState, train
from layers.weights import Dense


def circuit_batches(circuit: Circuit, active: int) -> Callable[[torch.Generator, int], tuple]:
    """batch(generator, size) -> (inputs, targets of layers 1..L) with exactly ``active`` inputs on."""
    evaluator = Evaluator(circuit)
    m = circuit.n_inputs

    def batch(gen: torch.Generator, size: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = torch.zeros(size, m)
        if active:
            x.scatter_(1, torch.rand(size, m, generator=gen).topk(active, dim=1).indices, 1.0)
        return x, evaluator(x)[1:]

    return batch


def train_on_circuit(
    circuit: Circuit,
    cfg: TrainConfig,
    active: int,
    embedding: torch.Tensor | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[TrainedMLP, TrainState]:
    if tuple(circuit.widths[1:]) != cfg.widths or circuit.n_inputs != cfg.m:
        raise ValueError(f"the config's widths {cfg.widths} do not match the circuit's {circuit.widths}")
    return train(cfg, circuit_batches(circuit, active), out_dir, resume, embedding, progress, stop_after)


@torch.no_grad()
def fit_probes(
    model: TrainedMLP, circuit: Circuit, active: int, samples: int, seed: int, ridge: float = 1e-4
) -> CompiledNetwork:
    """Per layer, a least-squares linear read-out (with intercept) of every gate's exact value
    from the stream, fitted on ``samples`` held-out inputs (drawn with their own seed)."""
    gen = torch.Generator().manual_seed(seed)
    x, targets = circuit_batches(circuit, active)(gen, samples)
    truths = [x] + targets
    weights, biases = [], []
    for s, y in zip(model.network.streams(x), truths):
        design = torch.cat([s, torch.ones(s.shape[0], 1)], dim=1).double()
        gram = design.T @ design + ridge * samples * torch.eye(design.shape[1], dtype=torch.float64)
        coef = torch.linalg.solve(gram, design.T @ y.double())  # (n + 1, m_t)
        weights.append(Dense(coef[:-1].T.float().contiguous()))
        biases.append(coef[-1].float())
    return CompiledNetwork("trained", circuit, model.network, weights, readout_bias=biases)
