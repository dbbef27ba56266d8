"""Bound bijectors: TFP's API over numpy arrays, calling compiled kernels.

`Bijector` is the base: a subclass supplies elementwise `_forward`, `_inverse`,
`_forward_log_det_jacobian` (and may supply `_inverse_log_det_jacobian`); the base handles
input conversion, `event_ndims` reduction and shapes. No SymPy on any of these paths.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from symflow.errors import ConstraintError, DomainError, ShapeError, SymflowError
from symflow.runtime.ends import repair_ends
from symflow.runtime.float32 import Float32Choice, float32_choice

__all__ = [
    "Bijector",
    "ElementwiseBijector",
    "as_float_array",
    "broadcast_flat",
    "validate_parameter",
]


def as_float_array(value, what: str) -> np.ndarray:
    """`value` as a float32 or float64 array (float32 kept; ints and bools become float64).

    Raises:
        ShapeError: if `value` is not a real numeric array.
    """
    arr = np.asarray(value)
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        return arr
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    raise ShapeError(f"{what}: expected real numbers; got an array of dtype {arr.dtype}.")


class Bijector:
    """Base of every bound bijector (TFP's API): forward, inverse and their log-dets.

    Subclasses implement the elementwise (or event-wise, for `forward_min_event_ndims > 0`)
    methods `_forward`, `_inverse`, `_forward_log_det_jacobian`; `_inverse_log_det_jacobian`
    defaults to -fldj(inverse(y)).
    """

    name = "bijector"
    forward_min_event_ndims = 0
    #: Set where the inverse side's minimal event rank differs (FillTriangular: 1 vs 2).
    _inverse_min_event_ndims: int | None = None

    @property
    def inverse_min_event_ndims(self) -> int:
        """The event rank of y that one log-det covers (TFP's name)."""
        if self._inverse_min_event_ndims is None:
            return self.forward_min_event_ndims
        return self._inverse_min_event_ndims

    def forward(self, x):
        """y = f(x); numpy in, numpy out, any batch shape, float32 or float64 kept."""
        return _scalar_out(self._forward(as_float_array(x, f"{self.name}.forward")))

    def inverse(self, y):
        """x = f^-1(y)."""
        return _scalar_out(self._inverse(as_float_array(y, f"{self.name}.inverse")))

    def forward_log_det_jacobian(self, x, event_ndims: int | None = None):
        """log|det J_f(x)|, summed over the last `event_ndims` axes (TFP semantics)."""
        x = as_float_array(x, f"{self.name}.forward_log_det_jacobian")
        return _scalar_out(self._reduce(self._forward_log_det_jacobian(x), event_ndims, x))

    def inverse_log_det_jacobian(self, y, event_ndims: int | None = None):
        """log|det J_{f^-1}(y)|, summed over the last `event_ndims` axes."""
        y = as_float_array(y, f"{self.name}.inverse_log_det_jacobian")
        ldj = self._inverse_log_det_jacobian(y)
        return _scalar_out(self._reduce(ldj, event_ndims, y, self.inverse_min_event_ndims))

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(self._inverse(y))

    def forward_and_log_det(self, x):
        """(f(x), log|det J_f(x)|) over the minimal event dims."""
        x = as_float_array(x, f"{self.name}.forward_and_log_det")
        return _scalar_out(self._forward(x)), _scalar_out(self._forward_log_det_jacobian(x))

    def inverse_and_log_det(self, y):
        """(f^-1(y), log|det J_{f^-1}(y)|) over the minimal event dims."""
        y = as_float_array(y, f"{self.name}.inverse_and_log_det")
        return _scalar_out(self._inverse(y)), _scalar_out(self._inverse_log_det_jacobian(y))

    #: True for layers that only run inside a composed flow module (network layers)
    _composed = False

    def _flow_members(self, event_size: int) -> list:
        """This bijector as members of a composed flow, in inverse-pass order
        (`symflow.runtime.composed.FlowMember`s).

        Raises:
            SymflowError: for a bijector that cannot be part of one.
        """
        raise SymflowError(
            f"{self.name} cannot be part of a compiled flow with network layers yet; members "
            "may be declared elementwise bijectors (scalar parameters), Affine, "
            "ScaleMatvecTriL, Permute, MaskedAutoregressiveFlow and RealNVP, in any Chain."
        )

    def _from_flow_values(self, values: np.ndarray) -> Bijector:
        """This bijector with parameters from a composed flow's q (`_flow_members` order)."""
        return self

    def _derivative_sign(self, x) -> np.ndarray:
        """+1 where f is increasing at x, -1 where decreasing (scalar events only).

        TransformedDistribution.cdf needs it: a decreasing map turns F into 1 - F.
        """
        raise NotImplementedError(f"{self.name}: the sign of f' is defined for scalar maps only.")

    def _reduce(
        self, ldj: np.ndarray, event_ndims: int | None, arr: np.ndarray, minimum: int | None = None
    ):
        minimum = self.forward_min_event_ndims if minimum is None else minimum
        event_ndims = minimum if event_ndims is None else event_ndims
        if not isinstance(event_ndims, (int, np.integer)) or event_ndims < minimum:
            raise ShapeError(
                f"{self.name}: event_ndims must be an integer >= {minimum}; got {event_ndims!r}."
            )
        if event_ndims > arr.ndim:
            raise ShapeError(
                f"{self.name}: event_ndims={event_ndims} exceeds the rank of the input "
                f"(shape {arr.shape}). Pass event_ndims <= {arr.ndim}."
            )
        extra = int(event_ndims) - minimum
        if extra == 0:
            return ldj
        return ldj.sum(axis=tuple(range(ldj.ndim - extra, ldj.ndim)))

    def __repr__(self) -> str:
        return f"<symflow bijector {self.name}>"


def _scalar_out(arr: np.ndarray):
    return arr[()] if isinstance(arr, np.ndarray) and arr.ndim == 0 else arr


class ElementwiseBijector(Bijector):
    """A declared scalar bijector bound to parameter values, running its generated module.

    Parameters are float64 arrays; each must broadcast against the input (a scalar, or an
    array shaped like the input, or anything numpy broadcasting accepts).
    """

    def __init__(
        self, name: str, module: ModuleType, parameters: dict, describe: dict, declared=None
    ) -> None:
        self.name = name
        #: the `DeclaredBijector` this was bound from (a fused chain reads its maths)
        self.declared = declared
        self._module = module
        self._params = parameters
        self._describe = describe
        self._param_list = [parameters[p] for p in module.PARAMETERS]

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        """The bound parameter values (float64 arrays), by name."""
        return dict(self._params)

    @property
    def module(self) -> ModuleType:
        """The generated kernel module (its file is `module.__file__`)."""
        return self._module

    def _prepare(self, arr: np.ndarray, what: str):
        names = self._module.PARAMETERS
        return broadcast_flat(f"{self.name}.{what}", arr, self._param_list, names)

    def _run(self, kernel: str, arr: np.ndarray, n_out: int):
        shape, flat, params = self._prepare(arr, kernel)
        out = np.empty((n_out, flat.shape[0]), dtype=flat.dtype)
        parallel = flat.shape[0] >= self._module.PARALLEL_THRESHOLD
        name = kernel
        if flat.dtype == np.float32 and kernel in self._module.FLOAT32_KERNELS:
            if float32_choice(
                self._module, kernel, n_out, params, self._describe["domain"]
            ).float32:
                name = kernel + "_f32"
        fn = getattr(self._module, name + ("_parallel" if parallel else ""))
        bad = fn(flat, *params, out)
        if bad:
            self._raise_outside(kernel, flat, params, out, bad)
        with np.errstate(invalid="ignore"):  # inf + -inf is nan: also a reason to look
            total = np.add.reduce(out, axis=None)
        if not math.isfinite(total):
            # one reduction finds any nan or inf; inputs exactly at an end get the limit
            # there, a nan elsewhere raises (symflow.runtime.ends)
            self._repair_ends(kernel, flat, params, out)
        return [o.reshape(shape) for o in out]

    def _interval(self, side_y: bool, pvals: list[float]) -> tuple[float, float]:
        if side_y and hasattr(self._module, "codomain_scalar"):
            return tuple(float(b) for b in self._module.codomain_scalar(*pvals))
        return tuple(float(b) for b in self._describe["codomain" if side_y else "domain"])

    def _repair_ends(self, kernel, flat, params, out) -> None:
        fn = getattr(self._module, kernel)  # the float64 serial kernel

        def evaluate(points, pvals):
            values = np.empty((out.shape[0], points.shape[0]))
            fn(points, *pvals, values)
            return values

        side_y = "inverse" in kernel
        repair_ends(
            self.name,
            kernel,
            flat,
            params,
            out,
            lambda pvals: self._interval(side_y, pvals),
            lambda pvals: self._interval(not side_y, pvals),
            evaluate,
            self.__dict__.setdefault("_end_limits", {}).setdefault(kernel, {}),
        )

    def _raise_outside(self, kernel, flat, params, out, bad) -> None:
        side = "inverse" in kernel
        region = "codomain" if side else "domain"
        suspects = np.flatnonzero(np.isnan(out[0]) & ~np.isnan(flat))
        i = int(suspects[0]) if suspects.size else 0
        lo, hi = self._describe["codomain" if side else "domain"]
        if side and hasattr(self._module, "codomain_scalar"):
            lo, hi = self._module.codomain_scalar(
                *(float(p[i if p.size > 1 else 0]) for p in params)
            )
        arg = "y" if side else "x"
        raise DomainError(
            f"{self.name}.{kernel}: {arg} must lie in the {region} [{lo:g}, {hi:g}]; got "
            f"{float(flat[i])!r} at flat index {i} ({bad} of {flat.shape[0]} values outside). "
            f"{'Values at a finite end map to the limit there. ' if side else ''}"
            f"Check the input, or use a bijector whose {region} covers it."
        )

    def _forward(self, x):
        return self._run("forward", x, 1)[0]

    def _inverse(self, y):
        return self._run("inverse", y, 1)[0]

    def _forward_log_det_jacobian(self, x):
        return self._run("forward_log_det_jacobian", x, 1)[0]

    def _inverse_log_det_jacobian(self, y):
        return self._run("inverse_log_det_jacobian", y, 1)[0]

    def forward_and_log_det(self, x):
        """(f(x), log|f'(x)|) in one pass over memory."""
        y, ldj = self._run("forward_and_log_det", as_float_array(x, self.name), 2)
        return _scalar_out(y), _scalar_out(ldj)

    def inverse_and_log_det(self, y):
        """(f^-1(y), log|(f^-1)'(y)|) in one pass over memory."""
        x, ldj = self._run("inverse_and_log_det", as_float_array(y, self.name), 2)
        return _scalar_out(x), _scalar_out(ldj)

    def float32_choices(self, kernels: tuple[str, ...] | None = None) -> list[Float32Choice]:
        """How float32 inputs are computed, per kernel, at the bound parameter values.

        Args:
            kernels: the kernels to report (default: forward, inverse, both log-dets and the
                two `*_and_log_det` kernels); each one measured costs a compilation.

        Each kernel with a float32 variant is measured against its float64 kernel on a
        float32 grid (see `symflow.runtime.float32`); the float32 variant is used only where
        it stays within a few float32 ULP. The others compute in float64 and round.

        Example:
            >>> from symflow.bijectors import Sinh
            >>> [c.float32 for c in Sinh().float32_choices()]  # doctest: +SKIP
            [True, True, True, True, True, True]
        """
        params = [p.reshape(-1) for p in self._param_list]
        widths = {"forward_and_log_det": 2, "inverse_and_log_det": 2}
        kernels = kernels or (
            "forward",
            "inverse",
            "forward_log_det_jacobian",
            "inverse_log_det_jacobian",
            "forward_and_log_det",
            "inverse_and_log_det",
        )
        return [
            float32_choice(self._module, k, widths.get(k, 1), params, self._describe["domain"])
            for k in kernels
        ]

    def _from_flow_values(self, values: np.ndarray) -> ElementwiseBijector:
        """A copy bound to parameter values from a composed flow's q (declaration order)."""
        names = self._module.PARAMETERS
        return self.declared(**{p: float(v) for p, v in zip(names, values, strict=True)})

    def _flow_members(self, event_size: int) -> list:
        from symflow.runtime.composed import elementwise_member

        if self.declared is None:
            return super()._flow_members(event_size)
        return [elementwise_member(self, event_size)]

    def _derivative_sign(self, x) -> np.ndarray:
        dfdx = self._run("forward_partials", x, 1 + len(self._param_list))[0]
        return np.where(dfdx < 0, -1.0, 1.0)

    def partials(self, quantity: str, value) -> dict[str, np.ndarray]:
        """Elementwise partial derivatives of a quantity with respect to input and parameters.

        Args:
            quantity: 'forward' or 'forward_log_det_jacobian' (at x), 'inverse' or
                'inverse_log_det_jacobian' (at y).
            value: the input, x or y.

        Returns:
            {'input': d/d input, '<parameter>': d/d parameter, ...}, each shaped like the
            broadcast input.
        """
        names = ("forward", "inverse", "forward_log_det_jacobian", "inverse_log_det_jacobian")
        if quantity not in names:
            raise ValueError(
                f"{self.name}.partials: quantity must be one of {names}; got {quantity!r}."
            )
        rows = self._run(
            quantity + "_partials",
            as_float_array(value, self.name),
            1 + len(self._param_list),
        )
        return dict(zip(("input", *self._module.PARAMETERS), rows, strict=False))


def broadcast_flat(owner: str, arr: np.ndarray, params, names) -> tuple:
    """(broadcast shape, flat contiguous input, flat parameters) for a batch kernel.

    A parameter of one value stays length 1 (the kernel reads it with stride 0); any
    other is broadcast to the input's shape and flattened.

    Raises:
        ShapeError: naming each parameter's shape, if they do not broadcast with the input.
    """
    try:
        shape = np.broadcast_shapes(arr.shape, *(p.shape for p in params))
    except ValueError as err:
        given = ", ".join(f"{n}: {p.shape}" for n, p in zip(names, params, strict=True))
        raise ShapeError(
            f"{owner}: input of shape {arr.shape} does not broadcast against the parameters "
            f"({given}). Give each parameter a scalar or a shape that broadcasts with the input."
        ) from err
    if arr.shape != shape:
        arr = np.broadcast_to(arr, shape)
    flat = np.ascontiguousarray(arr).reshape(-1)
    flat_params = [
        p.reshape(1)
        if p.size == 1
        else np.ascontiguousarray(np.broadcast_to(p, shape)).reshape(-1)
        for p in params
    ]
    return shape, flat, flat_params


def validate_parameter(owner: str, name: str, value, constraint) -> np.ndarray:
    """`value` as a float64 array inside `constraint`.

    Raises:
        ConstraintError: naming the parameter, its constraint and the offending value.
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConstraintError(
            f"{owner}: `{name}` must be a real number or array; got {value!r}."
        ) from err
    inside = constraint.contains(arr)
    if not np.all(inside):
        bad = arr[~inside].flat[0] if arr.ndim else arr
        hint = (
            " Pass a positive value, or declare it sf.Real if negative values are meant."
            if constraint.name == "Positive"
            else " Pass a value inside the constraint."
        )
        raise ConstraintError(
            f"{owner}: `{name}` must be in {constraint.describe()} ({constraint.name}); got "
            f"{float(bad)!r}.{hint}"
        )
    return arr
