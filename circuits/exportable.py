"""What an export needs of a network, in one record: the plain network and its read-outs, the
directions its features are written along, a seeded input sampler, the exact value of every
feature for an input, and the true mechanism (``circuits.mechanism``) when it is known."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from circuits.block import BlockNetwork
from circuits.cis import CiS2024Network
from circuits.cis2025 import CiS2025, CiS2025Network
from circuits.compile import CompiledNetwork
from circuits.evaluate import Evaluator
from circuits.mechanism import Family, MatrixTruth, Mechanism, activity, by_rows, cis2025_blocks, mechanism
from circuits.spec import Circuit
from layers.network import Network
from layers.weights import Identity, Weight


@dataclass
class ExportView:
    """A network ready to export. ``readouts[t]`` = (stream it reads, weight, bias) of layer t;
    ``sample(batch, generator)`` draws inputs; ``exact(x)`` gives every layer's exact values;
    ``needed(values)`` the components each input needs ({} when the mechanism is unknown)."""

    name: str
    network: Network
    readouts: list[tuple[int, Weight, torch.Tensor | None]]
    carriers: list[Weight]
    sample: Callable[[int, torch.Generator], torch.Tensor]
    exact: Callable[[torch.Tensor], list[torch.Tensor]]
    mechanism: Mechanism | None
    needed: Callable[[list[torch.Tensor]], dict[str, torch.Tensor]]
    sampler: dict  # how ``sample`` draws, for truth.json
    unknown: str = ""  # why the mechanism is not known, when it is not

    @property
    def readout_weights(self) -> list[Weight]:
        return [w for _, w, _ in self.readouts]


def active_features(m: int, active: int) -> Callable[[int, torch.Generator], torch.Tensor]:
    """Inputs with exactly ``active`` of m features on (value 1), uniformly."""
    def sample(batch: int, generator: torch.Generator) -> torch.Tensor:
        x = torch.zeros(batch, m)
        if active:
            x.scatter_(1, torch.rand(batch, m, generator=generator).topk(active, dim=1).indices, 1.0)
        return x
    return sample


def active_circuits(T: int, width: int, z: int) -> Callable[[int, torch.Generator], torch.Tensor]:
    """Inputs of T small circuits of ``width`` features (the last their on-indicator): z circuits
    on, their other features random bits, every other circuit all 0."""
    def sample(batch: int, generator: torch.Generator) -> torch.Tensor:
        on = torch.zeros(batch, T, dtype=torch.bool)
        on.scatter_(1, torch.rand(batch, T, generator=generator).topk(z, dim=1).indices, True)
        bits = (torch.rand(batch, T, width, generator=generator) < 0.5).float()
        bits[:, :, width - 1] = 1.0
        return (bits * on[:, :, None]).reshape(batch, -1)
    return sample


def _circuit_blocks(net: CompiledNetwork) -> int | None:
    """Features per small circuit when ``net`` carries circuits side by side, else None."""
    if isinstance(net, CiS2025Network):
        return net.circuit.n_inputs // net.cis.small.T
    if isinstance(net, CiS2024Network):
        return net.d + 1
    if isinstance(net, BlockNetwork):
        return net.circuit.n_inputs // (net.block_count ** 2)
    return None


def view_of(net: CompiledNetwork, active: int) -> ExportView:
    """A compiled (or probed trained) network as an export: ``active`` input features on, or
    ``active`` small circuits on where the network carries small circuits."""
    circuit: Circuit = net.circuit
    width = _circuit_blocks(net)
    if width is None:
        sample = active_features(circuit.n_inputs, active)
        sampler = {"kind": "active-features", "m": circuit.n_inputs, "active": active}
    else:
        T = circuit.n_inputs // width
        sample = active_circuits(T, width, active)
        sampler = {"kind": "active-circuits", "circuits": T, "features_per_circuit": width, "active": active}
    evaluator = Evaluator(circuit)
    mech = mechanism(net)
    readouts = [(s, w, b) for s, w, b in zip(net.stream_of_layer, net.readouts, net.readout_bias)]

    def needed(values: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {} if mech is None else activity(mech, circuit, values)

    unknown = "" if mech is not None else (
        "trained: its weights are whatever training found; no component is known by construction")
    return ExportView(net.name, net.network, readouts, list(net.carriers), sample, evaluator, mech, needed,
                      sampler, unknown)


def view_of_cis2025(cis: CiS2025, z: int, sample_a0: Callable[[int, int, torch.Generator], torch.Tensor],
                    sampler: dict) -> ExportView:
    """The 2025 construction on its own small circuits (continuous values): layer l's features
    are every circuit's d small neurons (T d), read by (1/S) <e^l_t|; z circuits active, their
    inputs a0 from ``sample_a0(batch, z, generator)`` (batch, z, d)."""
    small, T, d = cis.small, cis.small.T, cis.small.d

    def draw(batch: int, generator: torch.Generator) -> torch.Tensor:
        which = torch.rand(batch, T, generator=generator).topk(z, dim=1).indices
        return cis.inputs(which, sample_a0(batch, z, generator))

    def exact(x: torch.Tensor) -> list[torch.Tensor]:
        state = x.reshape(x.shape[0], T, d)
        on = state.abs().sum(dim=2) > 0  # an inactive circuit's input is 0
        out = [x]
        for layer in range(small.L):
            w = small.weights[layer].to(x.dtype)
            nxt = torch.relu(torch.einsum("tij,btj->bti", w, state) + small.bias[layer])
            state = nxt * on[:, :, None]  # an inactive circuit computes exactly 0
            out.append(state.reshape(x.shape[0], -1))
        return out

    on_index = torch.arange(T) * d
    blocks, wiring = cis2025_blocks(cis, on_index)
    readouts: list[tuple[int, Weight, torch.Tensor | None]] = [(0, Identity(T * d), None)]
    readouts += [(layer, cis.readout(layer), None) for layer in range(1, small.L + 1)]
    for layer, (_, weight, _) in enumerate(readouts[1:], start=1):  # each feature's read-out row
        blocks.append(MatrixTruth(f"readouts.{layer}", weight.shape, [Family(
            "features", "feature", layer, "value", by_rows(weight, torch.arange(T * d), T * d))]))
    mech = Mechanism(blocks, ["embed"] + wiring + ["readouts.0"])
    carriers = [w for _, w, _ in readouts]

    def needed(values: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        on = values[0][:, on_index] != 0
        return {f"{m.key}/{f.name}": on if f.rule == "circuit" else values[f.layer] != 0
                for m in mech.matrices for f in m.families}

    return ExportView(f"cis2025(T={T}, D={cis.D}, S={cis.S}, {cis.form})", cis.network, readouts, carriers, draw,
                      exact, mech, needed, sampler | {"circuits": T, "active": z})
