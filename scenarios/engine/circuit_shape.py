"""The parameter group of one random layered circuit compiled superposed and dedicated: its
shape, sparsity, embedding and clean-up, the check of their combinations, and the networks.
Scenarios that run such a circuit (``circuit``, ``trained-vs-handbuilt``, ``train``) share it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scenarios.engine.registry import Context

from circuits.compile import CLEANUPS, compile_dedicated, compile_superposed
from circuits.gates import GATES, fan_in_of
from circuits.generators import random_circuit
from layers import EMBEDDINGS
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require

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


def check(p: Values) -> None:
    require(p.active <= p.m, f"active: must be <= m={p.m}, got {p.active}")
    need = max(fan_in_of(g, p.fan_in) for g in p.gates)  # the widest gate drawn
    require(need <= p.m, f"fan_in: gates of {need} inputs need m >= {need} (the inputs), got m={p.m}")
    require(p.layers == 1 or need <= p.width,
            f"fan_in: gates of {need} inputs need width >= {need} (the previous layer), got width={p.width}")
    if p.embedding == "identity":
        need = max(p.m, p.width)
        require(p.n >= need,
                f"n: the identity embedding needs n >= {need} (one direction per feature), got {p.n}")
    features = p.m + p.layers * p.width
    need = FLOAT * (3 * features * p.n + 4 * p.layers * p.width * p.n + 4 * 4096 * features)
    require_memory(need, f"m={p.m}, width={p.width}, layers={p.layers}, n={p.n}: "
                         "the feature directions and the traced batches")


def networks(p: Values, ctx: Context) -> dict:
    circuit = random_circuit(p.m, p.layers, p.width, p.fan_in,
                             [g.upper() for g in p.gates], ctx.generator("circuit"), ctx.draws)
    return {
        "superposed": ctx.place(compile_superposed(circuit, p.n, p.embedding, p.cleanup,
                                                   ctx.generator("embedding"), ctx.draws)),
        "dedicated": ctx.place(compile_dedicated(circuit)),
    }
