"""Neural building blocks in torch; nothing here knows about boolean logic.

Importing the package is cheap (``layers.errors`` needs no torch, so the command's help and its
errors answer at once); the parts that need torch load on first use."""

import importlib

_LAZY = {
    "EMBEDDINGS": "layers.embeddings",
    "Coherence": "layers.embeddings",
    "coherence": "layers.embeddings",
    "make_embedding": "layers.embeddings",
    "welch_bound": "layers.embeddings",
    "HookPoint": "layers.hook_points",
    "capture": "layers.hook_points",
    "hook_names": "layers.hook_points",
    "hooks": "layers.hook_points",
    "Dense": "layers.weights",
    "Identity": "layers.weights",
    "LowRankPlus": "layers.weights",
    "Sparse": "layers.weights",
    "Weight": "layers.weights",
    "compact": "layers.weights",
    "sparse_weight": "layers.weights",
    "Network": "layers.network",
    "ReLUBlock": "layers.network",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'layers' has no attribute {name!r}")
