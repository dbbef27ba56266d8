"""Numba kernels for y = (L + V diag(d) V^T) x + shift over a batch of rows, and back.

L is lower triangular (n x n; only its lower triangle is read), V is n x r, d has length
r. Every batch kernel takes a 2-D C-contiguous float64 array of shape (batch, n) and writes
into a preallocated output; the `*_parallel` variants split the batch into `chunks` blocks
of rows over threads (`prange`; the caller passes about `numba.get_num_threads()`, an
argument rather than a call inside so that the compiled kernel can be cached), each block
with its own scratch, so no two threads write one buffer.

The inverse never forms M^-1 and never divides by d: with W = L^-1 V and the r x r
capacitance matrix C = I_r + D V^T W (both bind-time constants, `affine_prepare`),

    M = L (I_n + W D V^T),   det M = det L * det C   (matrix determinant lemma),
    M^-1 b = z - W C^-1 D V^T z,   z = L^-1 b        (Woodbury, push-through form),
    M^-T c = L^-T (c - V D C^-T W^T c)               (the same identity, transposed).

A row then costs one triangular solve (n^2 / 2), two n x r products and one r x r LU
solve; nothing O(n^3) runs per call. The textbook Woodbury form
(D^-1 + V^T L^-1 V)^-1 needs D^-1; this one is the same matrix multiplied through by D,
so a zero in d (a rank-deficient update) is fine.

Self-contained on purpose: every function here calls only numpy, math, numba and the other
functions of this module, so a generated module can paste their source verbatim.
"""

# Matrix names follow the maths (L, V, W, G), so pep8-naming's lowercase rules are off here.
# ruff: noqa: N803, N806

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "affine_forward",
    "affine_forward_parallel",
    "affine_inverse",
    "affine_inverse_parallel",
    "affine_inverse_transpose_matrix",
    "affine_inverse_vjp",
    "affine_inverse_vjp_parallel",
    "affine_parameter_gradients",
    "affine_prepare",
    "lu_factor",
    "lu_solve",
    "lu_transpose_solve",
    "tril_solve",
    "tril_transpose_solve",
]

#: Parallel kernels use explicit prange loops only; the other parfor rewrites (array
#: expressions, fusion, ...) find nothing here and cost compile time.
_PRANGE_ONLY = {
    "comprehension": False,
    "prange": True,
    "setitem": False,
    "reduction": False,
    "numpy": False,
    "stencil": False,
    "fusion": False,
    "inplace_binop": False,
}


# --------------------------------------------------------------------------- small solves


@numba.njit(cache=True, error_model="numpy", inline="always")
def tril_solve(L, b):
    """Solves L z = b in place by forward substitution (reads L's lower triangle only)."""
    n = b.shape[0]
    for i in range(n):
        acc = b[i]
        for j in range(i):
            acc -= L[i, j] * b[j]
        b[i] = acc / L[i, i]


@numba.njit(cache=True, error_model="numpy", inline="always")
def tril_transpose_solve(L, b):
    """Solves L^T z = b in place by back substitution (L^T is upper triangular)."""
    n = b.shape[0]
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for j in range(i + 1, n):
            acc -= L[j, i] * b[j]
        b[i] = acc / L[i, i]


@numba.njit(cache=True, error_model="numpy")
def lu_factor(a, piv):
    """Factors P a = L U in place with partial pivoting (LAPACK's getrf layout).

    On return the strict lower triangle of `a` holds the unit-lower factor, the upper
    triangle holds U, and row k was swapped with row piv[k] at step k.

    Returns:
        (log|det a|, smallest |pivot| / largest |a_ij|): -inf and 0.0 when a pivot is
        exactly zero. The ratio is a cheap singularity test; 1.0 for an empty matrix.
    """
    r = a.shape[0]
    scale = 0.0
    for i in range(r):
        for j in range(r):
            scale = max(scale, abs(a[i, j]))
    logdet = 0.0
    smallest = np.inf
    for k in range(r):
        p = k
        best = abs(a[k, k])
        for i in range(k + 1, r):
            if abs(a[i, k]) > best:
                best = abs(a[i, k])
                p = i
        piv[k] = p
        if p != k:
            for j in range(r):
                tmp = a[k, j]
                a[k, j] = a[p, j]
                a[p, j] = tmp
        pivot = a[k, k]
        smallest = min(smallest, abs(pivot))
        if pivot == 0.0:
            # The whole column below is zero too (it was the largest): nothing to
            # eliminate. The factorization is kept so that the caller can report it.
            logdet = -np.inf
            continue
        logdet += np.log(abs(pivot))
        for i in range(k + 1, r):
            f = a[i, k] / pivot
            a[i, k] = f
            for j in range(k + 1, r):
                a[i, j] -= f * a[k, j]
    if r == 0:
        return 0.0, 1.0
    if scale == 0.0:
        return -np.inf, 0.0
    return logdet, smallest / scale


