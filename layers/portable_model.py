"""A network exported by superposim, loaded with torch and safetensors alone.

This file is copied as ``model.py`` beside ``model.safetensors`` and ``config.json``;
``load(folder)`` returns a plain ``torch.nn.Module``:

    model = load("exported/")
    streams = model.streams(x)      # stream 0 = embedded input, stream t + 1 = block t's output
    features = model.features(x)    # every layer's features, as the network's read-outs give them

Block t computes ``pre = stream_t @ read.T + bias``, ``post = ReLU(pre)`` on ReLU neurons (``pre``
on linear ones), ``stream_{t+1} = post @ write.T (+ stream_t when residual)``. A weight is stored
dense (``KEY.matrix``), sparse (``KEY.rows``, ``KEY.cols``, ``KEY.values``), as the identity (no
tensor) or as a base plus a low-rank part (``KEY.base...``, ``KEY.left``, ``KEY.right``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

SCHEMA, VERSION = "superposim-model", 1


class Weight(torch.nn.Module):
    """An (out, in) matrix W in its stored form; ``weight(x)`` is x @ W.T."""

    matrix: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor

    def __init__(self, spec: dict, tensors: dict, key: str) -> None:
        super().__init__()
        self.form, self.shape = spec["form"], tuple(spec["shape"])
        if self.form == "dense":
            self.register_buffer("matrix", tensors[f"{key}.matrix"])
        elif self.form == "sparse":
            index = torch.stack([tensors[f"{key}.rows"], tensors[f"{key}.cols"]])
            self.register_buffer("matrix", torch.sparse_coo_tensor(index, tensors[f"{key}.values"],
                                                                   self.shape).coalesce())
        elif self.form == "low-rank-plus":
            self.base = Weight(spec["base"], tensors, f"{key}.base")
            self.register_buffer("left", tensors[f"{key}.left"])
            self.register_buffer("right", tensors[f"{key}.right"])
        elif self.form != "identity":
            raise ValueError(f"unknown weight form {self.form!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "identity":
            return x
        if self.form == "dense":
            return x @ self.matrix.T
        if self.form == "sparse":
            return torch.sparse.mm(self.matrix, x.T).T
        return self.base(x) + (x @ self.right.T) @ self.left.T


class Block(torch.nn.Module):
    bias: torch.Tensor
    relu: torch.Tensor

    def __init__(self, spec: dict, tensors: dict, key: str) -> None:
        super().__init__()
        self.read = Weight(spec["read"], tensors, f"{key}.read")
        self.write = Weight(spec["write"], tensors, f"{key}.write")
        self.register_buffer("bias", tensors[f"{key}.bias"])
        self.register_buffer("relu", tensors[f"{key}.relu"].bool())
        self.residual = bool(spec["residual"])

    def forward(self, stream: torch.Tensor) -> torch.Tensor:
        pre = self.read(stream) + self.bias
        post = torch.where(self.relu, torch.relu(pre), pre)
        out = self.write(post)
        return out + stream if self.residual else out


class Model(torch.nn.Module):
    def __init__(self, config: dict, tensors: dict) -> None:
        super().__init__()
        self.embed = Weight(config["embed"], tensors, "embed")
        self.blocks = torch.nn.ModuleList(Block(b, tensors, f"blocks.{t}") for t, b in enumerate(config["blocks"]))
        self.readouts = torch.nn.ModuleList(Weight(r["weight"], tensors, f"readouts.{t}")
                                            for t, r in enumerate(config["readouts"]))
        self.readout_streams = [int(r["stream"]) for r in config["readouts"]]
        for t in range(len(config["readouts"])):
            self.register_buffer(f"readout_bias_{t}", tensors.get(f"readouts.{t}.bias"))

    def streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [self.embed(x)]
        for block in self.blocks:
            out.append(block(out[-1]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.streams(x)[-1]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        streams = self.streams(x)
        reads = []
        for t, (s, readout) in enumerate(zip(self.readout_streams, self.readouts)):
            bias = getattr(self, f"readout_bias_{t}")
            read = readout(streams[s])
            reads.append(read if bias is None else read + bias)
        return reads


def load(folder: str | Path) -> Model:
    """The exported network in ``folder`` (model.safetensors and config.json)."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    if config.get("schema") != SCHEMA or config.get("version") != VERSION:
        raise ValueError(f"{folder}: not a superposim model of schema {SCHEMA!r} version {VERSION}")
    return Model(config, load_file(folder / "model.safetensors")).eval()
