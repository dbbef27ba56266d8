"""What masked autoregressive and coupling layers share: a transformer (any declared
elementwise bijector) whose parameters a network computes, and compiled kernels.

A layer holds its transformer and its network (weights) and no training logic; `sf.fit`
trains it through the same generated code (`symflow.codegen.flow`). Its own forward,
inverse and log-dets run the layer's composed module, one compiled call per batch.
"""

from __future__ import annotations

import numpy as np

from symflow.bijectors.affine import StructuredBijector
from symflow.codegen.flow.conditioned import ConditionedCode
from symflow.codegen.flow.transformer import output_unconstrain
from symflow.errors import DeclarationError, ShapeError, SymflowError
from symflow.runtime.bijector import ElementwiseBijector, _scalar_out
from symflow.runtime.composed import ComposedKernels, FlowMember, composed_kernels, transformer_of

__all__ = ["ConditionedLayer", "as_transformer", "identity_parameters"]


def as_transformer(owner: str, transformer):
    """The declared elementwise bijector a layer applies (a bound one gives its
    declaration; None gives the default, shift and positive scale).

    Raises:
        DeclarationError: for anything that is not a declared elementwise bijector.
    """
    from symflow.bijectors.catalog import AffineScalar
    from symflow.runtime.declared import DeclaredBijector

    if transformer is None:
        return AffineScalar
    if isinstance(transformer, ElementwiseBijector) and transformer.declared is not None:
        return transformer.declared
    if isinstance(transformer, DeclaredBijector):
        return transformer
    kind = type(transformer).__name__
    hint = (
        " It acts on whole events; a transformer acts on one coordinate at a time."
        if hasattr(transformer, "forward_min_event_ndims")
        else ""
    )
    raise DeclarationError(
        f"{owner}: `transformer` must be a declared elementwise bijector (a catalog entry such "
        f"as sfb.SinhArcsinh, or a function decorated with @sf.bijector); got {kind} "
        f"{transformer!r}.{hint}"
    )


def identity_parameters(transformer) -> dict[str, float]:
    """Parameter values that make `transformer` the identity map, or else its defaults.

    The rule, in order (each candidate checked with the compiled forward kernel at points
    across the domain, to 1e-12):

    1. the declared defaults;
    2. the neutral values 0, 1, -1, 1/2, 2 and the defaults, tried per parameter (at most
       `_MAX_CANDIDATES` combinations, those changing fewest parameters first): this finds
       loc = 0, scale = 1, skew = 0, tail = 1 and their kind without any algebra;
    3. when f(x) = x is polynomial in the parameters, SymPy's solution of the equations at
       a few points (a nonlinear system is never handed to `solve`, which can run for
       minutes on sinh/asinh forms);
    4. else the defaults (or each constraint's typical value), so the layer starts near the
       map the user declared.
    """
    spec = transformer.spec
    defaults = {}
    for p in spec.parameters:
        defaults[p.name] = float(p.default if p.default is not None else _typical(p.constraint))
    if _is_identity(transformer, defaults):
        return defaults
    found = _search_identity(transformer, defaults)
    if found is not None:
        return found
    solved = _solve_identity(transformer)
    if solved is not None and _is_identity(transformer, solved):
        return solved
    return defaults


_NEUTRAL = (0.0, 1.0, -1.0, 0.5, 2.0)
_MAX_CANDIDATES = 4096


def _search_identity(transformer, defaults: dict[str, float]) -> dict[str, float] | None:
    """The first combination of neutral values that makes the transformer the identity."""
    import itertools

    spec = transformer.spec
    options = []
    for p in spec.parameters:
        values = [defaults[p.name]]
        values += [
            v
            for v in _NEUTRAL
            if v != defaults[p.name] and bool(p.constraint.contains(np.asarray(v)))
        ]
        options.append(values)
    names = [p.name for p in spec.parameters]
    # index 0 is the default: order combinations by how many parameters leave it
    combos = sorted(
        itertools.islice(
            itertools.product(*(range(len(o)) for o in options)), 50 * _MAX_CANDIDATES
        ),
        key=lambda c: (sum(1 for i in c if i), c),
    )
    for combo in combos[:_MAX_CANDIDATES]:
        values = {n: o[i] for n, o, i in zip(names, options, combo, strict=True)}
        if _is_identity(transformer, values):
            return values
    return None


def _typical(constraint) -> float:
    lo, hi = constraint.lo_float, constraint.hi_float
    if np.isfinite(lo) and np.isfinite(hi):
        return 0.5 * (lo + hi)
    if np.isfinite(lo):
        return lo + 1.0
    if np.isfinite(hi):
        return hi - 1.0
    return 1.0 if constraint.name == "NonZero" else 0.0


def _grid(transformer) -> np.ndarray:
    d = transformer.spec.domain
    lo, hi = d.lo_float, d.hi_float
    if np.isfinite(lo) and np.isfinite(hi):
        return lo + (hi - lo) * np.linspace(0.05, 0.95, 19)
    if np.isfinite(lo):
        return lo + np.geomspace(1e-3, 20.0, 19)
    if np.isfinite(hi):
        return hi - np.geomspace(1e-3, 20.0, 19)
    return np.concatenate([np.linspace(-4.0, 4.0, 17), [-30.0, 30.0]])


