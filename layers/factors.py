"""Components of a weight matrix as low-rank factors on small supports.

A family holds C components of one (out, in) matrix W, each a low-rank matrix that touches few
rows and columns:

    component c = P(rows[c])  (left[c] @ right[c])  P(cols[c])^T

with rows (C, a) and cols (C, b) indices into W's rows and columns, left (C, a, r) and right
(C, r, b). A component with fewer rows or columns than the family's a or b is padded with index 0
and zero factors (which add nothing). Nothing here ever makes a component dense on W's full
shape, so a family of 10^5 components of a 10^4-wide matrix stays the size of its factors.

A ``SharedTerm`` is a named part of W that belongs to no single component (a mean weight applied
once for every circuit, a gating bias): stored entries plus an optional low-rank part.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Elements a chunk of an apply or a Gram matrix may hold: bounds memory whatever C is.
CHUNK_ELEMENTS = 2**24


@dataclass
class Factors:
    """C low-rank components of one (out, in) matrix (see the module docstring)."""

    rows: torch.Tensor  # (C, a) int64
    left: torch.Tensor  # (C, a, r)
    right: torch.Tensor  # (C, r, b)
    cols: torch.Tensor  # (C, b) int64
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        C, a = self.rows.shape
        if self.left.shape[:2] != (C, a) or self.cols.shape[0] != C:
            raise ValueError(f"factors disagree: rows {tuple(self.rows.shape)}, left {tuple(self.left.shape)}, "
                             f"right {tuple(self.right.shape)}, cols {tuple(self.cols.shape)}")
        if self.right.shape != (C, self.left.shape[2], self.cols.shape[1]):
            raise ValueError(f"right must be (C, r, b) = {(C, self.left.shape[2], self.cols.shape[1])}, "
                             f"got {tuple(self.right.shape)}")
        out, inp = self.shape
        for name, index, size in (("rows", self.rows, out), ("cols", self.cols, inp)):
            if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
                raise ValueError(f"{name} index outside 0..{size - 1}")

    @property
    def count(self) -> int:
        return self.rows.shape[0]

    @property
    def rank(self) -> int:
        return self.left.shape[2]

    def _step(self, per_component: int) -> int:
        return max(1, CHUNK_ELEMENTS // max(1, per_component))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, out) = x @ (sum of the components).T for x of shape (batch, in)."""
        batch = x.shape[0]
        out = torch.zeros(batch, self.shape[0], dtype=x.dtype, device=x.device)
        step = self._step(batch * max(self.rows.shape[1], self.cols.shape[1], 1))
        for a in range(0, self.count, step):
            cols, right = self.cols[a : a + step], self.right[a : a + step]
            h = torch.einsum("bcj,crj->bcr", x[:, cols], right)
            y = torch.einsum("bcr,cir->bci", h, self.left[a : a + step])
            out.index_add_(1, self.rows[a : a + step].reshape(-1), y.reshape(batch, -1))
        return out

    def component(self, c: int) -> torch.Tensor:
        """Component c as a dense (out, in) matrix (for small matrices and tests)."""
        dense = torch.zeros(self.shape, dtype=self.left.dtype)
        block = self.left[c] @ self.right[c]
        r, k = torch.meshgrid(self.rows[c], self.cols[c], indexing="ij")
        return dense.index_put_((r.reshape(-1), k.reshape(-1)), block.reshape(-1), accumulate=True)

    def _left_sparse(self, start: int, stop: int) -> torch.Tensor:
        """(out, (stop - start) r) sparse: column c r + p holds left[c, :, p] on rows[c]."""
        C, a, r = self.left[start:stop].shape
        rows = self.rows[start:stop, :, None].expand(C, a, r).reshape(-1)
        cols = (torch.arange(C)[:, None, None] * r + torch.arange(r)).expand(C, a, r).reshape(-1)
        return torch.sparse_coo_tensor(torch.stack([rows, cols]), self.left[start:stop].reshape(-1),
                                       (self.shape[0], C * r), check_invariants=False).coalesce()

    def _right_sparse(self, start: int, stop: int) -> torch.Tensor:
        """(in, (stop - start) r) sparse: column c r + p holds right[c, p, :] on cols[c]."""
        C, r, b = self.right[start:stop].shape
        cols = self.cols[start:stop, None, :].expand(C, r, b).reshape(-1)
        rank = (torch.arange(C)[:, None, None] * r + torch.arange(r)[:, None]).expand(C, r, b).reshape(-1)
        return torch.sparse_coo_tensor(torch.stack([cols, rank]), self.right[start:stop].reshape(-1),
                                       (self.shape[1], C * r), check_invariants=False).coalesce()

    def inner(self, other: Factors) -> torch.Tensor:
        """(C, C') Frobenius inner products <component c, other's component c'>, exact, from the
        factors: <A, B> = sum over rank pairs of (A's left . B's left)(A's right . B's right)."""
        if self.shape != other.shape:
            raise ValueError(f"components of a {self.shape} matrix cannot be compared with {other.shape}")
        r1, r2 = self.rank, other.rank
        result = torch.zeros(self.count, other.count)
        other_left = other._left_sparse(0, other.count)
        other_right = other._right_sparse(0, other.count)
        step = self._step(other.count * r1 * r2 * 4)
        for a in range(0, self.count, step):
            b = min(a + step, self.count)
            gl = torch.sparse.mm(self._left_sparse(a, b).t(), other_left).to_dense()  # (c r1, C' r2)
            gr = torch.sparse.mm(self._right_sparse(a, b).t(), other_right).to_dense()
            result[a:b] = (gl * gr).reshape(b - a, r1, other.count, r2).sum(dim=(1, 3))
        return result

    def norms(self) -> torch.Tensor:
        """(C,) Frobenius norm of each component (indices distinct within a component, as
        ``check_distinct`` ensures): |L R|^2 = sum of (L^T L) * (R R^T)."""
        gram_left = self.left.transpose(1, 2) @ self.left
        gram_right = self.right @ self.right.transpose(1, 2)
        return (gram_left * gram_right).sum(dim=(1, 2)).clamp(min=0).sqrt()

    def check_distinct(self) -> None:
        """Refuses a component that lists a row (or column) twice with non-zero factors there:
        its entries would add up and its norm would come out wrong."""
        for name, index, live in (("row", self.rows, self.left.abs().sum(2) > 0),
                                  ("column", self.cols, self.right.abs().sum(1) > 0)):
            marked = torch.where(live, index, -1 - torch.arange(index.shape[1]))  # padding never clashes
            ordered = marked.sort(dim=1).values
            clash = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1)
            if bool(clash.any()):
                c = int(torch.nonzero(clash)[0])
                raise ValueError(f"component {c} lists a {name} twice; give each row and column once per component")

    def take(self, index: torch.Tensor) -> Factors:
        """The components at ``index``, as a family of their own."""
        return Factors(self.rows[index], self.left[index], self.right[index], self.cols[index], self.shape)

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.rows": self.rows, f"{prefix}.left": self.left,
                f"{prefix}.right": self.right, f"{prefix}.cols": self.cols}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str, shape: tuple[int, int]) -> Factors:
        try:
            parts = [tensors[f"{prefix}.{k}"] for k in ("rows", "left", "right", "cols")]
        except KeyError as err:
            raise ValueError(f"no tensor {err.args[0]!r}") from None
        rows, left, right, cols = parts
        if rows.dim() != 2 or cols.dim() != 2 or left.dim() != 3 or right.dim() != 3:
            raise ValueError(f"{prefix}: rows and cols must be 2-d, left and right 3-d")
        if rows.dtype != torch.int64 or cols.dtype != torch.int64:
            raise ValueError(f"{prefix}: rows and cols must be int64 indices")
        return cls(rows, left.float(), right.float(), cols, shape)

    @classmethod
    def from_entries(cls, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, component: torch.Tensor,
                     count: int, shape: tuple[int, int]) -> Factors:
        """Components given by W's entries and the component each entry belongs to, factored
        exactly (to float rounding) by a batched SVD of each component's local block."""
        out, inp = shape
        row_local, a = _local_index(component, rows, count, out)
        col_local, b = _local_index(component, cols, count, inp)
        block = torch.zeros(count, a, b, dtype=torch.float64)
        block.index_put_((component, row_local, col_local), values.double(), accumulate=True)
        row_index = torch.zeros(count, a, dtype=torch.int64).index_put_((component, row_local), rows)
        col_index = torch.zeros(count, b, dtype=torch.int64).index_put_((component, col_local), cols)
        u, s, vh = torch.linalg.svd(block, full_matrices=False)
        keep = s > s[:, :1] * max(a, b) * 1e-12
        r = max(1, int(keep.sum(1).max())) if count else 1
        s = s[:, :r] * keep[:, :r]
        return cls(row_index, (u[:, :, :r] * s[:, None, :]).float(), vh[:, :r].float(), col_index, shape)


