"""Affine and ScaleMatvecTriL: y = (L + V diag(d) V^T) x + shift on vector events.

These act on whole events, not elementwise, so they are written by hand rather than
declared with the DSL. Affine and ScaleMatvecTriL run the Numba kernels of
`symflow.bijectors.linear_kernels`; their log-det comes from the structure of
M = L + V diag(d) V^T (triangular diagonal and the matrix determinant lemma) and is a
bind-time constant. Like the declared bijectors, they are checked before use: for n <= 16
the kernels' log-det and round trip are compared with mpmath at 50 digits when the
bijector is bound (`report()`). FillTriangular and Permute are index gathers with a zero
log-det.
"""

from __future__ import annotations

import mpmath
import numba
import numpy as np

from symflow.bijectors import linear_kernels as _lk
from symflow.checks import CheckReport, CheckResult
from symflow.codegen.emit import PARALLEL_THRESHOLD
from symflow.errors import CheckFailedError, ConstraintError, NotInvertibleError, ShapeError
from symflow.runtime.bijector import Bijector, as_float_array

__all__ = ["Affine", "ScaleMatvecTriL", "StructuredBijector"]

#: Bind-time verification runs for event sizes up to this (an n x n det at 50 digits).
VERIFY_MAX_N = 16
VERIFY_DPS = 50
#: Relative tolerance of the bind-time check, multiplied by max(1, cond(M)): float64
#: solves lose about cond(M) * 1e-16, so a correct kernel is 10^7 below this even for
#: an ill-conditioned M, and a wrong formula is off by O(1).
VERIFY_RTOL = 1e-9
#: C (the capacitance matrix) counts as singular when its smallest LU pivot is below this
#: many float64 epsilons (times r) relative to its largest entry.
_SINGULAR_PIVOTS = 8.0
#: What the bind-time verification compares with mpmath, in report order.
_VERIFIED = ("log_det", "forward", "inverse", "round trip")


def _chunks() -> int:
    # Blocks of rows per parallel kernel call: a few per thread balances the load.
    return 4 * numba.get_num_threads()


class StructuredBijector(Bijector):
    """Structured bijectors share `Bijector`'s API; this marks them for the reader."""


# --------------------------------------------------------------------------- parameters


