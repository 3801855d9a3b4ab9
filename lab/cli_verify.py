"""``lab verify``: check the hand-written optimizers (or your own) against optax, step by step.

    lab verify                                   every built-in, several settings, 3 dtypes
    lab verify --optimizer adam --steps 200      only Adam's settings, 200 steps
    lab verify --json                            the same table as JSON
    lab verify --candidate my_pkg.my_mod:my_adam --reference adam --kwargs '{"learning_rate": 1e-3}'

Exit status: 0 if every check passes, 1 if one fails, 2 for bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from lab.errors import LabError

DTYPES = ("float32", "bfloat16", "float64")


def add_parsers(subparsers, positive_int) -> None:
    """Add the ``verify`` subcommand to the ``lab`` parser."""
    p = subparsers.add_parser(
        "verify",
        help="check every hand-written optimizer (or your own) against optax, step by step",
        description="Run each hand-written optimizer and its optax namesake on the same gradients and "
        "compare their updates at every step, in float32, bfloat16 and float64, with a constant "
        "learning rate and with a schedule. Prints optimizer, settings, dtype, steps, the largest "
        "relative error, the tolerance and a verdict; exit status 0 only if all pass.",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--optimizer", metavar="NAME",
                   help="check only this built-in (sgd, momentum, rmsprop, adam, adamw, adagrad)")
    p.add_argument("--candidate", metavar="MODULE:ATTR",
                   help="your own factory, e.g. my_pkg.my_module:my_adam (needs --reference)")
    p.add_argument("--reference", metavar="NAME",
                   help="the optax optimizer to compare --candidate with, e.g. adam")
    p.add_argument("--kwargs", metavar="JSON", default=None,
                   help='arguments for both factories, as a JSON object, e.g. \'{"learning_rate": 1e-3}\'')
    p.add_argument("--steps", type=positive_int, default=1000, help="updates per run (default 1000)")
    p.add_argument("--dtype", action="append", choices=DTYPES, default=None,
                   help="dtype to check (repeatable; default all three)")
    p.add_argument("--no-schedule", action="store_true",
                   help="skip the runs with a learning-rate schedule (for factories that take only floats)")
    p.add_argument("--seeds", type=positive_int, default=2, help="gradient streams per run (default 2)")
    p.set_defaults(handler=_cmd_verify)


def _load_candidate(spec: str):
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise LabError(f"--candidate must be MODULE:ATTR (e.g. my_pkg.my_module:my_adam), got {spec!r}")
    if os.getcwd() not in sys.path:  # like `python -m`: modules in the current directory import
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
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
    return _guarded(spec, obj)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""


def _guarded(spec: str, factory):
    """``factory`` whose failures are one-line :class:`LabError`: any exception it raises, or a result
    that is not an ``optax.GradientTransformation``."""
    import optax

    def candidate(**kwargs):
        try:
            tx = factory(**kwargs)
        except Exception as err:
            raise LabError(f"candidate {spec} raised {type(err).__name__}: {_first_line(err)}") from None
        if not isinstance(tx, optax.GradientTransformation):
            raise LabError(f"candidate {spec} returned {type(tx).__name__}, not an "
                           "optax.GradientTransformation: expected an optimizer factory")
        return tx

    candidate.__qualname__ = spec
    return candidate


def _parse_kwargs(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as err:
        raise LabError(f"--kwargs is not valid JSON ({err.msg} at character {err.pos}): {text!r}") from None
    if not isinstance(kwargs, dict):
        raise LabError(f"--kwargs must be a JSON object like '{{\"learning_rate\": 1e-3}}', got {text!r}")
    return kwargs


def _settings_text(kwargs: dict[str, Any], setting: str) -> str:
    text = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{text} ({setting})" if setting != "constant lr" else text


def _cmd_verify(args: argparse.Namespace) -> int:
    from lab import optim, verify

    dtypes = tuple(dict.fromkeys(args.dtype)) if args.dtype else DTYPES
    options = {"steps": args.steps, "dtypes": dtypes, "seeds": tuple(range(args.seeds)),
               "schedule": not args.no_schedule}
    if args.candidate is not None or args.reference is not None:
        if args.candidate is None or args.reference is None:
            raise LabError("--candidate and --reference go together")
        if args.optimizer is not None:
            raise LabError("--optimizer selects built-ins; it cannot be combined with --candidate")
        candidate = _load_candidate(args.candidate)
        try:
            verify.resolve_reference(args.reference)
        except ValueError as err:
            raise LabError(str(err)) from None
        checks = [(args.candidate, candidate, args.reference, _parse_kwargs(args.kwargs))]
    else:
        if args.kwargs is not None:
            raise LabError("--kwargs needs --candidate and --reference")
        if args.optimizer is not None and args.optimizer not in optim.OPTIMIZERS:
            valid = ", ".join(optim.OPTIMIZERS)
            raise LabError(f"unknown optimizer {args.optimizer!r}; valid names: {valid}")
        checks = [(e.name, e.factory, e.name, dict(kw)) for e in optim.catalogue.entries() for kw in e.verify
                  if args.optimizer in (None, e.name)]

    rows, failures = [], []
    if not args.json:
        print(HEADER, flush=True)
    for label, candidate, reference, kwargs in checks:
        if args.candidate is None:
            report = verify.compare(candidate, reference, kwargs, **options)
        else:
            report = _compare_user_candidate(verify, args.candidate, candidate, reference, kwargs, options)
        for case in report.cases:
            rows.append({"optimizer": label, "reference": report.reference, "settings": kwargs,
                         "schedule": case.setting == "schedule", "dtype": case.dtype, "steps": case.steps,
                         "max_rel_error": case.max_rel_error, "tolerance": case.tolerance,
                         "passed": case.passed,
                         "failure": None if case.failure is None else str(case.failure)})
            if case.failure is not None:
                failures.append(f"{label} ({_settings_text(kwargs, case.setting)}): {case.failure}")
        if not args.json:  # print as we go: the whole run takes a while
            for row in rows[len(rows) - len(report.cases):]:
                _print_row(row)

    passed = all(r["passed"] for r in rows)
    if args.json:  # strict JSON: non-finite errors are null, never Infinity/NaN
        print(json.dumps(verify.json_safe({"passed": passed, "results": rows}), indent=2, default=str,
                         allow_nan=False))
    else:
        n_pass = sum(r["passed"] for r in rows)
        print(f"\n{n_pass}/{len(rows)} checks passed" + ("" if passed else "; where they parted:"))
        for line in failures:
            print(f"  {line}")
    return 0 if passed else 1


def _compare_user_candidate(verify, spec, candidate, reference, kwargs, options):
    """``verify.compare`` for a user's factory: whatever the candidate raises (while built, or while
    its ``init``/``update`` run) becomes one line naming it, not a traceback."""
    try:
        return verify.compare(candidate, reference, kwargs, **options)
    except LabError:
        raise
    except Exception as err:
        cause = err.__cause__ if isinstance(err.__cause__, LabError) else None
        if cause is not None:  # the schedule run re-raises the candidate's error as a TypeError
            raise LabError(f"{cause} (with learning_rate a schedule; --no-schedule skips that run)") from None
        if isinstance(err, (ValueError, TypeError)) and "\n" not in str(err).strip():
            raise  # verify's own one-line diagnostics (structures, reference names, kwargs)
        raise LabError(f"checking candidate {spec} against {reference} failed: {type(err).__name__}: "
                       f"{_first_line(err)}") from None


HEADER = (f"{'optimizer':<10} {'settings':<72} {'dtype':<9} {'steps':>6} {'max rel err':>11} "
          f"{'tolerance':>9}  verdict")


def _print_row(row: dict[str, Any]) -> None:
    settings = _settings_text(row["settings"], "schedule" if row["schedule"] else "constant lr")
    print(f"{row['optimizer']:<10} {settings:<72} {row['dtype']:<9} {row['steps']:>6} "
          f"{row['max_rel_error']:>11.2e} {row['tolerance']:>9.1e}  {'PASS' if row['passed'] else 'FAIL'}",
          flush=True)
