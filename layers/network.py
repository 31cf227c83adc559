"""A plain stack of ReLU blocks with named hook points at every site.

Stream t is the vector the network carries between blocks (stream 0 is the embedded input).
Block t reads stream t, computes its neurons and writes stream t + 1:

    pre  = read(stream_t) + bias          (read(x) = x @ R.T, R of shape (hidden, n_t))
    post = ReLU(pre) on ReLU neurons, pre on linear neurons
    stream_{t+1} = write(post)  (+ stream_t if the block is residual)

Weights are ``layers.weights`` modules (dense, sparse, the identity, sparse plus low rank); a
bias given as ``nn.Parameter`` is trained, as a weight's matrix is.
"""

from __future__ import annotations

import torch
from torch import nn

from layers.hook_points import HookPoint
from layers.weights import Identity, Weight, _keep


class ReLUBlock(nn.Module):
    """One layer of neurons between two streams, with hook points ``hook_pre``,
    ``hook_post`` and ``hook_out``. Shapes: read (hidden, n_in), bias and relu_mask (hidden,),
    write (n_out, hidden)."""

    read: Weight
    write: Weight
    bias: torch.Tensor
    relu_mask: torch.Tensor

    def __init__(
        self,
        read: Weight,
        bias: torch.Tensor,
        write: Weight,
        relu_mask: torch.Tensor | None = None,
        residual: bool = False,
    ) -> None:
        super().__init__()
        hidden = bias.shape[0]
        read_out, self.n_in = read.shape
        self.n_out, write_in = write.shape
        self.hidden = hidden
        if read_out != hidden:
            raise ValueError(f"read has {read_out} rows but there are {hidden} neurons")
        if write_in != hidden:
            raise ValueError(f"write has {write_in} columns but there are {hidden} neurons")
        if residual and self.n_in != self.n_out:
            raise ValueError("a residual block needs equal input and output widths")
        self.read = read
        self.write = write
        _keep(self, "bias", bias)
        mask = torch.ones(hidden, dtype=torch.bool) if relu_mask is None else relu_mask.bool()
        self.register_buffer("relu_mask", mask)
        self.all_relu = bool(mask.all())
        self.all_linear = not bool(mask.any())
        self.residual = residual
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()
        self.hook_out = HookPoint()

    def forward(self, stream: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.read(stream) + self.bias)
        if self.all_relu:
            post = torch.relu(pre)
        elif self.all_linear:
            post = pre
        else:
            post = torch.where(self.relu_mask, torch.relu(pre), pre)
        post = self.hook_post(post)
        out = self.write(post)
        if self.residual:
            out = out + stream
        return self.hook_out(out)

    def parameter_count(self) -> int:
        """Weights and biases a dense layer of this shape holds (an identity read or write is
        wiring, not parameters)."""
        return self.read.parameter_count() + self.hidden + self.write.parameter_count()

    def nonzero_parameters(self) -> int:
        """Weights and biases that are not zero (the identity counts its diagonal)."""
        return self.read.nonzeros() + int(self.bias.count_nonzero()) + self.write.nonzeros()


class Network(nn.Module):
    """Input embedding followed by ReLU blocks; hook points ``hook_embed`` and
    ``blocks.{t}.hook_{pre,post,out}``. Shapes: inputs (batch, n_inputs), stream t
    (batch, stream_widths[t])."""

    embed: Weight

    def __init__(self, embed: Weight, blocks: list[ReLUBlock]) -> None:
        super().__init__()
        self.embed = embed
        self.n_inputs = embed.shape[1]
        self.blocks = nn.ModuleList(blocks)
        self.hook_embed = HookPoint()
        widths = [embed.shape[0]]
        for t, block in enumerate(blocks):
            if block.n_in != widths[-1]:
                raise ValueError(
                    f"block {t} reads a stream of width {block.n_in}, but the stream has {widths[-1]}"
                )
            widths.append(block.n_out)
        self.stream_widths = widths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.streams(x)[-1]

    def streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stream, from the embedded input (stream 0) to the last block's output."""
        if x.dim() != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"expected inputs of shape (batch, {self.n_inputs}), got {tuple(x.shape)}")
        # inputs are sparse (few features on): the embedding gathers their columns
        stream = self.hook_embed(self.embed.apply_to_sparse(x))
        out = [stream]
        for block in self.blocks:
            stream = block(stream)
            out.append(stream)
        return out

    def relu_blocks(self) -> list[ReLUBlock]:
        """The blocks, typed (a ModuleList yields plain modules)."""
        return [block for block in self.blocks if isinstance(block, ReLUBlock)]

    def neurons(self) -> list[int]:
        return [block.hidden for block in self.relu_blocks()]

    def parameter_count(self) -> int:
        return self.embed.parameter_count() + sum(block.parameter_count() for block in self.relu_blocks())

    def nonzero_parameters(self) -> int:
        """Non-zero weights and biases; an identity embedding is wiring and counts none."""
        embed = 0 if isinstance(self.embed, Identity) else self.embed.nonzeros()
        return embed + sum(block.nonzero_parameters() for block in self.relu_blocks())
