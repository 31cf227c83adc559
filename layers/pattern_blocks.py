"""A weight made of T small blocks placed on S-hot neuron patterns, applied without ever storing
the (out, in) matrix: the form of the circuits-in-superposition layers at scale.

Neurons are group-major: neuron r of group i is index i n + r. Block t is a small (d_out, d_in)
matrix w_t written as w_t (x) |rows_t><cols_t| divided by ``divisor``: from the S neurons cols_t of
every input group to the S neurons rows_t of every output group. Without input patterns
(``cols=None``) the input is circuit-major, (T, d_in) values side by side, and block t reads its
own d_in inputs. An optional capped term adds mean (x) Wcal, Wcal = (1/S + chi) L - chi 1 1^T, with
L the 0/1 matrix of the neuron pairs some block links.

    W = (1/divisor) sum_t w_t (x) |rows_t><cols_t|  [+ mean (x) Wcal]

Applied on neuron-major values (n, batch d): a gather (the S input neurons of each block, summed,
as a 0/1 (T, n) CSR product), one batched (d_out, d_in) product per block, a scatter onto the S
output neurons (a (n, T) CSR product), and for the capped term one sparse (n, n) product with L:
O(T S d + T d^2 + k d + n d^2) per sample for k linked pairs, instead of O(D^2) dense or O(k d^2)
stored sparse. Samples go in chunks of about ``CHUNK_VALUES`` values. ``stored()`` gives the same
matrix as ``layers.weights`` stores it (memory O(T S^2 d^2): for exports and checks at sizes where
the stored form fits).
"""

from __future__ import annotations

import warnings

import torch

from layers.weights import LowRankPlus, Weight, sparse_weight

# Values per chunk of samples: (T or n, chunk, d) floats, about 64 MiB.
CHUNK_VALUES = 2**24


