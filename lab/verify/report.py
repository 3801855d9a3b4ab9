"""What :func:`lab.verify.compare` reports: each case's verdict, where a comparison first parted, the
cases skipped and why, and a known convention the candidate matches instead of its reference.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
import numpy as np


def default_rtol(dtype: Any) -> float:
    """``max(eps ** (2/3), 8 eps)`` for the dtype's machine epsilon (see docs/verify.md).

    A complex dtype is held to its real part's tolerance.
    """
    eps = float(jnp.finfo(jnp.dtype(dtype)).eps)
    return max(eps ** (2.0 / 3.0), 8 * eps)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (``""`` if it has none)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (inf, -inf, NaN) replaced by ``None``, recursively
    through dicts, lists and tuples (tuples become lists); NumPy scalars become Python numbers and
    complex numbers ``[real, imag]``.

    JSON has no infinities or NaN: ``json.dumps`` would otherwise write ``Infinity``/``NaN``, which
    strict parsers (and ``json.loads(..., parse_constant=...)``) reject.
    """
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_, np.complexfloating)):
        obj = obj.item()
    if isinstance(obj, complex):
        return [json_safe(obj.real), json_safe(obj.imag)]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _number(x: float | complex) -> str:
    return f"{x:.8g}"


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
    candidate: float | complex
    reference: float | complex
    error: float  # the leaf's relative error at that step (inf where the update dtypes differ)
    tolerance: float
    candidate_dtype: str = ""  # the dtype of the candidate's update of this leaf ("" = ``dtype``)
    reference_dtype: str = ""  # the dtype of the reference's update of this leaf ("" = ``dtype``)
    rounding: float = 0.0  # absolute error allowed at that element for the parameters' own rounding

    @property
    def dtype_mismatch(self) -> bool:
        """True when the two updates of this leaf have different dtypes (then ``error`` is inf)."""
        return (self.candidate_dtype or self.dtype) != (self.reference_dtype or self.dtype)

    def __str__(self) -> str:
        where = f"{self.case}: step {self.step} (seed {self.seed}), leaf {self.leaf} shape {self.shape}"
        values = f"candidate {_number(self.candidate)}, reference {_number(self.reference)}"
        if self.dtype_mismatch:
            return (f"{where}: candidate update dtype {self.candidate_dtype} != reference "
                    f"{self.reference_dtype} (params and gradients are {self.dtype}; updates must keep "
                    f"the reference's dtype); values at {self.index}: {values}")
        rounding = f", beyond {self.rounding:.3g} of the parameters' own rounding" if self.rounding else ""
        return (f"{where} {self.dtype} at {self.index}: {values} (relative error {self.error:.3g} > "
                f"tolerance {self.tolerance:.3g}{rounding})")


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One setting x dtype of a comparison; ``step_errors[t]`` is step ``t``'s relative error.

    A skipped case (``skipped`` is the reason) ran nothing: its ``step_errors`` is empty. A case
    that does not ``decide`` is reported but leaves the report's verdict alone.
    """

    setting: str  # "constant lr" or "schedule"
    dtype: str
    steps: int
    tolerance: float
    step_errors: np.ndarray  # (steps,) float64: max over leaves and seeds; inf where non-finite parts
    max_abs_error: float
    failure: Failure | None
    skipped: str = ""  # why the case did not run ("" if it ran)
    decides: bool = True  # False: reported only (e.g. bfloat16 runs of a torch optimizer)

    @property
    def label(self) -> str:
        return f"{self.setting}, {self.dtype}"

    @property
    def ran(self) -> bool:
        return not self.skipped

    @property
    def passed(self) -> bool:
        """True when the case ran and stayed within tolerance."""
        return self.ran and self.failure is None

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL`` or ``SKIP``; ``(pass)``/``(fail)`` for a case that does not decide."""
        if not self.ran:
            return "SKIP"
        word = "PASS" if self.passed else "FAIL"
        return word if self.decides else f"({word.lower()})"

    @property
    def max_rel_error(self) -> float:
        return float(np.max(self.step_errors)) if self.step_errors.size else 0.0

    @classmethod
    def skip(cls, setting: str, dtype: str, steps: int, tolerance: float, reason: str) -> CaseResult:
        return cls(setting, dtype, steps, tolerance, np.zeros(0), 0.0, None, skipped=reason)

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting, "dtype": self.dtype, "steps": self.steps,
                "tolerance": self.tolerance, "max_rel_error": self.max_rel_error if self.ran else None,
                "max_abs_error": self.max_abs_error if self.ran else None, "passed": self.passed,
                "verdict": self.verdict, "decides": self.decides, "skipped": self.skipped or None,
                "failure": None if self.failure is None else dataclasses.asdict(self.failure)}