def _local_index(component: torch.Tensor, index: torch.Tensor, count: int, size: int) -> tuple[torch.Tensor, int]:
    """Each entry's position among its component's distinct indices, and the most any has."""
    if component.numel() == 0:
        return component.clone(), 1
    key = component * size + index
    unique, inverse = torch.unique(key, return_inverse=True)
    owner = unique // size
    per = torch.bincount(owner, minlength=count)
    first = torch.cumsum(per, 0) - per
    position = torch.arange(unique.numel()) - first[owner]
    return position[inverse], max(1, int(per.max()))


@dataclass
class SharedTerm:
    """A named part of a weight that no single component owns: entries plus left @ right."""

    name: str
    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, int]
    left: torch.Tensor | None = None  # (out, r)
    right: torch.Tensor | None = None  # (r, in)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.shape[0], dtype=x.dtype, device=x.device)
        step = max(1, CHUNK_ELEMENTS // max(1, x.shape[0]))
        for a in range(0, self.values.numel(), step):
            r, c, v = self.rows[a : a + step], self.cols[a : a + step], self.values[a : a + step]
            out.index_add_(1, r, x[:, c] * v)
        if self.left is not None and self.right is not None:
            out += (x @ self.right.T) @ self.left.T
        return out

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        found = {f"{prefix}.rows": self.rows, f"{prefix}.cols": self.cols, f"{prefix}.values": self.values}
        if self.left is not None and self.right is not None:
            found |= {f"{prefix}.left": self.left, f"{prefix}.right": self.right}
        return found

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str, name: str,
                     shape: tuple[int, int]) -> SharedTerm:
        try:
            rows, cols, values = (tensors[f"{prefix}.{k}"] for k in ("rows", "cols", "values"))
        except KeyError as err:
            raise ValueError(f"no tensor {err.args[0]!r}") from None
        return cls(name, rows, cols, values, shape, tensors.get(f"{prefix}.left"), tensors.get(f"{prefix}.right"))