def _csr(rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The matrix counting the (rows, cols) pairs given (0/1 where they are distinct), in CSR form."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.ones(rows.numel()), shape, check_invariants=True)
        return coo.coalesce().to_sparse_csr()


class PatternBlocks(Weight):
    """W = (1/divisor) sum_t w_t (x) |rows_t><cols_t| [+ mean (x) ((1/S + chi) L - chi 1 1^T)].

    ``blocks`` (T, d_out, d_in); ``rows`` (T, S) neurons of each output group; ``cols`` (T, S)
    neurons of each input group, or None for a circuit-major input of T d_in values; ``n`` neurons
    per group; ``mean`` (d_out, d_in) and ``chi`` the capped term (both or neither)."""

    blocks: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor | None
    mean: torch.Tensor | None
    gather: torch.Tensor | None
    scatter: torch.Tensor
    linked: torch.Tensor | None

    def __init__(self, blocks: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor | None, n: int, divisor: int,
                 mean: torch.Tensor | None = None, chi: float = 0.0) -> None:
        super().__init__()
        T, d_out, d_in = blocks.shape
        S = rows.shape[1]
        if rows.shape[0] != T or (cols is not None and cols.shape != rows.shape):
            raise ValueError(f"patterns must be (T={T}, S), got rows {tuple(rows.shape)}"
                             f"{'' if cols is None else f', cols {tuple(cols.shape)}'}")
        if mean is not None and (cols is None or mean.shape != (d_out, d_in)):
            raise ValueError("the capped term needs input patterns and a (d_out, d_in) mean")
        self.n, self.divisor, self.chi = n, divisor, chi
        self.register_buffer("blocks", blocks)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)
        self.register_buffer("mean", mean)
        # gather-and-sum and scatter as 0/1 CSR matrices (T, n) and (n, T): sparse products over
        # neuron-major (n, batch d) values beat index_select / index_add_ several times
        circuit = torch.arange(T).repeat_interleave(S)
        self.register_buffer("gather", None if cols is None else _csr(circuit, cols.reshape(-1), (T, n)))
        self.register_buffer("scatter", _csr(rows.reshape(-1), circuit, (n, T)))
        linked = None
        if mean is not None and cols is not None:
            pairs = torch.unique((rows[:, :, None] * n + cols[:, None, :]).reshape(-1))
            linked = _csr(pairs // n, pairs % n, (n, n))
        self.register_buffer("linked", linked)

    @property
    def shape(self) -> tuple[int, int]:
        T, d_out, d_in = self.blocks.shape
        return d_out * self.n, d_in * (self.n if self.cols is not None else T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, d_out, d_in = self.blocks.shape
        step = max(1, CHUNK_VALUES // (max(d_in, d_out) * max(T, self.n)))
        return torch.cat([self._product(x[a : a + step]) for a in range(0, x.shape[0], step)])

    def _product(self, x: torch.Tensor) -> torch.Tensor:
        T, d_out, d_in = self.blocks.shape
        b, S, n = x.shape[0], self.rows.shape[1], self.n
        if self.gather is None:  # circuit-major input: block t reads its own d_in values
            reads = x.view(b, T, d_in).transpose(0, 1)
            neurons = None
        else:  # neuron-major (n, b d_in); each block's input: its S neurons summed, group by group
            neurons = x.view(b, d_in, n).permute(2, 0, 1).reshape(n, b * d_in)
            reads = torch.sparse.mm(self.gather, neurons).view(T, b, d_in)
        written = torch.bmm(reads, self.blocks.transpose(1, 2)) / self.divisor  # (T, b, d_out)
        out = torch.sparse.mm(self.scatter, written.reshape(T, b * d_out)).view(n, b, d_out)
        if self.mean is not None and self.linked is not None and neurons is not None:
            through = torch.sparse.mm(self.linked, neurons)  # L per input group
            capped = (1.0 / S + self.chi) * through - self.chi * neurons.sum(dim=0, keepdim=True)
            out = out + capped.view(n, b, d_in) @ self.mean.T
        return out.permute(1, 2, 0).reshape(b, d_out * n)

    def stored(self) -> Weight:
        """The same matrix in the stored form of ``layers.weights``: sparse, plus the capped
        term's rank-d_out part beside it (the capped entries on linked pairs folded in)."""
        T, d_out, d_in = self.blocks.shape
        S, n = self.rows.shape[1], self.n
        t, i, j, s, u = (a.reshape(-1) for a in torch.meshgrid(
            torch.arange(T), torch.arange(d_out), torch.arange(d_in), torch.arange(S),
            torch.arange(S if self.cols is not None else 1), indexing="ij"))
        rows = i * n + self.rows.cpu()[t, s]
        cols = j * n + self.cols.cpu()[t, u] if self.cols is not None else t * d_in + j
        values = self.blocks.cpu()[t, i, j] / self.divisor
        if self.mean is None or self.linked is None:
            return sparse_weight(rows, cols, values, self.shape)
        crow = self.linked.crow_indices().cpu()
        link_rows = torch.repeat_interleave(torch.arange(n), crow.diff())
        link_cols = self.linked.col_indices().cpu()
        i, j, c = (a.reshape(-1) for a in torch.meshgrid(torch.arange(d_out), torch.arange(d_in),
                                                          torch.arange(link_rows.numel()), indexing="ij"))
        capped = self.mean.cpu()[i, j] * (1.0 / S + self.chi)
        base = sparse_weight(torch.cat([rows, i * n + link_rows[c]]), torch.cat([cols, j * n + link_cols[c]]),
                             torch.cat([values, capped]), self.shape)
        left = torch.zeros(d_out * n, d_out)
        left[torch.arange(d_out * n), torch.arange(d_out * n) // n] = 1.0
        return LowRankPlus(base, left, (-self.chi * self.mean.cpu()).repeat_interleave(n, dim=1))

    def dense(self) -> torch.Tensor:
        return self.stored().dense()

    def nonzeros(self) -> int:
        """Non-zero entries of W, one (d_out, d_in) position at a time (memory of the linked pairs,
        never of the matrix), each entry summed in the order and precision the stored dense form
        sums it, so that exact cancellations are found alike."""
        T, d_out, d_in = self.blocks.shape
        S, n = self.rows.shape[1], self.n
        if self.cols is None:
            return int((self.blocks != 0).sum()) * S
        pairs = (self.rows[:, :, None] * n + self.cols[:, None, :]).reshape(-1).cpu()
        linked, which = torch.unique(pairs, return_inverse=True)
        blocks = self.blocks.cpu() / self.divisor
        mean = torch.zeros(d_out, d_in) if self.mean is None else self.mean.cpu()
        on_linked, elsewhere = mean * (1.0 / S + self.chi), -self.chi * mean
        total = 0
        for i in range(d_out):
            for j in range(d_in):
                values = torch.zeros(linked.numel()).index_add_(0, which, blocks[:, i, j].repeat_interleave(S * S))
                values = elsewhere[i, j] + (values + on_linked[i, j])
                total += int((values != 0).sum()) + (n * n - linked.numel()) * int(elsewhere[i, j] != 0)
        return total
