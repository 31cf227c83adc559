"""Weight matrices that may be dense, sparse (CSR) or the identity, behind one product.

A weight is the (out, in) matrix W of y = x @ W.T. Dense weights are stored as W; sparse ones
as W.T in CSR form, because dense @ CSR gives a contiguous (batch, out) result directly; the
identity is stored as None. Use the functions here rather than the raw shape.
"""

from __future__ import annotations

import warnings

import torch

# torch calls its CSR products "beta"; the ones used here are tested, and the notice would only
# reach users as noise
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state", category=UserWarning)

# Below this fraction of non-zeros a CSR product beats a dense one on CPU.
SPARSE_DENSITY = 0.05
# Up to this many (row of x, non-zero) products, x @ CSR is faster as a gather of x's columns
# and a scatter into the output's (5x at 6 rows and a million non-zeros; slower for big batches).
GATHER_ELEMENTS = 2**24


def compact(matrix: torch.Tensor) -> torch.Tensor | None:
    """Store a weight matrix in its cheapest exact form: None for the identity, CSR if sparse.
    A sparse (COO) matrix is judged by its non-zeros and never made dense unless it is dense."""
    rows, cols = matrix.shape
    if matrix.layout == torch.sparse_coo:
        sparse = matrix.coalesce()
        idx, vals = sparse.indices(), sparse.values()
        keep = vals != 0
        idx, vals = idx[:, keep], vals[keep]
        if rows == cols and vals.numel() == rows and bool((idx[0] == idx[1]).all()) and bool((vals == 1).all()):
            return None
        if rows * cols > 0 and vals.numel() / (rows * cols) < SPARSE_DENSITY:
            with warnings.catch_warnings():  # torch calls CSR "beta"; the products used here are stable
                warnings.simplefilter("ignore", UserWarning)
                stored = torch.sparse_coo_tensor(idx.flip(0), vals, (cols, rows)).coalesce()
                return stored.to_sparse_csr()
        return sparse.to_dense().contiguous()
    dense = matrix.to_dense() if matrix.layout != torch.strided else matrix
    if rows == cols and torch.equal(dense, torch.eye(rows, dtype=dense.dtype, device=dense.device)):
        return None
    if rows * cols > 0 and (dense != 0).sum().item() / (rows * cols) < SPARSE_DENSITY:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return dense.T.contiguous().to_sparse_csr()
    return dense.contiguous()


def times_transpose(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """x @ weight.T for a batch x of shape (batch, in) and weight (out, in); None is identity."""
    if weight is None:
        return x
    if weight.layout == torch.sparse_csr:
        values = weight.values()
        if x.layout == torch.strided and x.shape[0] * values.numel() <= GATHER_ELEMENTS:
            crow = weight.crow_indices()
            rows = torch.repeat_interleave(torch.arange(crow.numel() - 1, device=x.device), crow.diff())
            out = torch.zeros(x.shape[0], weight.shape[1], dtype=torch.result_type(x, values), device=x.device)
            return out.index_add_(1, weight.col_indices(), x.index_select(1, rows) * values)
        return torch.mm(x, weight)
    return x @ weight.T


def to_dense(weight: torch.Tensor | None, size: int | None = None) -> torch.Tensor:
    """The dense form of a stored weight (``size`` gives the identity's size)."""
    if weight is None:
        if size is None:
            raise ValueError("the identity needs a size to be made dense")
        return torch.eye(size)
    return weight.to_dense().T if weight.layout == torch.sparse_csr else weight


def shape(weight: torch.Tensor | None, size: int | None = None) -> tuple[int, int]:
    """(out, in) of a stored weight (``size`` gives the identity's size)."""
    if weight is None:
        if size is None:
            raise ValueError("the identity needs a size")
        return size, size
    rows, cols = weight.shape
    return (cols, rows) if weight.layout == torch.sparse_csr else (rows, cols)


def nonzeros(weight: torch.Tensor | None, size: int = 0) -> int:
    """Number of non-zero entries (the identity has ``size``)."""
    if weight is None:
        return size
    if weight.layout == torch.sparse_csr:
        return int(weight.values().count_nonzero())
    return int(weight.count_nonzero())


def sparse_weight(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The stored (CSR) form of an (out, in) weight given by its non-zeros, never made dense."""
    out, inp = shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(torch.stack([cols, rows]), values, (inp, out), check_invariants=True)
        return coo.coalesce().to_sparse_csr()
