"""``lab verify``: check the catalogue's optimizers, or your own (optax-style or PyTorch), against optax.

    lab verify                                   every catalogue optimizer, its settings, 3 dtypes
    lab verify --optimizer adam --steps 200      only Adam's settings, 200 steps
    lab verify --candidate my_opts:lion --reference lion --kwargs '{"learning_rate": 1e-3}'
    lab verify --candidate torch.optim:Adam --reference adam --candidate-kwargs '{"lr": 1e-3}' \\
               --reference-kwargs '{"learning_rate": 1e-3}'

Exit status: 0 if every check that ran passed, 1 if one failed, 2 for bad input (one line on stderr).
docs/verify.md is the guide.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import os
import sys
from typing import Any

from lab.errors import LabError

DTYPES = ("float32", "bfloat16", "float64")
COMPLEX = {"float32": "complex64", "float64": "complex128"}  # added for optimizers optax runs on complex


@dataclasses.dataclass(frozen=True)
class _Check:
    """One comparison to run: a candidate against a reference with each side's arguments."""

    label: str
    candidate: Any
    reference: str
    candidate_kwargs: dict[str, Any]
    reference_kwargs: dict[str, Any]
    lr_arg: str | None = None
    schedule: bool | str = True  # or the reason the schedule cases are skipped
    needs_value: bool | None = None
    complex_params: bool = False  # also run complex64/complex128 beside float32/float64


def add_parsers(subparsers, positive_int) -> None:
    """Add the ``verify`` subcommand to the ``lab`` parser."""
    from lab.optim import catalogue

    p = subparsers.add_parser(
        "verify",
        help="check every catalogue optimizer (or your own, optax-style or PyTorch) against optax",
        description="Run each catalogue optimizer and its optax reference on the same gradients and "
        "compare their updates at every step, in float32, bfloat16 and float64, with a constant "
        "learning rate and with a schedule; or check your own optimizer (--candidate) against an optax "
        "one. Prints optimizer, settings, dtype, steps, the largest relative error, the tolerance and "
        "a verdict (SKIP: a case that could not run, with the reason); exit status 0 only if every "
        "check that ran passed. Guide: docs/verify.md.",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--optimizer", metavar="NAME",
                   help=f"check only this catalogue optimizer: {', '.join(catalogue.names())}")
    p.add_argument("--candidate", metavar="MODULE:ATTR",
                   help="your own optimizer (needs --reference): an optax-style factory such as "
                   "my_pkg.my_module:my_adam, or a torch.optim.Optimizer subclass such as torch.optim:Adam")
    p.add_argument("--reference", metavar="NAME",
                   help="what --candidate is compared with: a catalogue name, an optax optimizer (adam, "
                   "nadam, scale_by_adam, ...) or an optax.contrib one (muon or contrib.muon, ...)")
    p.add_argument("--kwargs", metavar="JSON", default=None,
                   help='arguments for both sides, as a JSON object, e.g. \'{"learning_rate": 1e-3}\'')
    p.add_argument("--candidate-kwargs", metavar="JSON", default=None,
                   help='the candidate\'s arguments, instead of --kwargs, e.g. \'{"lr": 1e-3, "betas": '
                   '[0.9, 0.999]}\'')
    p.add_argument("--reference-kwargs", metavar="JSON", default=None,
                   help="the reference's arguments, instead of --kwargs")
    p.add_argument("--lr-arg", metavar="NAME", default=None,
                   help="the candidate's learning-rate argument, replaced by a schedule in the schedule "
                   "cases (default learning_rate; lr for a PyTorch optimizer)")
    p.add_argument("--steps", type=positive_int, default=1000, help="updates per run (default 1000)")
    p.add_argument("--dtype", action="append", choices=DTYPES, default=None,
                   help="dtype to check (repeatable; default all three)")
    p.add_argument("--no-schedule", action="store_true",
                   help="skip the runs with a learning-rate schedule (reported as skipped)")
    p.add_argument("--seeds", type=positive_int, default=2, help="gradient streams per run (default 2)")
    p.set_defaults(handler=_cmd_verify)


# ----------------------------------------------------------------------------- the user's candidate


def _load_candidate(spec: str):
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise LabError(f"--candidate must be MODULE:ATTR (e.g. my_pkg.my_module:my_adam), got {spec!r}")
    if os.getcwd() not in sys.path:  # like `python -m`: modules in the current directory import
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        if getattr(err, "name", None) == "torch":
            from lab.verify import TORCH_HINT

            raise LabError(f"module {module_name!r} imports torch: {TORCH_HINT}") from None
        raise LabError(f"cannot import module {module_name!r}: {err}") from None
    except Exception as err:  # a module that fails while importing: still one line
        raise LabError(f"importing module {module_name!r} failed: {type(err).__name__}: {err}") from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise LabError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise LabError(f"{spec} is not callable: expected an optimizer factory, got {type(obj).__name__}")
    return obj