def _param(owner: str, name: str, value, ndim: int, what: str) -> np.ndarray:
    """`value` as a float64 array of rank `ndim` (unbatched)."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConstraintError(
            f"{owner}: `{name}` must be {what} of real numbers; got {value!r}."
        ) from err
    if arr.ndim > ndim:
        raise ShapeError(
            f"{owner}: `{name}` must be {what} (one for the whole batch); got shape "
            f"{arr.shape}. Batched parameters are not supported: build one {owner} per "
            "batch member, or give the batch to the input instead."
        )
    if arr.ndim < ndim:
        raise ShapeError(f"{owner}: `{name}` must be {what}; got shape {arr.shape}.")
    return arr


def _check_finite(owner: str, name: str, arr: np.ndarray) -> None:
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise ConstraintError(
            f"{owner}: `{name}` must be finite; got {float(arr[idx])!r} at index "
            f"{idx[0] if len(idx) == 1 else idx} ({len(bad)} non-finite entries). Pass finite "
            "values (a NaN here usually comes from a diverged optimizer step)."
        )


class _TriLowRank(StructuredBijector):
    """Shared machinery of Affine and ScaleMatvecTriL: y = (L + V diag(d) V^T) x + shift."""

    forward_min_event_ndims = 1

    def _bind(self, shift, tril, factor, diag, given: dict) -> None:
        owner = self.name
        self._n = tril.shape[0]
        self._r = factor.shape[1]
        diagonal = np.diagonal(tril)
        zeros = np.flatnonzero(diagonal == 0.0)
        if zeros.size:
            raise NotInvertibleError(
                f"{owner}: `scale_tril` has a zero on its diagonal at index {int(zeros[0])}"
                f"{f' (and {zeros.size - 1} more)' if zeros.size > 1 else ''}; the map is not "
                "invertible. Keep the diagonal away from zero, e.g. through a softplus of an "
                "unconstrained parameter plus a small floor."
            )
        self._shift = np.ascontiguousarray(shift)
        self._tril = np.ascontiguousarray(tril)
        self._factor = np.ascontiguousarray(factor)
        self._diag = np.ascontiguousarray(diag)
        self._given = given
        w, lu, piv, logdet, ratio = _lk.affine_prepare(self._tril, self._factor, self._diag)
        r = self._r
        if not ratio > _SINGULAR_PIVOTS * max(r, 1) * np.finfo(np.float64).eps:
            raise NotInvertibleError(
                f"{owner}: the capacitance matrix I_r + diag(scale_perturb_diag) V^T L^-1 V "
                f"(r = {r}) is singular (smallest LU pivot / largest entry = {ratio:.3g}), so "
                "M = L + V diag(d) V^T is singular: the map is not invertible. The low-rank "
                "update cancels part of scale_tril (for example L = I, V = e_1, d = -1 zeroes "
                "M's first diagonal entry); change scale_perturb_factor or scale_perturb_diag."
            )
        self._w, self._lu, self._piv, self._logdet = w, lu, piv, float(logdet)
        self._minv_t = None
        self._report = self._verify(ratio)

    # ---------------------------------------------------------------- properties

    @property
    def event_size(self) -> int:
        """n: the size of the last axis this bijector acts on."""
        return self._n

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        """The parameters as given (float64 copies; scale_tril with its lower triangle only)."""
        return {k: v.copy() for k, v in self._given.items()}

    def report(self) -> CheckReport:
        """What was verified when this bijector was bound, and the measured errors."""
        return self._report

    # ---------------------------------------------------------------- kernels

    def _rows(self, arr: np.ndarray, what: str) -> np.ndarray:
        n = self._n
        if arr.ndim == 0 or arr.shape[-1] != n:
            raise ShapeError(
                f"{self.name}.{what}: expected an input of shape (..., {n}) (event size "
                f"n = {n} on the last axis); got shape {arr.shape}. Put the event on the "
                "last axis, or build the bijector with parameters of the input's event size."
            )
        return np.ascontiguousarray(arr.reshape(-1, n), dtype=np.float64)

    def _constants(self):
        return self._tril, self._factor, self._diag, self._shift

    def _forward(self, x):
        rows = self._rows(x, "forward")
        out = np.empty_like(rows)
        if rows.size >= PARALLEL_THRESHOLD:
            _lk.affine_forward_parallel(rows, *self._constants(), out, _chunks())
        else:
            _lk.affine_forward(rows, *self._constants(), out)
        return out.reshape(x.shape).astype(x.dtype, copy=False)

    def _inverse(self, y):
        rows = self._rows(y, "inverse")
        out = np.empty_like(rows)
        args = (rows, *self._constants(), self._w, self._lu, self._piv, out)
        if rows.size >= PARALLEL_THRESHOLD:
            _lk.affine_inverse_parallel(*args, _chunks())
        else:
            _lk.affine_inverse(*args)
        return out.reshape(y.shape).astype(y.dtype, copy=False)

    def _forward_log_det_jacobian(self, x):
        if x.ndim == 0 or x.shape[-1] != self._n:
            self._rows(x, "forward_log_det_jacobian")
        return np.full(x.shape[:-1], self._logdet, dtype=x.dtype)

    def _inverse_log_det_jacobian(self, y):
        if y.ndim == 0 or y.shape[-1] != self._n:
            self._rows(y, "inverse_log_det_jacobian")
        return np.full(y.shape[:-1], -self._logdet, dtype=y.dtype)

    def _flow_members(self, event_size: int) -> list:
        from symflow.bijectors.gathers import fill_indices
        from symflow.codegen.flow.affine import AffineCode
        from symflow.runtime.composed import FlowMember

        n = self._n
        if event_size != n:
            raise ShapeError(
                f"{self.name}: acts on events of size {n}; the flow's events have size "
                f"{event_size}."
            )
        _, positions = fill_indices(n, False)
        code = AffineCode(n, self._r, positions, set(self._given), self.name)
        values = np.concatenate(
            [self._shift, self._tril.reshape(-1)[positions], self._factor.reshape(-1), self._diag]
        )
        return [FlowMember(code, values, self.name)]

    def _from_flow_values(self, values: np.ndarray):
        from symflow.bijectors.gathers import fill_indices

        n, r = self._n, self._r
        _, positions = fill_indices(n, False)
        m = n * (n + 1) // 2
        shift, tril_entries = values[:n], values[n : n + m]
        factor, diag = values[n + m : n + m + n * r], values[n + m + n * r :]
        tril = np.zeros(n * n)
        tril[positions] = tril_entries
        tril = tril.reshape(n, n)
        if isinstance(self, ScaleMatvecTriL):
            return ScaleMatvecTriL(tril)
        kwargs = {"shift": shift.copy(), "scale_tril": tril}
        if "scale_perturb_factor" in self._given:
            kwargs["scale_perturb_factor"] = factor.reshape(n, r).copy()
        if "scale_perturb_diag" in self._given:
            kwargs["scale_perturb_diag"] = diag.copy()
        return Affine(**kwargs)

    # ---------------------------------------------------------------- gradients

    def _inverse_transpose(self) -> np.ndarray:
        # M^-T is only needed for the log-det's gradient; a bind-time constant computed
        # by n transposed Woodbury solves on first use.
        if self._minv_t is None:
            self._minv_t = _lk.affine_inverse_transpose_matrix(
                self._tril, self._factor, self._diag, self._w, self._lu, self._piv
            )
        return self._minv_t

    def _vjp(self, y, cotangent_x, cotangent_ildj):
        y = as_float_array(y, f"{self.name}.inverse_vjp")
        rows = self._rows(y, "inverse_vjp")
        cx = np.asarray(cotangent_x, dtype=np.float64)
        batch = y.shape[:-1]
        try:
            cx = np.broadcast_to(cx, y.shape)
            cildj = np.broadcast_to(np.asarray(cotangent_ildj, dtype=np.float64), batch)
        except ValueError as err:
            raise ShapeError(
                f"{self.name}.inverse_vjp: cotangent_x must broadcast to y's shape {y.shape} "
                f"and cotangent_ildj to its batch shape {batch}; got "
                f"{np.shape(cotangent_x)} and {np.shape(cotangent_ildj)}."
            ) from err
        cx_rows = np.ascontiguousarray(cx.reshape(-1, self._n))
        n = self._n
        x_rows = self._inverse(rows)  # the vjp kernel takes the inverse's output
        gy = np.empty_like(rows)
        gm = np.empty((n, n))
        gshift = np.empty(n)
        w, lu, piv = self._w, self._lu, self._piv
        args = (x_rows, cx_rows, self._tril, self._factor, self._diag, w, lu, piv, gy, gm, gshift)
        if rows.size >= PARALLEL_THRESHOLD:
            _lk.affine_inverse_vjp_parallel(*args, _chunks())
        else:
            _lk.affine_inverse_vjp(*args)
        g_shift, g_tril, g_factor, g_diag = _lk.affine_parameter_gradients(
            gm, gshift, float(cildj.sum()), self._inverse_transpose(), self._factor, self._diag
        )
        return {
            "y": gy.reshape(y.shape).astype(y.dtype, copy=False),
            "shift": g_shift,
            "scale_tril": g_tril,
            "scale_perturb_factor": g_factor,
            "scale_perturb_diag": g_diag,
        }

    # ---------------------------------------------------------------- verification

    def _dense_mp(self):
        """M = L + V diag(d) V^T in mpmath (at the working precision), from the float values."""
        n, r = self._n, self._r
        m = mpmath.matrix(n, n)
        tril, factor, diag = self._tril, self._factor, self._diag
        for i in range(n):
            for j in range(n):
                acc = mpmath.mpf(tril[i, j]) if j <= i else mpmath.mpf(0)
                for k in range(r):
                    acc += (
                        mpmath.mpf(factor[i, k]) * mpmath.mpf(diag[k]) * mpmath.mpf(factor[j, k])
                    )
                m[i, j] = acc
        return m

    def _verify(self, ratio: float) -> CheckReport:
        """log-det and round trip of the kernels against mpmath at 50 digits (n <= 16).

        Raises:
            CheckFailedError: if a kernel disagrees beyond VERIFY_RTOL * max(1, cond(M)).
        """
        n, r, name = self._n, self._r, self.name
        results = [
            CheckResult(
                "invertible",
                "checked",
                f"min |L_ii| = {np.min(np.abs(np.diagonal(self._tril))):.3g}; capacitance "
                f"({r}x{r}) smallest relative LU pivot = {ratio:.3g}",
            )
        ]
        if n > VERIFY_MAX_N:
            detail = f"not run: n = {n} > {VERIFY_MAX_N} (the mpmath reference is O(n^3))"
            results += [CheckResult(k, "skipped", detail) for k in _VERIFIED]
            return CheckReport(name, tuple(results))
        dense = np.tril(self._tril) + (self._factor * self._diag) @ self._factor.T
        with np.errstate(all="ignore"):
            cond = float(np.linalg.cond(dense))
        scale = max(1.0, cond) if np.isfinite(cond) else np.inf
        tol = VERIFY_RTOL * scale
        probe = np.cos(np.arange(1.0, n + 1.0))[None, :]
        y = np.empty_like(probe)
        back = np.empty_like(probe)
        _lk.affine_forward(probe, *self._constants(), y)
        _lk.affine_inverse(y, *self._constants(), self._w, self._lu, self._piv, back)
        with mpmath.workdps(VERIFY_DPS):
            m = self._dense_mp()
            # Every float enters mpmath through mpf(float(.)): exact, and never a numpy
            # scalar on the left of an mpf operation (numpy would take it over).
            shift = [mpmath.mpf(float(v)) for v in self._shift]
            x0 = [mpmath.mpf(float(v)) for v in probe[0]]
            y_got = [mpmath.mpf(float(v)) for v in y[0]]
            try:
                ref_ld = mpmath.log(abs(mpmath.det(m)))
                x_ref = mpmath.lu_solve(m, mpmath.matrix([y_got[i] - shift[i] for i in range(n)]))
            except ZeroDivisionError as err:
                raise NotInvertibleError(
                    f"{name}: M = L + V diag(d) V^T is singular at {VERIFY_DPS} digits; the "
                    "map is not invertible. Change scale_tril or the low-rank update."
                ) from err
            y_ref = [mpmath.fsum(m[i, j] * x0[j] for j in range(n)) + shift[i] for i in range(n)]
            # |M| |x| + |shift|: the size of the terms that the forward kernel adds up.
            y_scale = max(
                float(mpmath.fsum(abs(m[i, j] * x0[j]) for j in range(n)) + abs(shift[i]))
                for i in range(n)
            )
            err_ld = float(abs(ref_ld - self._logdet) / max(1, abs(ref_ld)))
            err_fwd = max(float(abs(y_ref[i] - y_got[i])) for i in range(n)) / max(y_scale, 1e-300)
            x_scale = max(float(abs(v)) for v in x_ref) or 1e-300
            err_inv = max(float(abs(x_ref[i] - float(back[0, i]))) for i in range(n)) / x_scale
        err_rt = float(np.max(np.abs(back - probe)) / np.max(np.abs(probe)))
        checks = [
            (
                "log_det",
                err_ld,
                f"{self._logdet!r} vs mpmath log|det M| {mpmath.nstr(ref_ld, 17)}",
            ),
            ("forward", err_fwd, "y = M x + shift at a probe x vs mpmath"),
            ("inverse", err_inv, "Woodbury solve vs mpmath lu_solve of M"),
            ("round trip", err_rt, "inverse(forward(x)) vs x"),
        ]
        for label, err, what in checks:
            if not err <= tol:
                raise CheckFailedError(
                    f"{name}: the {label} kernel disagrees with mpmath at {VERIFY_DPS} digits "
                    f"({what}): relative error {err:.3g} > tolerance {tol:.3g} (= {VERIFY_RTOL:g} "
                    f"x cond(M) {cond:.3g}), n = {n}, r = {r}. This is a bug in symflow's "
                    "structured kernels; please report it with this message and the parameters."
                )
            results.append(
                CheckResult(
                    label,
                    "checked",
                    f"{what}: rel. error {err:.2g} (tol {tol:.2g}, cond(M) {cond:.3g})",
                )
            )
        return CheckReport(name, tuple(results))


class Affine(_TriLowRank):
    """y = (L + V diag(d) V^T) x + shift on the last axis (TFP's original `tfb.Affine`).

    L is `scale_tril` (lower triangle only; the identity if None), V is
    `scale_perturb_factor` (n x r), d is `scale_perturb_diag` (length r, ones if None when
    V is given). Parameters are unbatched: one matrix for every batch member. Event shape
    (n,), any batch shape; float32 and float64 inputs keep their dtype (kernels compute in
    float64).

    log|det M| = sum log|L_ii| + log|det(I_r + D V^T L^-1 V)| (matrix determinant lemma), a
    constant computed once; the inverse solves with L and the r x r capacitance matrix
    (Woodbury) and never forms M^-1 or D^-1, so d may contain zeros. Accuracy follows
    M's conditioning; Woodbury can lose more than a dense solve when the capacitance
    matrix is much worse conditioned than M. For n <= 16 the kernels are checked against
    mpmath at bind time (`report()`).

    Args:
        shift: (n,) or None (zero).
        scale_tril: (n, n) lower triangular with nonzero diagonal, or None (identity).
        scale_perturb_factor: (n, r) or None (no low-rank update).
        scale_perturb_diag: (r,) or None (ones); requires scale_perturb_factor.

    Raises:
        ShapeError: inconsistent or batched parameter shapes, or no parameter fixes n.
        ConstraintError: a non-finite entry.
        NotInvertibleError: a zero on L's diagonal, or a singular capacitance matrix.
        CheckFailedError: the kernels disagree with mpmath (a symflow bug).

    Example:
        >>> import numpy as np
        >>> b = Affine(shift=[1.0, 0.0], scale_tril=[[2.0, 0.0], [1.0, 1.0]],
        ...            scale_perturb_factor=[[1.0], [0.0]], scale_perturb_diag=[0.5])
        >>> b.forward(np.array([1.0, 1.0]))
        array([3.5, 2. ])
        >>> b.inverse(np.array([3.5, 2.0]))
        array([1., 1.])
        >>> round(float(b.forward_log_det_jacobian(np.array([1.0, 1.0]))), 12)  # log 2.5
        0.916290731874
    """

    name = "Affine"

    def __init__(
        self,
        shift=None,
        scale_tril=None,
        scale_perturb_factor=None,
        scale_perturb_diag=None,
    ) -> None:
        owner = self.name
        given: dict[str, np.ndarray] = {}
        sizes: list[tuple[str, tuple[int, ...], int]] = []
        if shift is not None:
            given["shift"] = _param(owner, "shift", shift, 1, "a vector of length n")
            sizes.append(("shift", given["shift"].shape, given["shift"].shape[0]))
        if scale_tril is not None:
            tril = _param(owner, "scale_tril", scale_tril, 2, "an n x n matrix")
            if tril.shape[0] != tril.shape[1]:
                raise ShapeError(
                    f"{owner}: `scale_tril` must be a square n x n matrix; got shape "
                    f"{tril.shape}. Pass the lower-triangular factor itself."
                )
            given["scale_tril"] = np.tril(tril)
            sizes.append(("scale_tril", tril.shape, tril.shape[0]))
        if scale_perturb_factor is not None:
            given["scale_perturb_factor"] = _param(
                owner, "scale_perturb_factor", scale_perturb_factor, 2, "an n x r matrix"
            )
            shape = given["scale_perturb_factor"].shape
            sizes.append(("scale_perturb_factor", shape, shape[0]))
        if scale_perturb_diag is not None:
            if scale_perturb_factor is None:
                raise ShapeError(
                    f"{owner}: `scale_perturb_diag` was given without `scale_perturb_factor`; "
                    "the diagonal d scales the columns of V in V diag(d) V^T. Pass "
                    "scale_perturb_factor too, or drop scale_perturb_diag."
                )
            given["scale_perturb_diag"] = _param(
                owner, "scale_perturb_diag", scale_perturb_diag, 1, "a vector of length r"
            )
        if not sizes:
            raise ShapeError(
                f"{owner}: cannot tell the event size n: shift, scale_tril and "
                "scale_perturb_factor are all None. Pass at least one of them (e.g. "
                "scale_tril=np.eye(n) for the identity)."
            )
        first, first_shape, n = sizes[0]
        for other, shape, size in sizes[1:]:
            if size != n:
                raise ShapeError(
                    f"{owner}: `{other}` has shape {shape} but `{first}` has shape "
                    f"{first_shape}: they must agree on the event size n (n = {n} from "
                    f"`{first}`). Give every parameter the same n."
                )
        if n == 0:
            raise ShapeError(f"{owner}: the event size n must be at least 1; got n = 0.")
        factor = given.get("scale_perturb_factor", np.zeros((n, 0)))
        r = factor.shape[1]
        diag = given.get("scale_perturb_diag", np.ones(r))
        if diag.shape != (r,):
            raise ShapeError(
                f"{owner}: `scale_perturb_diag` must have length r = {r} (the columns of "
                f"`scale_perturb_factor`, shape {factor.shape}); got shape {diag.shape}."
            )
        for key, value in given.items():
            _check_finite(owner, key, value)
        self._bind(
            given.get("shift", np.zeros(n)),
            given.get("scale_tril", np.eye(n)),
            factor,
            diag,
            given,
        )

    def inverse_vjp(self, y, cotangent_x, cotangent_ildj) -> dict[str, np.ndarray]:
        """Vector-Jacobian products of x = M^-1 (y - shift) and ildj = -log|det M|.

        The gradient of sum_b <cotangent_x[b], x[b]> + cotangent_ildj[b] * ildj, with
        ildj over the minimum event dims (one value per batch member).

        Args:
            y: (..., n).
            cotangent_x: broadcastable to y's shape.
            cotangent_ildj: broadcastable to y's batch shape y.shape[:-1].

        Returns:
            {'y': shaped like y, 'shift': (n,), 'scale_tril': (n, n) lower triangular,
            'scale_perturb_factor': (n, r), 'scale_perturb_diag': (r,)}; parameter
            gradients are summed over the batch. A parameter left as None gets the
            gradient at its default value (zero shift, identity L; r = 0 without V).
        """
        return self._vjp(y, cotangent_x, cotangent_ildj)


class ScaleMatvecTriL(_TriLowRank):
    """y = L x on the last axis, L lower triangular (TFP's `ScaleMatvecTriL`).

    Only the lower triangle of `scale_tril` is read. log|det L| = sum log|L_ii|; the inverse
    is a forward substitution. Shares its kernels with `Affine` (no shift, rank 0).

    Args:
        scale_tril: (n, n) with a nonzero diagonal.

    Raises:
        ShapeError: scale_tril is not one square matrix.
        ConstraintError: a non-finite entry in its lower triangle.
        NotInvertibleError: a zero on its diagonal.

    Example:
        >>> import numpy as np
        >>> b = ScaleMatvecTriL([[2.0, 0.0], [1.0, 3.0]])
        >>> b.forward(np.array([1.0, 1.0]))
        array([2., 4.])
        >>> b.inverse(np.array([2.0, 4.0]))
        array([1., 1.])
    """

    name = "ScaleMatvecTriL"

    def __init__(self, scale_tril) -> None:
        owner = self.name
        tril = _param(owner, "scale_tril", scale_tril, 2, "an n x n matrix")
        n = tril.shape[0]
        if tril.shape[1] != n or n == 0:
            raise ShapeError(
                f"{owner}: `scale_tril` must be a square n x n matrix with n >= 1; got shape "
                f"{tril.shape}."
            )
        tril = np.tril(tril)
        _check_finite(owner, "scale_tril", tril)
        self._bind(np.zeros(n), tril, np.zeros((n, 0)), np.zeros(0), {"scale_tril": tril})

    def inverse_vjp(self, y, cotangent_x, cotangent_ildj) -> dict[str, np.ndarray]:
        """Vector-Jacobian products of x = L^-1 y and ildj = -log|det L| (see Affine).

        Returns:
            {'y': shaped like y, 'scale_tril': (n, n) lower triangular, summed over the
            batch}.
        """
        grads = self._vjp(y, cotangent_x, cotangent_ildj)
        return {"y": grads["y"], "scale_tril": grads["scale_tril"]}
