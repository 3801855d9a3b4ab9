"""Trust, checked: run two optimizers side by side and say where, if anywhere, they part.

:func:`compare` feeds a candidate and a reference ``optax.GradientTransformation`` the same stream of
gradients and the same parameters, step by step, and compares their updates.
:func:`compare_trajectories` lets each optimizer move its own parameters on a real objective
(Rosenbrock, or a small MLP on two moons) and compares the paths.

Why the defaults are strong (each realistic bug class below has a planted example in the tests):

- gradient scales: every leaf of the default tree has its own gradient scale, from 30 down to 1e-6,
  held for the whole run, so a leaf sits where ``eps`` dominates the denominator (a misplaced
  ``eps`` changes its updates by orders of magnitude) while another sits where it does not;
- leaf shapes: a scalar, a length-1 vector, odd shapes (7, 5), (3, 1, 2) and a vector of 33;
- gradients have a per-leaf mean (momentum builds up) and exact zeros (division-by-zero guards);
- 1000 steps, so bugs in step counting or bias correction that appear only after hundreds of steps
  (a count that saturates at 256, say) show up;
- dtypes float32, bfloat16 and float64 (float64 runs under ``jax.enable_x64``);
- factories are also checked with a learning-rate schedule that changes at every step, so a
  schedule read at the wrong step count shows up;
- ``adamw``-style transformations get the reference's parameters at every step, so weight decay in
  the wrong place (before the rescaling, not scaled by the learning rate) shows up.

The error of step ``t`` is, for each leaf, ``max|u_cand - u_ref|`` over the leaf divided by the
leaf's scale: its largest reference update at that step, or its RMS reference update over the whole
run if that is larger; then the maximum over leaves and seeds. Measuring against the leaf's scale
rather than element by element keeps rounding in cancelling sums (a Nesterov look-ahead, a centered
variance, a first moment of zero-mean gradients, a one-element leaf whose update passes through
zero) from raising false alarms, while a leaf's gradient scale is uniform by construction so a bug
cannot hide under a larger neighbour.
Non-finite values must match exactly (NaN where the reference has NaN, the same infinities).

Tolerance rule (:func:`default_rtol`): the two must agree to two thirds of the dtype's significant
bits, but are never held to fewer than 8 ulps: ``rtol = max(eps ** (2/3), 8 eps)`` for the dtype's
machine epsilon ``eps``. That is 2.4e-5 for float32 (about 200 ulps), 3.7e-11 for float64, and
6.3e-2 for bfloat16 (8 ulps; with 8 significant bits, a momentum buffer summing about ten rounded
terms loses several ulps to a mere reordering, as a test shows). Reordered arithmetic differs by a
few ulps per operation and the moving averages forget old rounding errors as they forget old
gradients, so a correct implementation stays well inside; a bug changes some leaf's updates by a
factor that these levels catch down to about 1e-4 in float32 and float64, and 10% in bfloat16.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab.optim import catalogue
from lab.optim.classic import optax_momentum

Array = jax.Array
Transformation = optax.GradientTransformation
Factory = Callable[..., optax.GradientTransformation]

DEFAULT_DTYPES = ("float32", "bfloat16", "float64")
DEFAULT_SEEDS = (0, 1)
DEFAULT_STEPS = 1000
# The default tree: odd shapes, a scalar, a length-1 vector; one gradient scale per leaf.
DEFAULT_TREE: dict[str, tuple[int, ...]] = {
    "w": (7, 5),
    "b": (33,),
    "scalar": (),
    "one": (1,),
    "cube": (3, 1, 2),
    "tiny": (4,),
}
DEFAULT_SCALES: dict[str, float] = {"w": 1.0, "b": 1e-3, "scalar": 30.0, "one": 1e-6, "cube": 0.1,
                                    "tiny": 1e-6}

__all__ = [
    "BUILTIN_SETTINGS",
    "CaseResult",
    "REFERENCES",
    "Failure",
    "TrajectoryReport",
    "VerifyReport",
    "compare",
    "compare_trajectories",
    "default_rtol",
    "json_safe",
    "optax_momentum",
    "oscillating_schedule",
]


def default_rtol(dtype: Any) -> float:
    """``max(eps ** (2/3), 8 eps)`` for the dtype's machine epsilon (see the module doc)."""
    eps = float(jnp.finfo(jnp.dtype(dtype)).eps)
    return max(eps ** (2.0 / 3.0), 8 * eps)


