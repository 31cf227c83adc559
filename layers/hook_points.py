"""Named hook points and hooks scoped to a ``with`` block (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

HookFn = Callable[[torch.Tensor, str], torch.Tensor | None]


class HookPoint(nn.Module):
    """Identity module marking a site; hooks attached to it may read or replace the value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def hook_names(model: nn.Module) -> list[str]:
    """Every hook point of ``model`` by its dotted name."""
    return [name for name, mod in model.named_modules() if isinstance(mod, HookPoint)]


@contextmanager
def hooks(model: nn.Module, fns: Mapping[str, HookFn]) -> Iterator[None]:
    """Attach ``fns`` (hook name -> fn(value, name)) for the duration of the block.

    A hook that returns a tensor replaces the value at that site. Hooks are removed on exit,
    also when the block raises.
    """
    points = dict((name, mod) for name, mod in model.named_modules() if isinstance(mod, HookPoint))
    unknown = [name for name in fns if name not in points]
    if unknown:
        raise KeyError(f"unknown hook point {unknown[0]!r}; valid: {', '.join(points)}")
    handles = []
    try:
        for name, fn in fns.items():
            handles.append(
                points[name].register_forward_hook(
                    lambda _mod, _inp, out, fn=fn, name=name: fn(out, name)
                )
            )
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture(model: nn.Module, names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the value at each named hook point during the block."""
    store: dict[str, torch.Tensor] = {}

    def save(value: torch.Tensor, name: str) -> None:
        store[name] = value.detach()

    with hooks(model, {name: save for name in names}):
        yield store