def _guarded(spec: str, factory):
    """``factory`` whose result must be an ``optax.GradientTransformation``; an exception it raises is
    marked as the candidate's, so that it is reported as such in one line."""
    import optax

    def candidate(**kwargs):
        try:
            tx = factory(**kwargs)
        except Exception as err:
            err.lab_candidate = spec
            raise
        if not isinstance(tx, optax.GradientTransformation):
            raise LabError(f"candidate {spec} returned {type(tx).__name__}, not an "
                           "optax.GradientTransformation: expected an optimizer factory")
        return tx

    candidate.__qualname__ = spec
    candidate.__signature__ = inspect.signature(factory)
    return candidate


def _parse_kwargs(flag: str, text: str | None) -> dict[str, Any] | None:
    """The JSON object of ``flag``: numbers, booleans, null and lists of numbers (as tuples)."""
    if text is None:
        return None
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as err:
        raise LabError(f"{flag} is not valid JSON ({err.msg} at character {err.pos}): {text!r}") from None
    if not isinstance(kwargs, dict):
        raise LabError(f"{flag} must be a JSON object like '{{\"learning_rate\": 1e-3}}', got {text!r}")
    out = {}
    for key, value in kwargs.items():
        numbers = isinstance(value, list) and value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not (value is None or isinstance(value, (int, float, bool)) or numbers):
            raise LabError(f"{flag}: {key!r} must be a number, true/false, null or a list of numbers, got "
                           f"{json.dumps(value)}")
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def _arguments(fn, torch: bool) -> list[str] | None:
    """The keyword arguments ``fn`` takes (None: any, it has ``**kwargs``), without torch's ``params``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names[1:] if torch else names


def _check_names(flag: str, kwargs: dict[str, Any], fn, label: str, torch: bool = False) -> None:
    allowed = _arguments(fn, torch)
    unknown = [k for k in kwargs if allowed is not None and k not in allowed]
    if unknown:
        raise LabError(f"{flag}: {label} has no argument {unknown[0]!r} (its arguments: "
                       f"{', '.join(allowed) or 'none'})")


def _user_check(args: argparse.Namespace, verify) -> _Check:
    if args.candidate is None or args.reference is None:
        raise LabError("--candidate and --reference go together")
    if args.optimizer is not None:
        raise LabError("--optimizer selects catalogue optimizers; it cannot be combined with --candidate")
    obj = _load_candidate(args.candidate)
    try:
        ref_label, reference = verify.resolve_reference(args.reference)
    except ValueError as err:
        raise LabError(str(err)) from None
    torch = verify.is_torch(obj)
    both = _parse_kwargs("--kwargs", args.kwargs)
    cand_kw = _parse_kwargs("--candidate-kwargs", args.candidate_kwargs)
    ref_kw = _parse_kwargs("--reference-kwargs", args.reference_kwargs)
    cand_flag = "--candidate-kwargs" if cand_kw is not None else "--kwargs"
    ref_flag = "--reference-kwargs" if ref_kw is not None else "--kwargs"
    cand_kw = dict(both or {}) if cand_kw is None else cand_kw
    ref_kw = dict(both or {}) if ref_kw is None else ref_kw
    _check_names(cand_flag, cand_kw, obj, f"candidate {args.candidate}", torch)
    _check_names(ref_flag, ref_kw, reference, ref_label)
    if args.lr_arg is not None:
        allowed = _arguments(obj, torch)
        if allowed is not None and args.lr_arg not in allowed:
            raise LabError(f"--lr-arg: candidate {args.candidate} has no argument {args.lr_arg!r} (its "
                           f"arguments: {', '.join(allowed) or 'none'})")
    return _Check(args.candidate, obj if torch else _guarded(args.candidate, obj), args.reference, cand_kw,
                  ref_kw, args.lr_arg, "--no-schedule" if args.no_schedule else True)


def _catalogue_checks(args: argparse.Namespace) -> list[_Check]:
    from lab.optim import catalogue

    if args.kwargs is not None or args.candidate_kwargs is not None or args.reference_kwargs is not None:
        raise LabError("--kwargs, --candidate-kwargs and --reference-kwargs need --candidate and --reference")
    if args.lr_arg is not None:
        raise LabError("--lr-arg needs --candidate and --reference")
    if args.optimizer is not None and args.optimizer not in catalogue.names():
        raise LabError(f"unknown optimizer {args.optimizer!r}; valid names: {', '.join(catalogue.names())}")
    checks = []
    for e in catalogue.entries():
        if args.optimizer not in (None, e.name):
            continue
        no_schedule = f"the reference takes no learning-rate schedule ({e.reference_name})"
        schedule = "--no-schedule" if args.no_schedule else (True if e.schedule else no_schedule)
        checks += [_Check(e.name, e.factory, e.name, dict(kw), dict(kw), None, schedule, e.needs_value,
                          e.complex_params) for kw in e.verify]
    return checks


# ----------------------------------------------------------------------------- running and printing


def _compare(verify, check: _Check, options: dict[str, Any], user: bool):
    """``verify.compare`` for one check; for a user's candidate, whatever it raises (while built, or
    while its ``init``/``update``/``step`` run) becomes one line naming it, not a traceback."""
    dtypes = tuple(options["dtypes"])
    if check.complex_params:
        dtypes += tuple(COMPLEX[d] for d in dtypes if d in COMPLEX)
    try:
        return verify.compare(check.candidate, check.reference, candidate_kwargs=check.candidate_kwargs,
                              reference_kwargs=check.reference_kwargs, lr_arg=check.lr_arg,
                              schedule=check.schedule, needs_value=check.needs_value, steps=options["steps"],
                              seeds=options["seeds"], dtypes=dtypes)
    except ImportError as err:
        if str(err) == verify.TORCH_HINT:
            raise LabError(str(err)) from None
        raise
    except LabError:
        raise
    except Exception as err:
        if not user:
            raise
        if getattr(err, "lab_candidate", None):
            raise LabError(f"candidate {err.lab_candidate} raised {type(err).__name__}: "
                           f"{verify.first_line(err)}") from None
        raise LabError(f"checking candidate {check.label} against {check.reference} failed: "
                       f"{type(err).__name__}: {verify.first_line(err)}") from None


def _settings_text(check: _Check, setting: str) -> str:
    def text(kw):
        return ", ".join(f"{k}={v}" for k, v in kw.items())

    cand, ref = check.candidate_kwargs, check.reference_kwargs
    out = text(cand) if cand == ref else f"{text(cand)} | reference: {text(ref)}"
    return f"{out} ({setting})" if setting != "constant lr" else out


def _cmd_verify(args: argparse.Namespace) -> int:
    from lab import verify

    user = args.candidate is not None or args.reference is not None
    checks = [_user_check(args, verify)] if user else _catalogue_checks(args)
    options = {"steps": args.steps, "dtypes": tuple(dict.fromkeys(args.dtype)) if args.dtype else DTYPES,
               "seeds": tuple(range(args.seeds))}
    rows, failures, notes = [], [], []
    width = max([10, *(len(c.label) for c in checks)])
    if not args.json:
        print(_header(width), flush=True)
    for check in checks:
        report = _compare(verify, check, options, user)
        for case in report.cases:
            rows.append({
                "optimizer": check.label, "reference": report.reference, "settings": check.candidate_kwargs,
                "reference_settings": check.reference_kwargs, "schedule": case.setting == "schedule",
                "dtype": case.dtype, "steps": case.steps,
                "max_rel_error": case.max_rel_error if case.ran else None, "tolerance": case.tolerance,
                "verdict": case.verdict, "passed": case.passed,
                "decides": case.decides, "skipped": case.skipped or None,
                "failure": None if case.failure is None else str(case.failure)})
            where = f"{check.label} ({_settings_text(check, case.setting)})"
            if case.failure is not None and case.decides:
                failures.append(f"{where}: {case.failure}")
        if report.convention is not None:
            notes.append(f"{check.label} ({_settings_text(check, 'constant lr')}) vs {report.reference}: "
                         f"known convention: {report.convention}")
        if not args.json:  # print as we go: the whole run takes a while
            for row, case in zip(rows[len(rows) - len(report.cases):], report.cases, strict=True):
                _print_row(row, _settings_text(check, case.setting), width)
    ran = [r for r in rows if r["skipped"] is None and r["decides"]]
    passed = all(r["passed"] for r in ran)
    if args.json:  # strict JSON: non-finite errors are null, never Infinity/NaN
        data = {"passed": passed, "results": rows, "conventions": notes}
        print(json.dumps(verify.json_safe(data), indent=2, default=str, allow_nan=False))
        return 0 if passed else 1
    print(f"\n{_summary(rows, ran)}" + ("" if passed else "; where they parted:"))
    for line in failures:
        print(f"  {line}")
    for line in notes:
        print(f"  {line}")
    return 0 if passed else 1


def _summary(rows: list[dict[str, Any]], ran: list[dict[str, Any]]) -> str:
    """``N/M checks passed``, then what was skipped (each reason once) and what did not decide."""
    text = f"{sum(r['passed'] for r in ran)}/{len(ran)} checks passed"
    reasons: dict[str, int] = {}
    for r in rows:
        if r["skipped"] is not None:
            reasons[r["skipped"]] = reasons.get(r["skipped"], 0) + 1
    for reason, n in reasons.items():
        text += f"; {n} skipped: {reason}"
    info = [r for r in rows if r["skipped"] is None and not r["decides"]]
    if info:
        text += (f"; {len(info)} more reported in parentheses, not counted (bfloat16 runs of a PyTorch "
                 "optimizer: the two libraries round their moments differently there)")
    return text


def _header(width: int) -> str:
    return (f"{'optimizer':<{width}} {'settings':<72} {'dtype':<10} {'steps':>6} {'max rel err':>11} "
            f"{'tolerance':>9}  verdict")


def _print_row(row: dict[str, Any], settings: str, width: int) -> None:
    error = "—" if row["max_rel_error"] is None else f"{row['max_rel_error']:.2e}"
    print(f"{row['optimizer']:<{width}} {settings:<72} {row['dtype']:<10} {row['steps']:>6} {error:>11} "
          f"{row['tolerance']:>9.1e}  {row['verdict']}", flush=True)