def oscillating_schedule(learning_rate: float) -> Callable[[Array], Array]:
    """``lr * (1 + 0.5 sin(0.3 t + 1))``: a schedule that differs at every step (by up to 15%)."""

    def schedule(count: Array) -> Array:
        t = jnp.asarray(count).astype(jnp.asarray(learning_rate * 1.0).dtype)
        return learning_rate * (1 + 0.5 * jnp.sin(0.3 * t + 1))

    return schedule


@dataclasses.dataclass(frozen=True)
class Failure:
    """Where a comparison first parted: step, leaf and element, with both values."""

    case: str  # e.g. "constant lr, bfloat16"
    step: int  # 0-based update index
    seed: int
    leaf: str  # key path, e.g. "['w']"
    shape: tuple[int, ...]
    dtype: str  # the case's dtype: the params' and gradients' dtype, which updates must keep
    index: tuple[int, ...]  # the element with the largest error in that leaf
    candidate: float
    reference: float
    error: float  # the leaf's relative error at that step (inf where the update dtypes differ)
    tolerance: float
    candidate_dtype: str = ""  # the dtype of the candidate's update of this leaf ("" = ``dtype``)
    reference_dtype: str = ""  # the dtype of the reference's update of this leaf ("" = ``dtype``)

    @property
    def dtype_mismatch(self) -> bool:
        """True when the two updates of this leaf have different dtypes (then ``error`` is inf)."""
        return (self.candidate_dtype or self.dtype) != (self.reference_dtype or self.dtype)

    def __str__(self) -> str:
        where = f"{self.case}: step {self.step} (seed {self.seed}), leaf {self.leaf} shape {self.shape}"
        if self.dtype_mismatch:
            return (f"{where}: candidate update dtype {self.candidate_dtype} != reference "
                    f"{self.reference_dtype} (params and gradients are {self.dtype}; updates must keep "
                    f"the reference's dtype); values at {self.index}: candidate {self.candidate:.8g}, "
                    f"reference {self.reference:.8g}")
        return (f"{where} {self.dtype} at {self.index}: candidate {self.candidate:.8g}, reference "
                f"{self.reference:.8g} (relative error {self.error:.3g} > tolerance {self.tolerance:.3g})")


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One setting x dtype of a comparison; ``step_errors[t]`` is step ``t``'s relative error."""

    setting: str  # "constant lr" or "schedule"
    dtype: str
    steps: int
    tolerance: float
    step_errors: np.ndarray  # (steps,) float64: max over leaves and seeds; inf where non-finite parts
    max_abs_error: float
    failure: Failure | None

    @property
    def label(self) -> str:
        return f"{self.setting}, {self.dtype}"

    @property
    def passed(self) -> bool:
        return self.failure is None

    @property
    def max_rel_error(self) -> float:
        return float(np.max(self.step_errors)) if self.step_errors.size else 0.0


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """The verdict of :func:`compare`, with every case's per-step errors.

    For a figure of error against step: ``report.step_errors`` is (cases, steps), ``report.labels``
    names each row and ``report.tolerances`` gives each row's tolerance.
    """

    candidate: str
    reference: str
    cases: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    @property
    def failure(self) -> Failure | None:
        """The first failing case's diagnostics, or None."""
        return next((c.failure for c in self.cases if c.failure is not None), None)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.cases), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.cases), default=0.0)

    @property
    def step_errors(self) -> np.ndarray:
        """(cases, steps) per-step relative errors, one row per case (see :attr:`labels`)."""
        return np.stack([c.step_errors for c in self.cases]) if self.cases else np.zeros((0, 0))

    @property
    def tolerances(self) -> np.ndarray:
        """(cases,) the tolerance each row of :attr:`step_errors` was held to."""
        return np.array([c.tolerance for c in self.cases])

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.cases]

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{verdict}: {self.candidate} vs {self.reference}: max relative error "
                 f"{self.max_rel_error:.3g}, max absolute error {self.max_abs_error:.3g}"]
        if self.failure is not None:
            lines.append(f"  first parted at {self.failure}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the per-step arrays).

        Non-finite numbers (an infinite error where non-finite values or dtypes differ, a NaN
        update) are written as ``None``, so ``json.dumps(report.to_dict(), allow_nan=False)`` is
        strict JSON.
        """
        return json_safe({
            "candidate": self.candidate,
            "reference": self.reference,
            "passed": self.passed,
            "max_rel_error": self.max_rel_error,
            "max_abs_error": self.max_abs_error,
            "cases": [
                {"setting": c.setting, "dtype": c.dtype, "steps": c.steps, "tolerance": c.tolerance,
                 "max_rel_error": c.max_rel_error, "max_abs_error": c.max_abs_error, "passed": c.passed,
                 "failure": None if c.failure is None else dataclasses.asdict(c.failure)}
                for c in self.cases
            ],
        })


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (inf, -inf, NaN) replaced by ``None``, recursively
    through dicts, lists and tuples (tuples become lists); NumPy scalars become Python numbers.

    JSON has no infinities or NaN: ``json.dumps`` would otherwise write ``Infinity``/``NaN``, which
    strict parsers (and ``json.loads(..., parse_constant=...)``) reject.
    """
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ----------------------------------------------------------------------------- the gradient stream


def _gradient_stream(seed: int, steps: int, shapes: list[tuple[int, ...]], scales: list[float]
                     ) -> list[np.ndarray]:
    """Per leaf, (steps, *shape) float32 gradients ``scale * (mean + noise)``, about 10% exact zeros.

    Drawn with NumPy up front (cheap, and nothing random to compile into the scan).
    """
    rng = np.random.default_rng(seed)
    out = []
    for shape, scale in zip(shapes, scales, strict=True):
        mean = rng.standard_normal(shape)
        g = mean + rng.standard_normal((steps, *shape))
        g[rng.random((steps, *shape)) < 0.1] = 0.0
        out.append((scale * g).astype(np.float32))
    return out


def _name(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__


def _leaf_errors(c: np.ndarray, r: np.ndarray) -> dict[str, np.ndarray]:
    """Per seed and step, one leaf's relative and absolute error and its worst element.

    ``c`` and ``r`` are (seeds, steps, *shape) updates; returns arrays of shape (seeds, steps).
    """
    n_seeds, steps = r.shape[:2]
    dtypes = {"cand_dtype": np.dtype(c.dtype).name, "ref_dtype": np.dtype(r.dtype).name}
    dtype_ok = c.dtype == r.dtype  # updates must keep the reference's dtype
    c = c.astype(np.float64).reshape(n_seeds, steps, -1)
    r = r.astype(np.float64).reshape(n_seeds, steps, -1)
    if r.shape[-1] == 0:
        zeros = np.zeros((n_seeds, steps))
        return {"rel": zeros, "abs": zeros, "idx": zeros.astype(int), "cand": zeros, "ref": zeros, **dtypes}
    finite_r, finite_c = np.isfinite(r), np.isfinite(c)
    # Non-finite values must match exactly: NaN for NaN, the same infinity.
    same_nonfinite = np.where(finite_r, finite_c, (c == r) | (np.isnan(c) & np.isnan(r)))
    with np.errstate(invalid="ignore"):
        diff = np.where(finite_r & finite_c, np.abs(c - r), 0.0)
    diff = np.where(same_nonfinite, diff, np.inf)
    idx = np.argmax(diff, axis=-1)
    abs_err = np.take_along_axis(diff, idx[..., None], -1)[..., 0]
    ref_abs = np.where(finite_r, np.abs(r), 0.0)
    # The leaf's scale at step t: its largest update then, or its RMS update over the whole run if
    # larger, so a step where terms cancel (a Nesterov look-ahead, a momentum buffer turning) to
    # almost nothing does not turn a few ulps of rounding into a large relative error.
    typical = np.sqrt(np.mean(np.square(ref_abs), axis=(1, 2)))[:, None]  # (seeds, 1)
    scale = np.maximum(np.max(ref_abs, axis=-1), typical)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(abs_err == 0, 0.0, abs_err / scale)
    if not dtype_ok:
        rel = np.full_like(rel, np.inf)
    pick = lambda x: np.take_along_axis(x, idx[..., None], -1)[..., 0]  # noqa: E731
    return {"rel": rel, "abs": abs_err, "idx": idx, "cand": pick(c), "ref": pick(r), **dtypes}


def _run_case(cand: Transformation, ref: Transformation, shapes: Any, scales: Any, dtype, steps: int,
              seeds: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Scan ``steps`` updates of both on the same gradients and params, vmapped over seeds."""
    leaves_shapes, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    leaves_shapes = [tuple(s) for s in leaves_shapes]
    leaf_scales = [float(x) for x in jax.tree.leaves(scales)]
    if not leaves_shapes:  # the empty tree: nothing to update, nothing to compare
        return []
    streams = [_gradient_stream(s, steps + 1, leaves_shapes, leaf_scales) for s in seeds]
    # Row 0 of each stream (scale removed) is the initial params; rows 1.. are the gradients.
    params0 = [np.stack([st[i][0] / max(sc, 1e-30) for st in streams])
               for i, sc in enumerate(leaf_scales)]
    grads = [np.stack([st[i][1:] for st in streams]) for i in range(len(leaves_shapes))]

    def one_seed(params0, grads):
        params0 = treedef.unflatten([p.astype(dtype) for p in params0])
        grads = [g.astype(dtype) for g in grads]
        c_state = cand.init(params0)
        with jax.numpy_dtype_promotion("standard"):  # optax itself is not strict-promotion clean
            r_state = ref.init(params0)

        def step(carry, g_t):
            params, c_state, r_state = carry
            g_t = treedef.unflatten(g_t)
            c_upd, c_state = cand.update(g_t, c_state, params)
            with jax.numpy_dtype_promotion("standard"):
                r_upd, r_state = ref.update(g_t, r_state, params)
            c_leaves, r_leaves = jax.tree.leaves(c_upd), jax.tree.leaves(r_upd)
            if len(c_leaves) != len(r_leaves):
                raise ValueError("candidate and reference updates have different tree structures")
            for c, r in zip(c_leaves, r_leaves, strict=True):
                if c.shape != r.shape:
                    raise ValueError(f"candidate update shape {c.shape} differs from the "
                                     f"reference's {r.shape}")
            # Both see the reference's parameters, so a difference cannot compound through them.
            with jax.numpy_dtype_promotion("standard"):
                params = optax.apply_updates(params, r_upd)
            return (params, c_state, r_state), (c_leaves, r_leaves)

        return jax.lax.scan(step, (params0, c_state, r_state), grads)[1]

    # The compiled program is only the two optimizers; errors are measured afterwards in NumPy.
    # The program is tiny and runs once: XLA's backend optimizations cost more than they save.
    compiled = jax.jit(jax.vmap(one_seed)).lower(params0, grads).compile(
        compiler_options={"xla_backend_optimization_level": 0})
    c_all, r_all = compiled(params0, grads)
    return [_leaf_errors(np.asarray(c), np.asarray(r)) for c, r in zip(c_all, r_all, strict=True)]


def _leaf_info(shapes: Any, dtype) -> list[tuple[str, tuple[int, ...]]]:
    paths = jax.tree_util.tree_flatten_with_path(shapes, is_leaf=lambda x: isinstance(x, tuple))[0]
    return [(jax.tree_util.keystr(p) or "<root>", tuple(s)) for p, s in paths]


def _evaluate(per_leaf: list[dict[str, np.ndarray]], info, setting: str, dtype_name: str,
              seeds: Sequence[int], rtol: float, steps: int) -> CaseResult:
    if not per_leaf:
        return CaseResult(setting, dtype_name, steps, rtol, np.zeros(steps), 0.0, None)
    outs = {k: np.stack([leaf[k] for leaf in per_leaf], axis=-1) for k in per_leaf[0]
            if not k.endswith("_dtype")}
    rel = np.where(np.isnan(outs["rel"]), np.inf, outs["rel"])  # (seeds, steps, leaves)
    step_errors = rel.max(axis=(0, 2))
    failure = None
    bad = rel > rtol
    if bad.any():
        t = int(np.argmax(bad.any(axis=(0, 2))))
        s_i, leaf_i = (int(i) for i in np.argwhere(bad[:, t, :])[0])
        path, shape = info[leaf_i]
        flat = int(outs["idx"][s_i, t, leaf_i])
        index = tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()
        failure = Failure(f"{setting}, {dtype_name}", t, int(seeds[s_i]), path, shape, dtype_name, index,
                          float(outs["cand"][s_i, t, leaf_i]), float(outs["ref"][s_i, t, leaf_i]),
                          float(rel[s_i, t, leaf_i]), rtol, per_leaf[leaf_i]["cand_dtype"],
                          per_leaf[leaf_i]["ref_dtype"])
    return CaseResult(setting, dtype_name, steps, rtol, step_errors, float(np.max(outs["abs"])), failure)


def _build(obj: Transformation | Factory, kwargs: Mapping[str, Any], setting: str = "") -> Transformation:
    if isinstance(obj, optax.GradientTransformation):
        return obj
    if setting != "schedule":
        tx = obj(**kwargs)
    else:
        try:
            tx = obj(**kwargs)
        except Exception as err:  # learning_rate may be a schedule, as in optax: say so in one line
            raise TypeError(f"{_name(obj)} fails when learning_rate is a schedule ({type(err).__name__}: "
                            f"{_first_line(err)}); optax factories accept schedules (schedule=False, or "
                            "lab verify --no-schedule, skips them)") from err
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(f"{_name(obj)}(**kwargs) returned {type(tx).__name__}, not an "
                        "optax.GradientTransformation: expected an optimizer factory")
    return tx


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""


# ----------------------------------------------------------------------------- references


REFERENCES: dict[str, Factory] = {e.name: e.reference for e in catalogue.entries()}


# optax modules whose public functions are optimizer factories: the aliases (adam, sgd, lion, ...)
# and the ``scale_by_*`` transformations.
_OPTAX_OPTIMIZER_MODULES = ("optax._src.alias", "optax._src.transform")


def _resolve_reference(reference: Transformation | Factory | str) -> tuple[str, Transformation | Factory]:
    """A reference by name: one of :data:`REFERENCES`, an optax optimizer alias (``adam``, ``lion``,
    ...) or an optax ``scale_by_*`` transformation. Other optax functions (``chain``,
    ``apply_updates``, schedules, losses) are refused with a ValueError; what a factory returns is
    checked to be an ``optax.GradientTransformation`` when it is called."""
    if not isinstance(reference, str):
        return _name(reference), reference
    if reference in REFERENCES:
        return f"optax {reference}", REFERENCES[reference]
    factory = getattr(optax, reference, None)
    if reference.startswith("_") or not callable(factory):
        raise ValueError(f"optax has no optimizer named {reference!r}")
    module = getattr(factory, "__module__", "")
    is_optimizer = inspect.isfunction(factory) and (
        module == _OPTAX_OPTIMIZER_MODULES[0]
        or (module == _OPTAX_OPTIMIZER_MODULES[1] and reference.startswith("scale_by_")))
    if not is_optimizer:
        raise ValueError(f"optax.{reference} is not an optimizer factory; the reference must be an optax "
                         "optimizer such as adam, sgd, rmsprop or a scale_by_* transformation")
    return f"optax.{reference}", factory


# The settings `lab verify` checks each built-in in: (name, kwargs), from the catalogue.
BUILTIN_SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = tuple(
    (e.name, dict(kw)) for e in catalogue.entries() for kw in e.verify)


def compare(candidate: Transformation | Factory, reference: Transformation | Factory | str,
            kwargs: Mapping[str, Any] | None = None, *, steps: int = DEFAULT_STEPS,
            seeds: Sequence[int] = DEFAULT_SEEDS, dtypes: Sequence[Any] = DEFAULT_DTYPES,
            tree: Any = None, scales: Any = None, rtol: float | Mapping[str, float] | None = None,
            schedule: bool = True, fail_fast: bool = False) -> VerifyReport:
    """Run ``candidate`` and ``reference`` on the same gradients and params and compare their updates.

    Args:
        candidate: an ``optax.GradientTransformation``, or a factory called as ``candidate(**kwargs)``.
        reference: the same, or a name: one of :data:`REFERENCES` (optax's counterpart of each
            built-in, e.g. ``"momentum"``) or an optax optimizer factory (``"adam"`` is ``optax.adam``;
            ``"chain"`` or ``"apply_updates"`` are refused). A factory must return an
            ``optax.GradientTransformation`` (a TypeError otherwise).
        kwargs: arguments for the factories (for example ``{"learning_rate": 1e-3}``).
        steps: updates per run (default 1000).
        seeds: gradient-stream seeds, run together under ``vmap``.
        dtypes: leaf dtypes to check, each a separate run; float64 runs under ``jax.enable_x64``.
        tree: a pytree whose leaves are shape tuples (default :data:`DEFAULT_TREE`).
        scales: a pytree like ``tree`` of per-leaf gradient scales (default :data:`DEFAULT_SCALES`,
            or 1 for every leaf of a custom tree).
        rtol: a tolerance, or a dict dtype name -> tolerance (default :func:`default_rtol`).
        schedule: when both are factories taking a float ``learning_rate``, also run with it
            replaced by :func:`oscillating_schedule` of the same base value.
        fail_fast: stop after the first failing case.

    Returns:
        A :class:`VerifyReport`; ``passed`` is True only if every step of every case is within
        tolerance.

    Raises:
        ValueError: for an unknown optax name, unknown dtype, or structures that do not match.
    """
    kwargs = dict(kwargs or {})
    ref_name, reference = _resolve_reference(reference)
    if tree is None:
        tree, scales = DEFAULT_TREE, DEFAULT_SCALES if scales is None else scales
    if scales is None:
        scales = jax.tree.map(lambda _: 1.0, tree, is_leaf=lambda x: isinstance(x, tuple))
    settings = [("constant lr", kwargs)]
    is_factory = not isinstance(candidate, optax.GradientTransformation) and not isinstance(
        reference, optax.GradientTransformation)
    lr = kwargs.get("learning_rate")
    if schedule and is_factory and isinstance(lr, (int, float)) and not isinstance(lr, bool):
        settings.append(("schedule", {**kwargs, "learning_rate": oscillating_schedule(float(lr))}))
    cases = []
    for setting, kw in settings:
        for dt in dtypes:
            dtype = jnp.dtype(dt)
            if not jnp.issubdtype(dtype, jnp.floating):
                raise ValueError(f"dtypes must be floating, got {dt!r}")
            tol = default_rtol(dtype) if rtol is None else (
                rtol.get(dtype.name, default_rtol(dtype)) if isinstance(rtol, Mapping) else float(rtol))
            x64 = jax.enable_x64(True) if dtype == jnp.float64 else contextlib.nullcontext()
            with x64:
                cand_tx = _build(candidate, kw, setting)
                ref_tx = _build(reference, kw, setting)
                outs = _run_case(cand_tx, ref_tx, tree, scales, dtype, steps, tuple(seeds))
            info = _leaf_info(tree, dtype)
            cases.append(_evaluate(outs, info, setting, dtype.name, tuple(seeds), tol, steps))
            if fail_fast and not cases[-1].passed:
                return VerifyReport(_name(candidate), ref_name, tuple(cases))
    return VerifyReport(_name(candidate), ref_name, tuple(cases))


# ----------------------------------------------------------------------------- trajectories


@dataclasses.dataclass(frozen=True)
class TrajectoryReport:
    """Two optimizers on one objective, each moving its own parameters.

    ``step_errors[t]`` is ``max|theta_cand - theta_ref| / max|theta_ref|`` after step ``t``;
    ``parted_at`` is the first step where it exceeds ``tolerance`` (None if never).
    """

    objective: str
    dtype: str
    tolerance: float
    step_errors: np.ndarray  # (steps,)
    candidate_loss: np.ndarray  # (steps,) loss before each step
    reference_loss: np.ndarray  # (steps,)
    parted_at: int | None

    @property
    def passed(self) -> bool:
        return self.parted_at is None

    @property
    def max_rel_error(self) -> float:
        return float(np.max(self.step_errors)) if self.step_errors.size else 0.0


def _objective(name: str, dtype) -> tuple[Callable[[Any], Array], Any]:
    if name == "rosenbrock":
        from lab.data import rosenbrock

        return rosenbrock, jnp.array([-1.5, 2.0], dtype)
    if name == "mlp":
        from lab.data import two_moons
        from lab.losses import cross_entropy
        from lab.models import init_mlp, mlp

        data = two_moons(jax.random.key(0), n_train=128, n_test=8)
        x = data.x_train.astype(dtype)
        params = jax.tree.map(lambda p: p.astype(dtype), init_mlp(jax.random.key(1), (2, 16, 2), "he_normal"))
        return (lambda p: cross_entropy(mlp(p, x, "tanh"), data.y_train)), params
    raise ValueError(f"unknown objective {name!r}; valid: rosenbrock, mlp")


def compare_trajectories(candidate: Transformation | Factory, reference: Transformation | Factory | str,
                         kwargs: Mapping[str, Any] | None = None, *, objective: str = "rosenbrock",
                         steps: int = 1000, dtype: Any = "float32", rtol: float | None = None
                         ) -> TrajectoryReport:
    """Run both optimizers on ``objective`` ("rosenbrock" from (-1.5, 2), or "mlp": a 2-16-2 tanh MLP
    on two moons, full batch) and compare the parameter paths.

    Only float32 and float64 are accepted (a ValueError otherwise). Here a difference compounds:
    each optimizer moves its own parameters, so a rounding difference of one step changes the next
    gradient, and on a real objective such differences can grow step after step (a chaotic
    divergence). The tolerance is ``sqrt(eps(dtype))`` (half the significant bits: 3.5e-4 in
    float32, 1.5e-8 in float64) on ``max|theta_cand - theta_ref|`` relative to the leaf's largest
    parameter. In float32 and float64, a correct but differently ordered implementation stays far
    inside it over the default 1000 steps (Adam in the paper's ordering: about 4e-6 in float32 and
    1e-14 in float64 on both objectives), and a 1% error in the step parts at once. In bfloat16
    (8 significant bits) no tolerance separates the two: the same reordered Adam drifts 27% away
    on the MLP within 300 steps while a step 1% too large stays within 1% on Rosenbrock. So
    bfloat16 is left to :func:`compare`, whose gradient stream does not compound differences; run
    trajectories in float32 or float64.
    """
    kwargs = dict(kwargs or {})
    reference = _resolve_reference(reference)[1]
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"compare_trajectories runs in float32 or float64, got {dtype.name}: in "
                         "lower precision, rounding differences compound along a trajectory beyond "
                         "any useful tolerance; use compare() for bfloat16")
    tol = float(jnp.finfo(dtype).eps) ** 0.5 if rtol is None else float(rtol)
    x64 = jax.enable_x64(True) if dtype == jnp.float64 else contextlib.nullcontext()
    with x64:
        cand_tx, ref_tx = _build(candidate, kwargs), _build(reference, kwargs)
        loss_fn, params0 = _objective(objective, dtype)

        def run(params0):
            def step(carry, _):
                cp, cs, rp, rs = carry
                c_loss, cg = jax.value_and_grad(loss_fn)(cp)
                r_loss, rg = jax.value_and_grad(loss_fn)(rp)
                cu, cs = cand_tx.update(cg, cs, cp)
                with jax.numpy_dtype_promotion("standard"):
                    ru, rs = ref_tx.update(rg, rs, rp)
                    cp, rp = optax.apply_updates(cp, cu), optax.apply_updates(rp, ru)
                return (cp, cs, rp, rs), (jax.tree.leaves(cp), jax.tree.leaves(rp), c_loss, r_loss)

            with jax.numpy_dtype_promotion("standard"):
                r_state = ref_tx.init(params0)
            carry = (params0, cand_tx.init(params0), params0, r_state)
            return jax.lax.scan(step, carry, None, length=steps)[1]

        # Compiled once and run once: as in compare, XLA's backend optimizations cost more than they save.
        compiled = jax.jit(run).lower(params0).compile(
            compiler_options={"xla_backend_optimization_level": 0})
        c_path, r_path, c_loss, r_loss = compiled(params0)
    errs = np.max([_leaf_errors(np.asarray(c)[None], np.asarray(r)[None])["rel"][0]
                   for c, r in zip(c_path, r_path, strict=True)], axis=0)
    errs = np.where(np.isnan(errs), np.inf, errs)
    c_loss, r_loss = np.asarray(c_loss, np.float64), np.asarray(r_loss, np.float64)
    bad = np.flatnonzero(errs > tol)
    return TrajectoryReport(objective, dtype.name, tol, errs, c_loss, r_loss,
                            int(bad[0]) if bad.size else None)
