"""Weights that know their form: one (out, in) matrix W, applied as ``weight(x) = x @ W.T``.

A construction's weights are dense, sparse, the identity or sparse plus a few dense directions;
each form is a small module that owns its product, its size and its device moves, so nothing
outside this module looks at a tensor's layout:

- ``Dense(matrix)``: W itself (an ``nn.Parameter`` is trained);
- ``Sparse``: W.T in CSR form, because dense @ CSR gives a contiguous (batch, out) result;
- ``Identity(n)``: no tensor at all;
- ``LowRankPlus(base, left, right)``: W = base + left @ right, for weights that are sparse but for
  a rank-r part (the capped weights of circuits in superposition).

``compact(matrix)`` stores any matrix in its cheapest exact form, and ``plan(shape, nonzeros)``
gives that form and its bytes without building it, so memory guards and builders decide alike.
Shapes: x is (batch, in), ``weight(x)`` is (batch, out), ``weight.dense()`` is (out, in).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

# torch calls its CSR products "beta"; the ones used here are tested, and the notice would only
# reach users as noise
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state", category=UserWarning)

# Below this fraction of non-zeros a CSR product beats a dense one on CPU.
SPARSE_DENSITY = 0.05
# Up to this many (row of x, non-zero) products, x @ CSR is faster as a gather of x's columns
# and a scatter into the output's (5x at 6 rows and a million non-zeros; slower for big batches).
GATHER_ELEMENTS = 2**24
FLOAT_BYTES, INDEX_BYTES = 4, 8


class Weight(nn.Module):
    """An (out, in) matrix; ``weight(x)`` is x @ W.T for x of shape (batch, in)."""

    @property
    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    def dense(self) -> torch.Tensor:
        """W as one dense (out, in) tensor."""
        raise NotImplementedError

    def nonzeros(self) -> int:
        """Entries of W that are not zero."""
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        """Bytes the stored form holds."""
        return sum(t.numel() * t.element_size() for t in _stored_tensors(self))

    def parameter_count(self) -> int:
        """Weights a dense layer of this shape holds (the identity is wiring, not parameters)."""
        out, inp = self.shape
        return out * inp

    def apply_to_sparse(self, x: torch.Tensor) -> torch.Tensor:
        """``self(x)`` for an x with few non-zeros per row (the default: the plain product)."""
        return self(x)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class WeightList(nn.ModuleList):
    """A ModuleList of weights that says so to the type checker."""

    def __getitem__(self, i: int) -> Weight:  # type: ignore[override]
        return super().__getitem__(i)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[Weight]:
        return super().__iter__()  # type: ignore[return-value]


def _stored_tensors(module: nn.Module) -> list[torch.Tensor]:
    return [t for t in [*module.parameters(), *module.buffers()] if t is not None]


def _keep(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """A tensor given as ``nn.Parameter`` is trained; any other is a buffer (moved, not trained)."""
    if isinstance(value, nn.Parameter):
        module.register_parameter(name, value)
    else:
        module.register_buffer(name, value)


class Dense(Weight):
    matrix: torch.Tensor  # (out, in)

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        if matrix.dim() != 2 or matrix.layout != torch.strided:
            raise ValueError(f"a dense weight needs a 2-d strided tensor, got {tuple(matrix.shape)} {matrix.layout}")
        _keep(self, "matrix", matrix)

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.matrix.shape
        return rows, cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.matrix.T

    def dense(self) -> torch.Tensor:
        return self.matrix

    def nonzeros(self) -> int:
        return int(self.matrix.count_nonzero())

    def apply_to_sparse(self, x: torch.Tensor) -> torch.Tensor:
        """Gathers the columns of x's non-zero inputs rather than a dense product, when x is
        sparse enough for that to pay."""
        if x.shape[1] < 64:
            return self(x)
        rows, cols = torch.nonzero(x, as_tuple=True)
        if rows.numel() > x.numel() // 32:
            return self(x)
        columns = self.matrix.index_select(1, cols).T * x[rows, cols][:, None]  # (non-zeros, out)
        return torch.zeros(x.shape[0], self.matrix.shape[0], dtype=columns.dtype,
                           device=x.device).index_add_(0, rows, columns)


class Sparse(Weight):
    """W stored as W.T in CSR form (shape (in, out))."""

    transposed: torch.Tensor

    def __init__(self, transposed_csr: torch.Tensor) -> None:
        super().__init__()
        if transposed_csr.layout != torch.sparse_csr:
            raise ValueError(f"a sparse weight holds W.T in CSR form, got {transposed_csr.layout}")
        self.register_buffer("transposed", transposed_csr)

    @classmethod
    def from_entries(cls, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor,
                     shape: tuple[int, int]) -> Sparse:
        """W of the given (out, in) shape with ``values`` at (rows, cols); repeats are summed.
        Never made dense."""
        out, inp = shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            coo = torch.sparse_coo_tensor(torch.stack([cols, rows]), values, (inp, out), check_invariants=True)
            return cls(coo.coalesce().to_sparse_csr())

    @property
    def shape(self) -> tuple[int, int]:
        inp, out = self.transposed.shape
        return out, inp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.transposed
        values = weight.values()
        if x.layout == torch.strided and x.shape[0] * values.numel() <= GATHER_ELEMENTS:
            crow = weight.crow_indices()
            rows = torch.repeat_interleave(torch.arange(crow.numel() - 1, device=x.device), crow.diff())
            out = torch.zeros(x.shape[0], weight.shape[1], dtype=torch.result_type(x, values), device=x.device)
            return out.index_add_(1, weight.col_indices(), x.index_select(1, rows) * values)
        return torch.mm(x, weight)

    def dense(self) -> torch.Tensor:
        return self.transposed.to_dense().T

    def nonzeros(self) -> int:
        return int(self.transposed.values().count_nonzero())

    def entries(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, cols, values) of W's stored entries, in (out, in) coordinates."""
        crow = self.transposed.crow_indices()
        inputs = torch.repeat_interleave(torch.arange(crow.numel() - 1, device=crow.device), crow.diff())
        return self.transposed.col_indices(), inputs, self.transposed.values()

    @property
    def nbytes(self) -> int:
        t = self.transposed
        return sum(p.numel() * p.element_size() for p in (t.values(), t.col_indices(), t.crow_indices()))


