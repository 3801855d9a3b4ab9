"""``compare``: a candidate optimizer against its reference, case by case (setting x dtype), on one
shared gradient stream; cases a candidate cannot run are reported as skipped, and a failure that a
documented convention explains is named.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lab.verify import torch_candidates
from lab.verify.conventions import probes as convention_probes
from lab.verify.program import (
    CONSTANT,
    SCHEDULE,
    Pair,
    SideError,
    accepts_value,
    needs_x64,
    oscillating_schedule,
    run_pairs,
)
from lab.verify.references import name_of, resolve_reference
from lab.verify.report import CaseResult, Convention, VerifyReport, default_rtol, evaluate, first_line
from lab.verify.stream import DEFAULT_SCALES, DEFAULT_TREE, Layout, is_shape, layout

Array = jax.Array
Transformation = optax.GradientTransformation
Factory = Callable[..., optax.GradientTransformation]

DEFAULT_DTYPES = ("float32", "bfloat16", "float64")
DEFAULT_SEEDS = (0, 1)
DEFAULT_STEPS = 1000


def build(obj: Transformation | Factory, kwargs: Mapping[str, Any]) -> Transformation:
    """``obj`` itself if it is a transformation, else ``obj(**kwargs)``, which must return one."""
    if isinstance(obj, optax.GradientTransformation):
        return obj
    tx = obj(**kwargs)
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(f"{name_of(obj)}(**kwargs) returned {type(tx).__name__}, not an "
                        "optax.GradientTransformation: expected an optimizer factory")
    return tx


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclasses.dataclass
class _Side:
    """One side of the comparison: what it is, its arguments, and its transformation per setting."""

    obj: Any
    kwargs: dict[str, Any]
    lr_arg: str
    torch: bool = False
    built: dict[str, Any] = dataclasses.field(default_factory=dict)  # setting -> transformation
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # setting -> why it cannot run

    @property
    def factory(self) -> bool:
        return self.torch or not isinstance(self.obj, optax.GradientTransformation)

    def kwargs_for(self, setting: str) -> dict[str, Any]:
        if setting == CONSTANT:
            return self.kwargs
        return {**self.kwargs, self.lr_arg: oscillating_schedule(float(self.kwargs[self.lr_arg]))}


def _settings(cand: _Side, ref: _Side, schedule: bool | str, ref_label: str) -> dict[str, str]:
    """The settings to run, each with "" or the reason it is skipped."""
    settings = {CONSTANT: ""}
    if not (cand.factory and ref.factory):
        return settings  # transformations have no learning rate to replace
    if schedule is not True:
        settings[SCHEDULE] = schedule if isinstance(schedule, str) and schedule else "schedule=False"
    elif not _number(cand.kwargs.get(cand.lr_arg)):
        settings[SCHEDULE] = (f"the candidate's arguments have no numeric {cand.lr_arg!r} to replace by a "
                              "schedule (lr_arg names the candidate's learning-rate argument)")
    elif not _number(ref.kwargs.get("learning_rate")):
        settings[SCHEDULE] = f"the arguments of {ref_label} have no numeric 'learning_rate'"
    else:
        settings[SCHEDULE] = ""
    return settings


def _build_side(side: _Side, setting: str, label: str, role: str) -> None:
    if side.torch:
        side.built[setting] = side.obj  # built per run, on its own tensors
        return
    try:
        side.built[setting] = build(side.obj, side.kwargs_for(setting))
    except Exception as err:
        if setting == CONSTANT:
            raise
        side.failed[setting] = _cannot(role, label, side.lr_arg, err)


def _cannot(role: str, label: str, lr_arg: str, err: BaseException) -> str:
    return (f"the {role} {label} cannot take a schedule as {lr_arg} ({type(err).__name__}: "
            f"{first_line(err)}); schedule=False (lab verify --no-schedule) leaves these cases out")


@dataclasses.dataclass(frozen=True)
class _Case:
    setting: str
    dtype: Any

    @property
    def label(self) -> str:
        return f"{self.setting}, {jnp.dtype(self.dtype).name}"


def _pass_value(needs_value: bool | None, tx: Transformation) -> bool:
    return accepts_value(tx) if needs_value is None else bool(needs_value)


def _run_jax(cand: _Side, refs: Sequence[_Side], cases: Sequence[_Case], lay: Layout, seeds, steps,
             needs_value, ref_label: str, cand_label: str, rtol_of, fail_fast: bool
             ) -> dict[tuple[int, _Case], Any]:
    """Run ``cand`` against each of ``refs`` in every case, one program per 64-bit-ness; returns
    ``(ref index, case) -> (stats, dtypes)`` or the skip reason (a string)."""
    results: dict[tuple[int, _Case], Any] = {}
    pairs = [(i, c) for i in range(len(refs)) for c in cases]
    groups = [[p for p in pairs if needs_x64(p[1].dtype) == x64] for x64 in (False, True)]
    if fail_fast:  # one case at a time, stopping at the first that fails
        groups = [[p] for p in pairs]
    for todo in groups:
        x64 = needs_x64(todo[0][1].dtype) if todo else False
        if fail_fast and any(not _result(r, c, lay, seeds, steps, rtol_of).passed and not isinstance(r, str)
                             for (_, c), r in results.items()):
            break
        while todo:
            pairs = [Pair(cand.built[c.setting], refs[i].built[c.setting], jnp.dtype(c.dtype),
                          _pass_value(needs_value, cand.built[c.setting]),
                          _pass_value(needs_value, refs[i].built[c.setting])) for i, c in todo]
            try:
                with jax.enable_x64(True) if x64 else contextlib.nullcontext():
                    outs = run_pairs(pairs, lay, seeds, steps)
            except SideError as err:
                i, case = todo[err.index]
                if case.setting == CONSTANT:
                    raise err.error from None
                # The whole setting is skipped: for every reference if the candidate raised.
                if err.side == "candidate":
                    why, refs_hit = _cannot("candidate", cand_label, cand.lr_arg, err.error), None
                else:
                    why, refs_hit = _cannot("reference", ref_label, "learning_rate", err.error), i
                dropped = [t for t in todo if t[1].setting == case.setting and refs_hit in (None, t[0])]
                results.update(dict.fromkeys(dropped, why))
                todo = [t for t in todo if t not in dropped]
                continue
            results.update(zip(todo, outs, strict=True))
            todo = []
    return results


def _result(got, case: _Case, lay: Layout, seeds, steps: int, rtol_of) -> CaseResult:
    """The :class:`CaseResult` of a run (a :class:`Run`) or of a skip (its reason)."""
    dtype = jnp.dtype(case.dtype)
    if isinstance(got, str):
        return CaseResult.skip(case.setting, dtype.name, steps, rtol_of(dtype), got)
    return evaluate(got.stats, lay, case.setting, dtype.name, tuple(seeds), rtol_of(dtype), steps, got.dtypes,
                    got.rounding, got.decides)


def _run(cand: _Side, refs: Sequence[_Side], cases, *, lay, seeds, steps, needs_value, ref_label, cand_label,
         rtol_of, fail_fast=False) -> list[list[CaseResult]]:
    """Every case of ``cand`` against each of ``refs``: one list of CaseResults per reference."""
    skipped = {}
    runnable = []
    for c in cases:
        why = cand.failed.get(c.setting) or next(
            (r.failed[c.setting] for r in refs if c.setting in r.failed), "")
        if why:
            skipped[c] = why
        else:
            runnable.append(c)
    if cand.torch:
        raw = torch_candidates.run(cand.obj, cand.kwargs, cand.lr_arg, [r.built for r in refs], runnable, lay,
                                   seeds, steps, needs_value)
    else:
        raw = _run_jax(cand, refs, runnable, lay, seeds, steps, needs_value, ref_label, cand_label, rtol_of,
                       fail_fast)
    out = []
    for i in range(len(refs)):
        row = []
        for c in cases:
            row.append(_result(skipped.get(c) or raw.get((i, c), "not run (fail_fast)"), c, lay, seeds, steps,
                               rtol_of))
        out.append(row)
    return out


def compare(candidate: Any, reference: Transformation | Factory | str,
            kwargs: Mapping[str, Any] | None = None, *, candidate_kwargs: Mapping[str, Any] | None = None,
            reference_kwargs: Mapping[str, Any] | None = None, lr_arg: str | None = None,
            steps: int = DEFAULT_STEPS, seeds: Sequence[int] = DEFAULT_SEEDS,
            dtypes: Sequence[Any] = DEFAULT_DTYPES, tree: Any = None, scales: Any = None,
            rtol: float | Mapping[str, float] | None = None, schedule: bool | str = True,
            needs_value: bool | None = None, conventions: bool = True, fail_fast: bool = False
            ) -> VerifyReport:
    """Run ``candidate`` and ``reference`` on the same gradients and params and compare their updates.

    Args:
        candidate: an ``optax.GradientTransformation``; a factory called as ``candidate(**kwargs)``;
            or a PyTorch optimizer: a ``torch.optim.Optimizer`` subclass, or a function whose first
            argument is ``params``, called as ``candidate(params, **kwargs)`` (docs/verify.md).
        reference: the same (not torch), or a name (see :func:`resolve_reference`): a catalogue
            optimizer, an optax optimizer (``"adam"``, ``"nadam"``) or an ``optax.contrib`` one
            (``"muon"``, ``"contrib.muon"``).
        kwargs: arguments for both sides (for example ``{"learning_rate": 1e-3}``).
        candidate_kwargs: the candidate's arguments, instead of ``kwargs`` (e.g. ``{"lr": 1e-3}``).
        reference_kwargs: the reference's arguments, instead of ``kwargs``.
        lr_arg: the candidate's learning-rate argument, replaced by a schedule in the schedule cases
            (default ``"learning_rate"``; ``"lr"`` for a torch optimizer, whose param groups' ``lr``
            is set at every step).
        steps: updates per run (default 1000).
        seeds: gradient-stream seeds, run together.
        dtypes: leaf dtypes, float or complex; float64 and complex128 run under ``jax.enable_x64``.
        tree: a pytree whose leaves are shape tuples (default :data:`DEFAULT_TREE`).
        scales: a pytree like ``tree`` of per-leaf gradient scales (default :data:`DEFAULT_SCALES`,
            or 1 for every leaf of a custom tree).
        rtol: a tolerance, or a dict dtype name -> tolerance (default :func:`default_rtol`).
        schedule: also run every dtype with the learning rate replaced by :func:`oscillating_schedule`
            of the same base value (both sides must be factories with a numeric learning rate).
            ``False``, or a string giving the reason, reports those cases as skipped. A candidate or
            reference that raises with a schedule (while built or traced) gets them skipped too,
            with its error as the reason, and its constant-rate cases still run.
        needs_value: whether ``update`` gets the loss value as ``value=`` (a positive stream, the
            same to both sides): ``None`` (default) passes it to each side whose ``update`` takes a
            ``value`` or ``**kwargs`` argument; ``True`` to both; ``False`` to neither.
        conventions: when a case fails, try the documented conventions that might explain it
            (:mod:`lab.verify.conventions`) and name the first one under which every case passes.
        fail_fast: stop after the first failing case (the report ends there).

    Returns:
        A :class:`VerifyReport`; ``passed`` is True only if every step of every case that ran and
        decides is within tolerance.

    Raises:
        ValueError: for an unknown reference name, unknown dtype, or structures that do not match.
    """
    ref_label, ref_obj = resolve_reference(reference)
    is_torch = torch_candidates.is_torch(candidate)
    cand = _Side(candidate, dict(kwargs or {}) if candidate_kwargs is None else dict(candidate_kwargs),
                 lr_arg or ("lr" if is_torch else "learning_rate"), torch=is_torch)
    ref = _Side(ref_obj, dict(kwargs or {}) if reference_kwargs is None else dict(reference_kwargs),
                "learning_rate")
    cand_label = torch_candidates.name(candidate) if is_torch else name_of(candidate)
    if tree is None:
        tree, scales = DEFAULT_TREE, DEFAULT_SCALES if scales is None else scales
    if scales is None:
        scales = jax.tree.map(lambda _: 1.0, tree, is_leaf=is_shape)
    lay = layout(tree, scales)
    dtypes = [jnp.dtype(d) for d in _check_dtypes(dtypes)]

    def rtol_of(dtype) -> float:
        if rtol is None:
            return default_rtol(dtype)
        return rtol.get(dtype.name, default_rtol(dtype)) if isinstance(rtol, Mapping) else float(rtol)

    settings = _settings(cand, ref, schedule, ref_label)
    for setting, why in settings.items():
        if not why:
            _build_side(ref, setting, ref_label, "reference")
            _build_side(cand, setting, cand_label, "candidate")
    cases = [_Case(s, d) for s in settings for d in dtypes]
    reasons = {s: why for s, why in settings.items() if why}
    ran = [c for c in cases if c.setting not in reasons]
    rows = _run(cand, [ref], ran, lay=lay, seeds=seeds, steps=steps, needs_value=needs_value,
                ref_label=ref_label, cand_label=cand_label, rtol_of=rtol_of, fail_fast=fail_fast)
    results = dict(zip(ran, rows[0], strict=True))
    out = [results.get(c) or CaseResult.skip(c.setting, c.dtype.name, steps, rtol_of(c.dtype),
                                             reasons[c.setting]) for c in cases]
    if fail_fast:  # stop at the first failing case
        first = next((i for i, c in enumerate(out) if c.ran and not c.passed and c.decides), None)
        out = out if first is None else out[: first + 1]
    report = VerifyReport(cand_label, ref_label, tuple(out))
    if conventions and not report.passed and not fail_fast:
        report = dataclasses.replace(report, convention=_find_convention(
            cand, ref, ref_label, cand_label, report, lay, seeds, steps, needs_value, rtol_of))
    return report


def _find_convention(cand: _Side, ref: _Side, ref_label, cand_label, report, lay, seeds, steps, needs_value,
                     rtol_of) -> Convention | None:
    """The first documented convention under which every deciding case that ran passes: each is
    tried on the first failing case, and those that pass it on every case."""
    probes = convention_probes(ref_label, ref.obj, ref.kwargs, cand.kwargs)
    deciding = [_Case(c.setting, jnp.dtype(c.dtype)) for c in report.ran if c.decides]
    failing = next(_Case(c.setting, jnp.dtype(c.dtype)) for c in report.ran if c.decides and not c.passed)
    sides = []
    for probe in probes:
        side = _Side(probe.reference, probe.kwargs, "learning_rate")
        for setting in dict.fromkeys(c.setting for c in deciding):
            _build_side(side, setting, probe.matches, "reference")
        sides.append(side)
    run = functools.partial(_run, cand, lay=lay, seeds=seeds, steps=steps, needs_value=needs_value,
                            ref_label=ref_label, cand_label=cand_label, rtol_of=rtol_of)
    first = run(sides, [failing]) if sides else []
    for probe, side, row in zip(probes, sides, first, strict=True):
        rest = [c for c in deciding if c != failing]
        if row[0].passed and all(c.passed for c in (run([side], rest)[0] if rest else [])):
            return Convention(probe.name, probe.matches, probe.optax_setting)
    return None


def _check_dtypes(dtypes: Sequence[Any]) -> list[Any]:
    for dt in dtypes:
        try:
            dtype = jnp.dtype(dt)
        except TypeError:
            raise ValueError(f"unknown dtype {dt!r}; valid: float32, bfloat16, float64, complex64, "
                             "complex128, ...") from None
        if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)):
            raise ValueError(f"dtypes must be floating or complex, got {dt!r}")
    return list(dtypes)


__all__ = ["DEFAULT_DTYPES", "DEFAULT_SEEDS", "DEFAULT_STEPS", "accepts_value", "build", "compare",
           "oscillating_schedule"]