@dataclasses.dataclass(frozen=True)
class Convention:
    """A documented convention difference the candidate was found to follow: against ``matches``
    (an optax setting, or a model of the convention where no optax setting has it) every case that
    failed passes."""

    name: str  # as docs/optimizers.md names it, e.g. "RMSprop's eps outside the square root"
    matches: str  # e.g. "optax.rmsprop(learning_rate=0.001, eps_in_sqrt=False)"
    optax_setting: bool  # whether ``matches`` is an optax setting (else a model of the convention)

    def __str__(self) -> str:
        if self.optax_setting:
            return f"{self.name}: passes against {self.matches}"
        return f"{self.name} (no optax setting has it): passes against {self.matches}"


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """The verdict of :func:`lab.verify.compare`, with every case's per-step errors.

    For a figure of error against step: ``report.step_errors`` is (cases that ran, steps),
    ``report.labels`` names each row and ``report.tolerances`` gives each row's tolerance.
    """

    candidate: str
    reference: str
    cases: tuple[CaseResult, ...]
    convention: Convention | None = None  # a known convention that explains the failures

    @property
    def ran(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if c.ran)

    @property
    def skipped(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if not c.ran)

    @property
    def passed(self) -> bool:
        """True when every case that ran and decides stayed within tolerance."""
        return all(c.passed for c in self.ran if c.decides)

    @property
    def failure(self) -> Failure | None:
        """The first failing deciding case's diagnostics (else the first failing case's), or None."""
        failures = [c for c in self.ran if c.failure is not None]
        first = next((c for c in failures if c.decides), failures[0] if failures else None)
        return None if first is None else first.failure

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.ran), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.ran), default=0.0)

    @property
    def step_errors(self) -> np.ndarray:
        """(cases that ran, steps) per-step relative errors, one row per case (see :attr:`labels`)."""
        rows = [c.step_errors for c in self.ran]
        return np.stack(rows) if rows else np.zeros((0, 0))

    @property
    def tolerances(self) -> np.ndarray:
        """(cases that ran,) the tolerance each row of :attr:`step_errors` was held to."""
        return np.array([c.tolerance for c in self.ran])

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.ran]

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{verdict}: {self.candidate} vs {self.reference}: {len(self.ran)} cases ran, max relative "
                 f"error {self.max_rel_error:.3g}, max absolute error {self.max_abs_error:.3g}"]
        if self.failure is not None:
            lines.append(f"  first parted at {self.failure}")
        if self.convention is not None:
            lines.append(f"  known convention: {self.convention}")
        for reason in dict.fromkeys(c.skipped for c in self.skipped):
            cases = [c for c in self.skipped if c.skipped == reason]
            which = "; ".join(f"{s} ({', '.join(c.dtype for c in cases if c.setting == s)})"
                              for s in dict.fromkeys(c.setting for c in cases))
            lines.append(f"  skipped {which}: {reason}")
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
            "convention": None if self.convention is None else dataclasses.asdict(self.convention),
            "cases": [c.to_dict() for c in self.cases],
        })


def evaluate(stats: dict[str, np.ndarray], lay, setting: str, dtype_name: str, seeds, rtol: float,
             steps: int, dtypes_ok: list[tuple[str, str]], rounding: np.ndarray | None = None,
             decides: bool = True) -> CaseResult:
    """A :class:`CaseResult` from per-step statistics (each ``(seeds, steps, leaves)``, see
    :func:`lab.verify.stream.step_stats`); ``dtypes_ok[i]`` is leaf ``i``'s (candidate, reference)
    update dtypes; ``rounding``, like the statistics, the parameter rounding allowed at each worst
    element."""
    if not lay.shapes:
        return CaseResult(setting, dtype_name, steps, rtol, np.zeros(steps), 0.0, None, decides=decides)
    sizes = np.maximum(np.diff(np.asarray(lay.offsets)), 1)
    # The leaf's scale at step t: its largest update then, or its RMS update over the whole run if
    # larger, so a step where terms cancel (a Nesterov look-ahead, a momentum buffer turning) to
    # almost nothing does not turn a few ulps of rounding into a large relative error.
    typical = np.sqrt(np.sum(stats["ref_sumsq"], axis=1, keepdims=True) / (steps * sizes))  # (seeds, 1, L)
    scale = np.maximum(stats["ref_max"], typical)
    abs_err = stats["abs"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(abs_err == 0, 0.0, abs_err / scale)
    mismatch = np.array([c != r for c, r in dtypes_ok])
    rel = np.where(mismatch, np.inf, rel)
    rel = np.where(np.isnan(rel), np.inf, rel)  # (seeds, steps, leaves)
    step_errors = rel.max(axis=(0, 2))
    failure = None
    bad = rel > rtol
    if bad.any():
        t = int(np.argmax(bad.any(axis=(0, 2))))
        s_i, leaf_i = (int(i) for i in np.argwhere(bad[:, t, :])[0])
        shape = lay.shapes[leaf_i]
        flat = int(stats["idx"][s_i, t, leaf_i])
        index = tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()
        value = complex if np.iscomplexobj(stats["cand"]) else float
        failure = Failure(f"{setting}, {dtype_name}", t, int(seeds[s_i]), lay.paths[leaf_i], shape,
                          dtype_name, index, value(stats["cand"][s_i, t, leaf_i]),
                          value(stats["ref"][s_i, t, leaf_i]),
                          float(rel[s_i, t, leaf_i]), rtol, *dtypes_ok[leaf_i],
                          0.0 if rounding is None else float(rounding[s_i, t, leaf_i]))
    return CaseResult(setting, dtype_name, steps, rtol, step_errors, float(np.max(abs_err)), failure,
                      decides=decides)