@numba.njit(cache=True, error_model="numpy", inline="always")
def lu_solve(lu, piv, b):
    """Solves a z = b in place, given `lu_factor`'s output for a."""
    r = b.shape[0]
    for k in range(r):
        p = piv[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp
    for i in range(r):  # unit lower triangle
        acc = b[i]
        for j in range(i):
            acc -= lu[i, j] * b[j]
        b[i] = acc
    for i in range(r - 1, -1, -1):  # upper triangle
        acc = b[i]
        for j in range(i + 1, r):
            acc -= lu[i, j] * b[j]
        b[i] = acc / lu[i, i]


@numba.njit(cache=True, error_model="numpy", inline="always")
def lu_transpose_solve(lu, piv, b):
    """Solves a^T z = b in place, given `lu_factor`'s output for a.

    P a = L U gives a^T = U^T L^T P: solve with U^T (lower), then L^T (unit upper), then
    undo the row swaps in reverse order (P^T = P_0 P_1 ... P_{r-1}).
    """
    r = b.shape[0]
    for i in range(r):
        acc = b[i]
        for j in range(i):
            acc -= lu[j, i] * b[j]
        b[i] = acc / lu[i, i]
    for i in range(r - 1, -1, -1):
        acc = b[i]
        for j in range(i + 1, r):
            acc -= lu[j, i] * b[j]
        b[i] = acc
    for k in range(r - 1, -1, -1):
        p = piv[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp


# --------------------------------------------------------------------------- bind time


@numba.njit(cache=True, error_model="numpy")
def affine_prepare(L, V, d):
    """The bind-time constants of M = L + V diag(d) V^T.

    Returns:
        (W, lu, piv, log|det M|, pivot_ratio): W = L^-1 V (n x r); lu, piv the LU factors
        of C = I_r + diag(d) V^T W; log|det M| = sum log|L_ii| + log|det C|; and C's
        smallest pivot relative to its largest entry (0.0: C, hence M, is singular).
        L's diagonal must be nonzero (the caller checks it first).
    """
    n = V.shape[0]
    r = V.shape[1]
    W = np.empty((n, r))
    col = np.empty(n)
    for k in range(r):
        for i in range(n):
            col[i] = V[i, k]
        tril_solve(L, col)
        for i in range(n):
            W[i, k] = col[i]
    lu = np.zeros((r, r))
    for k in range(r):
        for m in range(r):
            acc = 0.0
            for i in range(n):
                acc += V[i, k] * W[i, m]
            lu[k, m] = d[k] * acc
        lu[k, k] += 1.0
    piv = np.empty(r, dtype=np.int64)
    logdet_c, ratio = lu_factor(lu, piv)
    logdet_l = 0.0
    for i in range(n):
        logdet_l += np.log(abs(L[i, i]))
    return W, lu, piv, logdet_l + logdet_c, ratio


# --------------------------------------------------------------------------- row cores


@numba.njit(cache=True, error_model="numpy", inline="always")
def _forward_row(x, L, V, d, shift, t, y):
    # y = L x + V (d * (V^T x)) + shift: O(n^2 / 2 + 2 n r), M is never formed.
    n = x.shape[0]
    r = d.shape[0]
    for k in range(r):
        acc = 0.0
        for j in range(n):
            acc += V[j, k] * x[j]
        t[k] = d[k] * acc
    for i in range(n):
        acc = shift[i]
        for j in range(i + 1):
            acc += L[i, j] * x[j]
        for k in range(r):
            acc += V[i, k] * t[k]
        y[i] = acc


@numba.njit(cache=True, error_model="numpy", inline="always")
def _inverse_row(y, L, V, d, shift, W, lu, piv, s, x):
    # x = z - W C^-1 (d * (V^T z)), z = L^-1 (y - shift): see the module docstring.
    n = y.shape[0]
    r = d.shape[0]
    for i in range(n):
        x[i] = y[i] - shift[i]
    tril_solve(L, x)
    for k in range(r):
        acc = 0.0
        for j in range(n):
            acc += V[j, k] * x[j]
        s[k] = d[k] * acc
    lu_solve(lu, piv, s)
    for i in range(n):
        acc = 0.0
        for k in range(r):
            acc += W[i, k] * s[k]
        x[i] -= acc


@numba.njit(cache=True, error_model="numpy", inline="always")
def _inverse_transpose_row(c, L, V, d, W, lu, piv, s, g):
    # g = M^-T c = L^-T (c - V (d * (C^-T (W^T c)))): M^T = (I + V D W^T) L^T, and the
    # push-through identity inverts (I + V D W^T) with C^T = I + W^T V D.
    n = c.shape[0]
    r = d.shape[0]
    for k in range(r):
        acc = 0.0
        for i in range(n):
            acc += W[i, k] * c[i]
        s[k] = acc
    lu_transpose_solve(lu, piv, s)
    for i in range(n):
        acc = c[i]
        for k in range(r):
            acc -= V[i, k] * d[k] * s[k]
        g[i] = acc
    tril_transpose_solve(L, g)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _forward_block(c, chunks, x, L, V, d, shift, y):
    # Rows of block c of `chunks`, with their own scratch: the body of both batch loops.
    nb = x.shape[0]
    t = np.empty(d.shape[0])
    for b in range(c * nb // chunks, (c + 1) * nb // chunks):
        _forward_row(x[b], L, V, d, shift, t, y[b])


@numba.njit(cache=True, error_model="numpy", inline="always")
def _inverse_block(c, chunks, y, L, V, d, shift, W, lu, piv, x):
    nb = y.shape[0]
    s = np.empty(d.shape[0])
    for b in range(c * nb // chunks, (c + 1) * nb // chunks):
        _inverse_row(y[b], L, V, d, shift, W, lu, piv, s, x[b])


@numba.njit(cache=True, error_model="numpy", inline="always")
def _vjp_block(c, chunks, x, cx, L, V, d, W, lu, piv, gy, gm_parts, gs_parts):
    # For the rows of block c: gy[b] = M^-T cx[b]; gm_parts[c] = sum gy[b] x[b]^T and
    # gs_parts[c] = sum gy[b].
    nb, n = x.shape
    s = np.empty(d.shape[0])
    gm = gm_parts[c]
    gs = gs_parts[c]
    for i in range(n):
        gs[i] = 0.0
        for j in range(n):
            gm[i, j] = 0.0
    for b in range(c * nb // chunks, (c + 1) * nb // chunks):
        _inverse_transpose_row(cx[b], L, V, d, W, lu, piv, s, gy[b])
        for i in range(n):
            gi = gy[b, i]
            gs[i] += gi
            for j in range(n):
                gm[i, j] += gi * x[b, j]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _sum_blocks(gm_parts, gs_parts, gm, gshift):
    chunks, n = gs_parts.shape
    for i in range(n):
        gshift[i] = 0.0
        for j in range(n):
            gm[i, j] = 0.0
    for c in range(chunks):
        for i in range(n):
            gshift[i] += gs_parts[c, i]
            for j in range(n):
                gm[i, j] += gm_parts[c, i, j]


# --------------------------------------------------------------------------- batch loops
# The helpers above are inlined (inline="always") into each kernel: Numba otherwise
# compiles every helper on its own and LLVM re-optimizes its code again inside every
# caller, which made cold compilation several times slower. A parallel kernel is one
# prange over blocks of rows; the serial kernel runs the same block body once.


@numba.njit(cache=True, error_model="numpy")
def affine_forward(x, L, V, d, shift, y):
    """y[b] = (L + V diag(d) V^T) x[b] + shift for every row b of x (batch, n)."""
    _forward_block(0, 1, x, L, V, d, shift, y)


@numba.njit(cache=True, error_model="numpy", parallel=_PRANGE_ONLY)
def affine_forward_parallel(x, L, V, d, shift, y, chunks):
    """`affine_forward` over `chunks` blocks of rows in parallel (pass ~ the thread count)."""
    chunks = max(1, min(x.shape[0], chunks))
    for c in numba.prange(chunks):
        _forward_block(c, chunks, x, L, V, d, shift, y)


@numba.njit(cache=True, error_model="numpy")
def affine_inverse(y, L, V, d, shift, W, lu, piv, x):
    """x[b] = M^-1 (y[b] - shift) for every row b, by the Woodbury identity."""
    _inverse_block(0, 1, y, L, V, d, shift, W, lu, piv, x)


@numba.njit(cache=True, error_model="numpy", parallel=_PRANGE_ONLY)
def affine_inverse_parallel(y, L, V, d, shift, W, lu, piv, x, chunks):
    """`affine_inverse` over `chunks` blocks of rows in parallel (pass ~ the thread count)."""
    chunks = max(1, min(y.shape[0], chunks))
    for c in numba.prange(chunks):
        _inverse_block(c, chunks, y, L, V, d, shift, W, lu, piv, x)


@numba.njit(cache=True, error_model="numpy")
def affine_inverse_vjp(x, cx, L, V, d, W, lu, piv, gy, gm, gshift):
    """Batch part of the inverse's vector-Jacobian product.

    Takes x = M^-1 (y - shift), the inverse's own output (a training step has it from
    its forward pass, so it is not recomputed here), and cotangents cx. Writes
    gy[b] = M^-T cx[b] (the gradient with respect to y[b]), gm = sum_b gy[b] x[b]^T and
    gshift = sum_b gy[b]; the parameter gradients follow from these two sums in
    `affine_parameter_gradients`.
    """
    n = x.shape[1]
    gm3 = gm.reshape((1, n, n))
    gs2 = gshift.reshape((1, n))
    _vjp_block(0, 1, x, cx, L, V, d, W, lu, piv, gy, gm3, gs2)


@numba.njit(cache=True, error_model="numpy", parallel=_PRANGE_ONLY)
def affine_inverse_vjp_parallel(x, cx, L, V, d, W, lu, piv, gy, gm, gshift, chunks):
    """`affine_inverse_vjp` over `chunks` blocks of rows in parallel.

    Each block accumulates its own partial sums (chunks x n x n of memory, so pass about
    the thread count), added up at the end: no two threads write one accumulator.
    """
    n = x.shape[1]
    chunks = max(1, min(x.shape[0], chunks))
    gm_parts = np.empty((chunks, n, n))
    gs_parts = np.empty((chunks, n))
    for c in numba.prange(chunks):
        _vjp_block(c, chunks, x, cx, L, V, d, W, lu, piv, gy, gm_parts, gs_parts)
    _sum_blocks(gm_parts, gs_parts, gm, gshift)


@numba.njit(cache=True, error_model="numpy")
def affine_inverse_transpose_matrix(L, V, d, W, lu, piv):
    """M^-T, column by column, by transposed Woodbury solves (a bind-time constant)."""
    n = L.shape[0]
    out = np.empty((n, n))
    e = np.empty(n)
    g = np.empty(n)
    s = np.empty(d.shape[0])
    for j in range(n):
        e[:] = 0.0
        e[j] = 1.0
        _inverse_transpose_row(e, L, V, d, W, lu, piv, s, g)
        for i in range(n):
            out[i, j] = g[i]
    return out


@numba.njit(cache=True, error_model="numpy")
def affine_parameter_gradients(gm, gshift, cildj_sum, minv_t, V, d):
    """Chain rule from dLoss/dM to the parameters.

    The loss is sum_b <cx[b], x[b]> + cildj[b] * ildj with ildj = -log|det M|:
    dLoss/dM = G = -gm - cildj_sum * M^-T (since d x / d M contracts to -M^-T c x^T and
    d log|det M| / d M = M^-T). M = L + V D V^T then gives dL = tril(G),
    dV = (G + G^T) V D, dd_k = (V^T G V)_kk, and d shift = -gshift.

    Returns:
        (d shift, d scale_tril, d scale_perturb_factor, d scale_perturb_diag).
    """
    n = gm.shape[0]
    r = d.shape[0]
    G = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            G[i, j] = -gm[i, j] - cildj_sum * minv_t[i, j]
    g_shift = np.empty(n)
    for i in range(n):
        g_shift[i] = -gshift[i]
    g_tril = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            g_tril[i, j] = G[i, j]
    g_factor = np.zeros((n, r))
    g_diag = np.zeros(r)
    for k in range(r):
        for i in range(n):
            acc = 0.0  # ((G + G^T) V)_ik
            for j in range(n):
                acc += (G[i, j] + G[j, i]) * V[j, k]
            g_factor[i, k] = acc * d[k]
            gv = 0.0  # (G V)_ik
            for j in range(n):
                gv += G[i, j] * V[j, k]
            g_diag[k] += V[i, k] * gv
    return g_shift, g_tril, g_factor, g_diag
