"""A plain stack of ReLU blocks with named hook points at every site.

Stream t is the vector the network carries between blocks (stream 0 is the embedded input).
Block t reads stream t, computes its neurons and writes stream t + 1:

    pre  = stream_t @ read.T + bias
    post = ReLU(pre) on ReLU neurons, pre on linear neurons
    stream_{t+1} = post @ write.T  (+ stream_t if the block is residual)

Weights are dense, CSR or None (the identity); a tensor given as ``nn.Parameter`` is trained.
A read may add a low-rank part, read = stored + left @ right, for weights that are sparse but
for a few dense directions (the capped weights of circuits in superposition).
"""

from __future__ import annotations

import torch
from torch import nn

from layers.hook_points import HookPoint
from layers.matrices import nonzeros, shape, times_transpose, to_dense


def _keep(module: nn.Module, name: str, value: torch.Tensor | None) -> None:
    if isinstance(value, nn.Parameter):
        module.register_parameter(name, value)
    else:
        module.register_buffer(name, value)


class ReLUBlock(nn.Module):
    """One layer of neurons between two streams, with hook points ``hook_pre``,
    ``hook_post`` and ``hook_out``."""

    def __init__(
        self,
        read: torch.Tensor | None,
        bias: torch.Tensor,
        write: torch.Tensor | None,
        relu_mask: torch.Tensor | None = None,
        residual: bool = False,
        n_in: int | None = None,
        n_out: int | None = None,
        read_low_rank: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        hidden = bias.shape[0]
        # None is the identity: it needs as many neurons as stream dimensions
        read_out, self.n_in = shape(read, n_in if n_in is not None else hidden)
        self.n_out, write_in = shape(write, n_out if n_out is not None else hidden)
        self.hidden = hidden
        if read_out != hidden:
            raise ValueError(f"read has {read_out} rows but there are {hidden} neurons")
        if write_in != hidden:
            raise ValueError(f"write has {write_in} columns but there are {hidden} neurons")
        if residual and self.n_in != self.n_out:
            raise ValueError("a residual block needs equal input and output widths")
        left, right = read_low_rank if read_low_rank is not None else (None, None)
        if left is not None and (left.shape[0] != hidden or right.shape != (left.shape[1], self.n_in)):
            raise ValueError(f"the low-rank read needs left ({hidden}, r) and right (r, {self.n_in}), "
                             f"got {tuple(left.shape)}, {tuple(right.shape)}")
        _keep(self, "read", read)
        _keep(self, "read_left", left)
        _keep(self, "read_right", right)
        _keep(self, "bias", bias)
        _keep(self, "write", write)
        mask = torch.ones(hidden, dtype=torch.bool) if relu_mask is None else relu_mask.bool()
        self.register_buffer("relu_mask", mask)
        self.all_relu = bool(mask.all())
        self.all_linear = not bool(mask.any())
        self.residual = residual
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()
        self.hook_out = HookPoint()

    def forward(self, stream: torch.Tensor) -> torch.Tensor:
        pre = times_transpose(stream, self.read) + self.bias
        if self.read_left is not None:
            pre = pre + (stream @ self.read_right.T) @ self.read_left.T
        pre = self.hook_pre(pre)
        if self.all_relu:
            post = torch.relu(pre)
        elif self.all_linear:
            post = pre
        else:
            post = torch.where(self.relu_mask, torch.relu(pre), pre)
        post = self.hook_post(post)
        out = times_transpose(post, self.write)
        if self.residual:
            out = out + stream
        return self.hook_out(out)

    def dense_read(self) -> torch.Tensor:
        """The (hidden, n_in) read weight as one dense matrix, low-rank part included."""
        read = to_dense(self.read, self.hidden)
        return read if self.read_left is None else read + self.read_left @ self.read_right

    def parameter_count(self) -> int:
        """Weights and biases a dense layer of this shape holds (an identity read or write is
        wiring, not parameters)."""
        read = 0 if self.read is None else self.n_in * self.hidden
        write = 0 if self.write is None else self.hidden * self.n_out
        return read + self.hidden + write

    def nonzero_parameters(self) -> int:
        """Weights and biases that are not zero (the identity counts its diagonal)."""
        return (
            self._read_nonzeros()
            + int(self.bias.count_nonzero())
            + nonzeros(self.write, self.hidden)
        )

    def _read_nonzeros(self) -> int:
        if self.read_left is None:
            return nonzeros(self.read, self.hidden)
        # entries the low-rank part reaches count as non-zero (a stored entry cancelling one
        # exactly is not looked for), and stored entries outside them; rows in chunks
        left, right = (self.read_left != 0).float(), (self.read_right != 0).float()
        reached = sum(int((left[a : a + 1024] @ right > 0).sum()) for a in range(0, self.hidden, 1024))
        stored = self.read.to_sparse_coo().coalesce() if self.read.layout != torch.strided else self.read.to_sparse()
        idx, vals = stored.indices(), stored.values()
        out_row, in_col = (idx[1], idx[0]) if self.read.layout == torch.sparse_csr else (idx[0], idx[1])
        outside = 0
        for a in range(0, vals.numel(), 2**20):  # chunks of stored entries: (chunk, rank) at a time
            rows, cols = out_row[a : a + 2**20], in_col[a : a + 2**20]
            hit = (left[rows] * right[:, cols].T).sum(dim=1) > 0
            outside += int((~hit & (vals[a : a + 2**20] != 0)).sum())
        return reached + outside


class Network(nn.Module):
    """Input embedding followed by ReLU blocks; hook points ``hook_embed`` and
    ``blocks.{t}.hook_{pre,post,out}``."""

    def __init__(
        self, embed: torch.Tensor | None, blocks: list[ReLUBlock], n_inputs: int
    ) -> None:
        super().__init__()
        _keep(self, "embed", embed)
        self.n_inputs = n_inputs
        self.blocks = nn.ModuleList(blocks)
        self.hook_embed = HookPoint()
        widths = [shape(embed, n_inputs)[0]]
        for t, block in enumerate(blocks):
            if block.n_in != widths[-1]:
                raise ValueError(
                    f"block {t} reads a stream of width {block.n_in}, but the stream has {widths[-1]}"
                )
            widths.append(block.n_out)
        self.stream_widths = widths
        self.embed_shape = shape(embed, n_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.streams(x)[-1]

    def streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stream, from the embedded input (stream 0) to the last block's output."""
        if x.dim() != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"expected inputs of shape (batch, {self.n_inputs}), got {tuple(x.shape)}")
        stream = self.hook_embed(self._embed(x))
        out = [stream]
        for block in self.blocks:
            stream = block(stream)
            out.append(stream)
        return out

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """x @ embed.T; for sparse inputs (few non-zeros per row) by gathering the embedding's
        columns of the non-zero inputs rather than by a dense product."""
        if self.embed is None or self.embed.layout != torch.strided or x.shape[1] < 64:
            return times_transpose(x, self.embed)
        rows, cols = torch.nonzero(x, as_tuple=True)
        if rows.numel() > x.numel() // 32:  # not sparse enough for gathering to pay
            return times_transpose(x, self.embed)
        columns = self.embed.index_select(1, cols).T * x[rows, cols][:, None]  # (non-zeros, n)
        return torch.zeros(x.shape[0], self.embed.shape[0], dtype=columns.dtype,
                           device=x.device).index_add_(0, rows, columns)

    def neurons(self) -> list[int]:
        return [block.hidden for block in self.blocks]

    def parameter_count(self) -> int:
        embed = 0 if self.embed is None else self.embed_shape[0] * self.embed_shape[1]
        return embed + sum(block.parameter_count() for block in self.blocks)
