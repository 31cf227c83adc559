"""Every network a scenario builds is placed on the run's device, and placing a network moves
every tensor it carries: constructions register what they hold, nothing rides beside them."""

import pytest
import torch
from conftest import gen
from test_pins import SMALL

from circuits.block import block_circuits, compile_block
from circuits.cis import compile_cis, small_circuits
from circuits.cis2025 import build_cis2025, compile_boolean_cis2025, dedicated_network
from circuits.compile import CompiledNetwork, compile_dedicated, compile_superposed
from circuits.generators import copy_relay, random_circuit
from circuits.small import SmallCircuits, rotation_circuits
from circuits.spec import Circuit, Gate
from circuits.uand import compile_uand, compile_uand_stack
from layers.network import Network
from scenarios.engine.catalog import BUILTIN
from scenarios.engine.registry import Context


def _tensors(obj, seen=None):
    """Every tensor reachable from a module: registered ones and any plain attribute (a tensor,
    or a list, tuple or dict of them) that ``.to`` would not move. The circuits a network computes
    (``Circuit``, ``SmallCircuits``) are its specification, not its weights: they stay where they
    were made and evaluate on the device of their inputs."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (Circuit, SmallCircuits)):
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, torch.nn.Module):
        yield from (t for t in [*obj.parameters(recurse=False), *obj.buffers(recurse=False)] if t is not None)
        for value in vars(obj).values():
            if not isinstance(value, dict) or value is not obj._modules:
                yield from _tensors(value, seen)
        for child in obj.children():
            yield from _tensors(child, seen)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item, seen)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item, seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        yield from _tensors(vars(obj), seen)


def _constructions():
    circuit = random_circuit(30, 2, 12, 2, ["AND", "OR"], gen(0))
    and_layer = Circuit(40, [[Gate("AND", (0, 1)), Gate("OR", (2, 3))]])
    smalls = small_circuits(6, 2, 2, gen(1))
    bools = [random_circuit(3, 2, 3, 2, ["AND", "BUF", "NOT"], gen(2 + i)) for i in range(6)]
    small = rotation_circuits(12, 2, gen(3))
    return {
        "dedicated": compile_dedicated(circuit),
        "superposed": compile_superposed(circuit, 16, "random", "threshold", gen(4)),
        "u-and": compile_uand(and_layer, 60, 0.2, 20, gen(5)),
        "u-and stack": compile_uand_stack(copy_relay(10, 2, gen(6)), 80, 0.2, "cleanup", gen(7)),
        "cis 2024": compile_cis(smalls, 60, 2, gen(8)),
        "cis 2025": compile_boolean_cis2025(bools, 120, 2, "capped", gen(9)),
        "cis 2025 network": build_cis2025(small, 120, 3, "capped", gen(10)),
        "cis 2025 twin": dedicated_network(small),
        "block": compile_block(block_circuits(12, 3, 2, gen(11)), 12),
    }


@pytest.mark.parametrize("name", list(_constructions()))
def test_moving_a_construction_moves_every_tensor_it_carries(name):
    net = _constructions()[name].to("meta")
    found = list(_tensors(net))
    assert found and all(t.device.type == "meta" for t in found), name


def test_every_network_a_scenario_builds_is_placed_on_the_runs_device(monkeypatch):
    import scenarios

    built, placed = [], []
    for cls in (CompiledNetwork, Network):
        original = cls.__init__

        def record(self, *args, _original=original, **kwargs):
            _original(self, *args, **kwargs)
            built.append(self)

        monkeypatch.setattr(cls, "__init__", record)
    place = Context.place
    monkeypatch.setattr(Context, "place", lambda self, net: placed.append(net) or place(self, net))
    for name in BUILTIN:
        built.clear()
        placed.clear()
        scenarios.run(name, seed=0, **SMALL[name])
        inside = {id(m) for net in placed for m in net.modules()}
        loose = [net for net in built if id(net) not in inside]
        assert not loose, f"{name}: {len(loose)} of {len(built)} networks never placed ({type(loose[0]).__name__})"
