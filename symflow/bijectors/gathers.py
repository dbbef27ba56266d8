"""FillTriangular and Permute: index gathers on events, with a zero log-det (TFP's)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from symflow.bijectors.affine import StructuredBijector
from symflow.errors import ConstraintError, ShapeError

__all__ = ["FillTriangular", "Permute", "fill_indices"]


# --------------------------------------------------------------------------- FillTriangular


def _triangular_size(m: int) -> int | None:
    """n with n (n + 1) / 2 == m, or None."""
    n = (int(np.sqrt(8 * m + 1)) - 1) // 2
    for cand in (n - 1, n, n + 1):  # guard against the float square root's rounding
        if cand >= 0 and cand * (cand + 1) // 2 == m:
            return cand
    return None


def fill_indices(n: int, upper: bool) -> tuple[np.ndarray, np.ndarray]:
    """TFP's fill order as gathers: (source of each of the n*n matrix entries, with m
    for the zero triangle; flat matrix position of each of the m vector entries).

    TFP lays the vector out as a "clockwise spiral": it reshapes [x[n:], reversed(x)]
    (lower) or [x, reversed(x[n:])] (upper) to n x n and keeps one triangle. The two
    halves overlap so that every entry lands exactly once inside the kept triangle.
    """
    m = n * (n + 1) // 2
    seq = np.arange(m)
    if upper:
        laid = np.concatenate([seq, seq[n:][::-1]])
        keep = np.triu(np.ones((n, n), dtype=bool))
    else:
        laid = np.concatenate([seq[n:], seq[::-1]])
        keep = np.tril(np.ones((n, n), dtype=bool))
    src = np.where(keep.reshape(-1), laid, m)
    dst = np.empty(m, dtype=np.intp)
    dst[src[keep.reshape(-1)]] = np.flatnonzero(keep.reshape(-1))
    return src, dst


class FillTriangular(StructuredBijector):
    """A vector of n(n+1)/2 entries → an n x n triangular matrix, in TFP's order, and back.

    TFP's `tfb.FillTriangular`: the matrix is filled in a clockwise spiral, so
    [1, 2, 3, 4, 5, 6] becomes [[4, 0, 0], [6, 5, 0], [3, 2, 1]] (lower) or
    [[1, 2, 3], [0, 5, 6], [0, 0, 4]] (upper=True). The inverse reads the kept triangle
    and ignores the other one. Log-det 0 (a permutation of coordinates).
    `forward_min_event_ndims = 1`, `inverse_min_event_ndims = 2`.

    Args:
        upper: fill the upper triangle instead of the lower one.

    Raises:
        ShapeError: the vector length is not a triangular number, or the matrix is not
            square.

    Example:
        >>> import numpy as np
        >>> FillTriangular().forward(np.arange(1.0, 7.0))
        array([[4., 0., 0.],
               [6., 5., 0.],
               [3., 2., 1.]])
        >>> FillTriangular().inverse(np.array([[3.0, 0.0], [2.0, 1.0]]))
        array([1., 2., 3.])
    """

    name = "FillTriangular"
    forward_min_event_ndims = 1

    _inverse_min_event_ndims = 2

    def __init__(self, *, upper: bool = False) -> None:
        self.upper = bool(upper)
        self._indices: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _gathers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n not in self._indices:
            self._indices[n] = fill_indices(n, self.upper)
        return self._indices[n]

    def _size_from_vector(self, x: np.ndarray, what: str) -> int:
        m = x.shape[-1] if x.ndim else None
        n = None if m is None else _triangular_size(m)
        if n is None:
            raise ShapeError(
                f"{self.name}.{what}: the last axis must hold n(n+1)/2 entries (1, 3, 6, 10, "
                f"...) for an n x n matrix; got shape {x.shape}. Pass a vector of a "
                "triangular length."
            )
        return n

    def _size_from_matrix(self, y: np.ndarray, what: str) -> int:
        if y.ndim < 2 or y.shape[-1] != y.shape[-2]:
            raise ShapeError(
                f"{self.name}.{what}: expected square matrices of shape (..., n, n); got "
                f"shape {y.shape}."
            )
        return y.shape[-1]

    def _forward(self, x):
        n = self._size_from_vector(x, "forward")
        src, _ = self._gathers(n)
        padded = np.concatenate([x, np.zeros(x.shape[:-1] + (1,), dtype=x.dtype)], axis=-1)
        return padded[..., src].reshape(x.shape[:-1] + (n, n))

    def _inverse(self, y):
        n = self._size_from_matrix(y, "inverse")
        _, dst = self._gathers(n)
        return y.reshape(y.shape[:-2] + (n * n,))[..., dst]

    def _forward_log_det_jacobian(self, x):
        self._size_from_vector(x, "forward_log_det_jacobian")
        return np.zeros(x.shape[:-1], dtype=x.dtype)

    def _inverse_log_det_jacobian(self, y):
        self._size_from_matrix(y, "inverse_log_det_jacobian")
        return np.zeros(y.shape[:-2], dtype=y.dtype)


# --------------------------------------------------------------------------- Permute


class Permute(StructuredBijector):
    """y[..., i] = x[..., permutation[i]] along `axis` (TFP's `tfb.Permute`).

    The inverse gathers with the inverse permutation. Log-det 0;
    `forward_min_event_ndims = -axis`.

    Args:
        permutation: a permutation of range(n), integers.
        axis: a negative axis (TFP's convention), -1 by default.

    Raises:
        ConstraintError: `permutation` is not a permutation of range(n).
        ShapeError: `axis` is not a negative integer, or the input's size along it is not n.

    Example:
        >>> import numpy as np
        >>> Permute([2, 0, 1]).forward(np.array([10.0, 20.0, 30.0]))
        array([30., 10., 20.])
    """

    name = "Permute"

    def __init__(self, permutation, axis: int = -1) -> None:
        owner = self.name
        perm = np.asarray(permutation)
        if perm.dtype.kind == "f" and np.all(np.isfinite(perm)) and np.all(perm == np.round(perm)):
            perm = perm.astype(np.int64)
        if perm.ndim != 1 or perm.dtype.kind not in "iu" or perm.size == 0:
            raise ConstraintError(
                f"{owner}: `permutation` must be a non-empty 1-D array of integers; got "
                f"{permutation!r}. Pass e.g. [2, 0, 1]."
            )
        n = perm.size
        counts = Counter(int(v) for v in perm)
        missing = [v for v in range(n) if v not in counts]
        duplicated = sorted(v for v, c in counts.items() if c > 1)
        outside = sorted(v for v in counts if not 0 <= v < n)
        if missing or duplicated or outside:
            parts = [f"missing {missing}"] if missing else []
            parts += [f"duplicated {duplicated}"] if duplicated else []
            parts += [f"out of range {outside}"] if outside else []
            raise ConstraintError(
                f"{owner}: `permutation` must contain each of 0..{n - 1} exactly once; got "
                f"{perm.tolist()} ({', '.join(parts)}). Pass a reordering of range({n}), "
                f"e.g. np.random.permutation({n})."
            )
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or axis >= 0:
            raise ShapeError(
                f"{owner}: `axis` must be a negative integer (counted from the end, as in "
                f"TFP); got {axis!r}. Pass e.g. axis=-1."
            )
        self.permutation = perm.copy()
        self.axis = int(axis)
        self.forward_min_event_ndims = -self.axis
        self._inverse_permutation = np.argsort(perm)

    def _flow_members(self, event_size: int) -> list:
        from symflow.codegen.flow.permute import PermuteCode
        from symflow.runtime.composed import FlowMember

        if self.axis != -1 or event_size != self.permutation.size:
            raise ShapeError(
                f"{self.name}: inside a flow a permutation acts on the event axis (-1) and has "
                f"the event's size {event_size}; got axis {self.axis}, size "
                f"{self.permutation.size}."
            )
        return [FlowMember(PermuteCode(self.permutation), np.empty(0), self.name)]

    def _check(self, arr: np.ndarray, what: str) -> None:
        n = self.permutation.size
        if arr.ndim < -self.axis or arr.shape[self.axis] != n:
            raise ShapeError(
                f"{self.name}.{what}: expected size {n} along axis {self.axis} (the "
                f"permutation's length); got an input of shape {arr.shape}."
            )

    def _forward(self, x):
        self._check(x, "forward")
        return np.take(x, self.permutation, axis=self.axis)

    def _inverse(self, y):
        self._check(y, "inverse")
        return np.take(y, self._inverse_permutation, axis=self.axis)

    def _forward_log_det_jacobian(self, x):
        self._check(x, "forward_log_det_jacobian")
        return np.zeros(x.shape[: x.ndim + self.axis], dtype=x.dtype)

    def _inverse_log_det_jacobian(self, y):
        self._check(y, "inverse_log_det_jacobian")
        return np.zeros(y.shape[: y.ndim + self.axis], dtype=y.dtype)