def _is_identity(transformer, values) -> bool:
    try:
        bound = transformer(**values)
    except SymflowError:
        return False
    x = _grid(transformer)
    with np.errstate(all="ignore"):
        y = np.asarray(bound.forward(x))
    return bool(np.all(np.abs(y - x) <= 1e-12 * (1.0 + np.abs(x))))


def _solve_identity(transformer) -> dict[str, float] | None:
    import sympy as sp

    spec = transformer.spec
    symbols = list(spec.parameter_symbols)
    if not symbols:
        return None
    points = [sp.Rational(int(round(v * 8)), 8) for v in _grid(transformer)[::4]]
    f = spec.forward_expr
    eqs = [sp.Eq(f.xreplace({spec.x: x0}), x0) for x0 in points[: len(symbols) + 1]]
    if not all((e.lhs - e.rhs).is_polynomial(*symbols) for e in eqs):
        return None
    try:
        solutions = sp.solve(eqs, symbols, dict=True)
    except (NotImplementedError, ValueError, TypeError):
        return None
    for sol in solutions:
        if set(sol) != set(symbols):
            continue
        try:
            values = {s.name: float(sol[s]) for s in symbols}
        except TypeError:
            continue
        ok = all(p.constraint.contains(np.asarray(values[p.name])) for p in spec.parameters)
        if ok:
            return values
    return None


def identity_bias(transformer, n_outputs_per_param: int) -> np.ndarray:
    """The network output bias that makes each transformed coordinate's parameters the
    identity values: output j * P + p gets the raw value of parameter p."""
    values = identity_parameters(transformer)
    spec = transformer.spec
    raw = []
    for p in spec.parameters:
        try:
            raw.append(output_unconstrain(p.constraint, values[p.name]))
        except ValueError as err:
            raise DeclarationError(
                f"{transformer.name}: its identity value {p.name} = {values[p.name]!r} lies "
                f"on the edge of its constraint ({p.constraint.name}), where a network output "
                "cannot reach it."
            ) from err
    return np.tile(np.array(raw, dtype=np.float64), n_outputs_per_param)


class ConditionedLayer(StructuredBijector):
    """Base of MaskedAutoregressiveFlow and RealNVP: a transformer, a network, kernels."""

    forward_min_event_ndims = 1
    #: only runs inside a composed module (its network has no per-element kernel)
    _composed = True

    def _setup(self, transformer, network, event_size: int, context_size: int) -> None:
        self.transformer = transformer
        self.network = network
        self.event_size = event_size
        self.context_size = context_size
        self._kernels: ComposedKernels | None = None
        self._transformer_info = transformer_of(transformer)

    def _code(self) -> ConditionedCode:  # pragma: no cover - each layer defines it
        raise NotImplementedError

    def _flow_members(self, event_size: int) -> list[FlowMember]:
        if event_size != self.event_size:
            raise ShapeError(
                f"{self.name}: acts on events of size {self.event_size}; the flow's events "
                f"have size {event_size}."
            )
        return [FlowMember(self._code(), self.network.values(), self.name)]

    def with_values(self, values: np.ndarray):
        """A copy with the network's weights and biases taken from `values`."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.network = self.network.with_values(values)
        clone._kernels = None
        return clone

    _from_flow_values = with_values

    # -- running ---------------------------------------------------------------------
    def _composed_kernels(self) -> ComposedKernels:
        if self._kernels is None:
            self._kernels = composed_kernels(
                self._flow_members(self.event_size), None, context_size=self.context_size,
                name=self.name,
            )  # fmt: skip
        return self._kernels

    def _run(self, kernel: str, values, context):
        return self._composed_kernels().run(kernel, values, context)

    def forward(self, x, context=None):
        """y = f(x), for x of shape (..., event_size) (and a context, if conditional)."""
        return self._run("forward_and_log_det", x, context)[0]

    def inverse(self, y, context=None):
        """x = f^-1(y)."""
        return self._run("inverse_and_log_det", y, context)[0]

    def forward_and_log_det(self, x, context=None):
        """(f(x), log|det J_f(x)|) in one compiled call."""
        y, ldj = self._run("forward_and_log_det", x, context)
        return y, _scalar_out(ldj)

    def inverse_and_log_det(self, y, context=None):
        """(f^-1(y), log|det J_{f^-1}(y)|) in one compiled call."""
        x, ldj = self._run("inverse_and_log_det", y, context)
        return x, _scalar_out(ldj)

    def forward_log_det_jacobian(self, x, event_ndims: int | None = None, context=None):
        """log|det J_f(x)|, summed over event_ndims - 1 further axes."""
        ldj = self._run("forward_and_log_det", x, context)[1]
        return _scalar_out(self._reduce(ldj, event_ndims, np.asarray(x)))

    def inverse_log_det_jacobian(self, y, event_ndims: int | None = None, context=None):
        """log|det J_{f^-1}(y)|."""
        ldj = self._run("inverse_and_log_det", y, context)[1]
        return _scalar_out(self._reduce(ldj, event_ndims, np.asarray(y)))

    def _forward(self, x):
        return self.forward(x)

    def _inverse(self, y):
        return self.inverse(y)

    def _forward_log_det_jacobian(self, x):
        return self._run("forward_and_log_det", x, None)[1]

    def _inverse_log_det_jacobian(self, y):
        return self._run("inverse_and_log_det", y, None)[1]