class Identity(Weight):
    size: int

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    @property
    def shape(self) -> tuple[int, int]:
        return self.size, self.size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def dense(self) -> torch.Tensor:
        return torch.eye(self.size)

    def nonzeros(self) -> int:
        return self.size

    def parameter_count(self) -> int:
        return 0


class LowRankPlus(Weight):
    """W = base + left @ right, left (out, r) and right (r, in)."""

    base: Weight
    left: torch.Tensor
    right: torch.Tensor

    def __init__(self, base: Weight, left: torch.Tensor, right: torch.Tensor) -> None:
        super().__init__()
        out, inp = base.shape
        if left.shape[0] != out or right.shape != (left.shape[1], inp):
            raise ValueError(f"the low-rank part needs left ({out}, r) and right (r, {inp}), "
                             f"got {tuple(left.shape)}, {tuple(right.shape)}")
        self.base = base
        _keep(self, "left", left)
        _keep(self, "right", right)

    @property
    def shape(self) -> tuple[int, int]:
        return self.base.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.right.T) @ self.left.T

    def dense(self) -> torch.Tensor:
        return self.base.dense() + self.left @ self.right

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + (self.left.numel() + self.right.numel()) * self.left.element_size()

    def nonzeros(self) -> int:
        """Entries the low-rank part reaches count as non-zero (a stored entry cancelling one
        exactly is not looked for), and stored entries outside them; rows in chunks."""
        left, right = (self.left != 0).float(), (self.right != 0).float()
        out = left.shape[0]
        reached = sum(int((left[a : a + 1024] @ right > 0).sum()) for a in range(0, out, 1024))
        if isinstance(self.base, Sparse):
            rows, cols, vals = self.base.entries()
        else:
            stored = self.base.dense().to_sparse()
            (rows, cols), vals = stored.indices(), stored.values()
        outside = 0
        for a in range(0, vals.numel(), 2**20):  # chunks of stored entries: (chunk, rank) at a time
            r, c = rows[a : a + 2**20], cols[a : a + 2**20]
            hit = (left[r] * right[:, c].T).sum(dim=1) > 0
            outside += int((~hit & (vals[a : a + 2**20] != 0)).sum())
        return reached + outside


@dataclass(frozen=True)
class Plan:
    """The form ``compact`` gives a matrix of this shape and number of non-zeros, and its bytes."""

    form: str  # "dense", "sparse" or "identity"
    nbytes: int


def stores_sparse(shape: tuple[int, int], nonzeros: int) -> bool:
    """Whether a matrix of ``nonzeros`` entries is kept sparse: the one rule every builder uses."""
    out, inp = shape
    return out * inp > 0 and nonzeros / (out * inp) < SPARSE_DENSITY


def plan(shape: tuple[int, int], nonzeros: int, rank: int = 0) -> Plan:
    """Form and bytes of a stored (out, in) weight with ``nonzeros`` stored entries, plus a
    rank-``rank`` part beside it when it is kept sparse (dense, the part is added in)."""
    out, inp = shape
    if stores_sparse(shape, nonzeros):
        csr = (FLOAT_BYTES + INDEX_BYTES) * nonzeros + INDEX_BYTES * (inp + 1)
        return Plan("sparse", csr + FLOAT_BYTES * rank * (out + inp))
    return Plan("dense", FLOAT_BYTES * out * inp)


def compact(matrix: torch.Tensor) -> Weight:
    """A matrix in its cheapest exact form: the identity, sparse below SPARSE_DENSITY, else dense.
    A sparse (COO) matrix is judged by its non-zeros and never made dense unless it is dense."""
    rows, cols = matrix.shape
    if matrix.layout == torch.sparse_coo:
        sparse = matrix.coalesce()
        idx, vals = sparse.indices(), sparse.values()
        keep = vals != 0
        idx, vals = idx[:, keep], vals[keep]
        if rows == cols and vals.numel() == rows and bool((idx[0] == idx[1]).all()) and bool((vals == 1).all()):
            return Identity(rows)
        if stores_sparse((rows, cols), vals.numel()):
            return Sparse.from_entries(idx[0], idx[1], vals, (rows, cols))
        return Dense(sparse.to_dense().contiguous())
    dense = matrix.to_dense() if matrix.layout != torch.strided else matrix
    if rows == cols and torch.equal(dense, torch.eye(rows, dtype=dense.dtype, device=dense.device)):
        return Identity(rows)
    if stores_sparse((rows, cols), int((dense != 0).sum())):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return Sparse(dense.T.contiguous().to_sparse_csr())
    return Dense(dense.contiguous())


def sparse_weight(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> Sparse:
    """The sparse (out, in) weight given by its non-zeros."""
    return Sparse.from_entries(rows, cols, values, shape)
