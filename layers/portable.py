"""A network as plain layers on disk, for code that has never heard of superposim.

``model_files`` turns a ``Network`` and its read-outs into the tensors of ``model.safetensors``
and the ``config.json`` that ``layers/portable_model.py`` (copied beside them as ``model.py``)
reads back with torch and safetensors alone. Every weight keeps its form (dense, sparse, the
identity, a base plus a low-rank part), so a sparse network is exported at the size it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from layers.network import Network
from layers.pattern_blocks import PatternBlocks
from layers.weights import Dense, Identity, LowRankPlus, Sparse, Weight

MODEL_SCHEMA, MODEL_VERSION = "superposim-model", 1
MODEL_SOURCE = Path(__file__).with_name("portable_model.py")


def weight_spec(weight: Weight, key: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """A weight's form and shape for config.json, and its tensors under ``key``."""
    shape = list(weight.shape)
    if isinstance(weight, Identity):
        return {"form": "identity", "shape": shape}, {}
    if isinstance(weight, Dense):
        return {"form": "dense", "shape": shape}, {f"{key}.matrix": weight.matrix.detach()}
    if isinstance(weight, Sparse):
        rows, cols, values = weight.entries()
        return {"form": "sparse", "shape": shape}, {f"{key}.rows": rows, f"{key}.cols": cols, f"{key}.values": values}
    if isinstance(weight, PatternBlocks):  # kept in the stored form the portable model reads
        return weight_spec(weight.stored(), key)
    if isinstance(weight, LowRankPlus):
        base, tensors = weight_spec(weight.base, f"{key}.base")
        return ({"form": "low-rank-plus", "shape": shape, "base": base},
                tensors | {f"{key}.left": weight.left.detach(), f"{key}.right": weight.right.detach()})
    raise TypeError(f"no portable form for {type(weight).__name__}")


def model_files(network: Network, readouts: Sequence[tuple[int, Weight, torch.Tensor | None]],
                about: dict) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, tensors) of a network and its read-outs, each read-out given as (the stream it
    reads, its weight, its bias or None); ``about`` is kept in the config as it is."""
    embed, tensors = weight_spec(network.embed, "embed")
    blocks = []
    for t, block in enumerate(network.relu_blocks()):
        read, read_tensors = weight_spec(block.read, f"blocks.{t}.read")
        write, write_tensors = weight_spec(block.write, f"blocks.{t}.write")
        tensors |= read_tensors | write_tensors
        tensors[f"blocks.{t}.bias"] = block.bias.detach()
        tensors[f"blocks.{t}.relu"] = block.relu_mask.to(torch.uint8)
        blocks.append({"read": read, "write": write, "hidden": block.hidden, "residual": block.residual})
    reads = []
    for t, (stream, weight, bias) in enumerate(readouts):
        spec, weight_tensors = weight_spec(weight, f"readouts.{t}")
        tensors |= weight_tensors
        if bias is not None:
            tensors[f"readouts.{t}.bias"] = bias.detach()
        reads.append({"stream": stream, "weight": spec})
    config = {"schema": MODEL_SCHEMA, "version": MODEL_VERSION, "inputs": network.n_inputs,
              "stream_widths": list(network.stream_widths), "embed": embed, "blocks": blocks,
              "readouts": reads, **about}
    return config, {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
