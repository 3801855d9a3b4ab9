"""Per-step relative error of every optimizer of the catalogue against its optax reference.

    lab run verification [--quick]

Each optimizer runs beside its catalogue entry's reference (``optax.adam`` for ``adam``,
``optax.sgd(momentum=beta)`` for ``momentum``) on one gradient stream (:func:`lab.verify.compare`),
at ``learning_rate`` and the entry's first verification setting otherwise, and, where the reference
takes one, with an oscillating schedule of it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lab import plotting
from lab.experiments.common import Context
from lab.experiments.record import Record
from lab.optim import catalogue

DESCRIPTION = ("per-step relative error of each hand-written optimizer against optax, with the dtype's "
               "tolerance")
FIGURES = ("11_verification.png",)
FLOOR = 1e-12  # where an exact zero error is drawn on the log axis
DTYPE_COLORS = {"float32": "#332288", "bfloat16": "#CC6677", "float64": "#117733"}


@dataclass(frozen=True)
class Config:
    """Every optimizer of the catalogue against its optax reference, in each dtype."""

    optimizers: tuple[str, ...] = field(default_factory=catalogue.names)
    learning_rate: float = 1e-2
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float64")
    schedule: bool = True  # also run with an oscillating learning-rate schedule
    steps: int = 1000
    seeds: int = 2


def quick() -> Config:
    return Config(optimizers=("sgd", "momentum", "adam"), dtypes=("float32",), schedule=False, steps=200,
                  seeds=1)


def run(cfg: Config, ctx: Context) -> Record:
    """Every optimizer against its reference on one gradient stream; per-step relative errors."""
    from lab.verify import compare

    del ctx
    record = Record(meta={"cases": {}, "references": {}})
    rows = []
    for opt in cfg.optimizers:
        entry = catalogue.get(opt)
        kwargs = dict(entry.verify[0]) if entry.verify else {"learning_rate": cfg.learning_rate}
        if "learning_rate" in kwargs:
            kwargs["learning_rate"] = cfg.learning_rate
        report = compare(entry.factory, entry.reference, kwargs, steps=cfg.steps,
                         seeds=tuple(range(cfg.seeds)), dtypes=cfg.dtypes,
                         schedule=cfg.schedule and entry.schedule)
        record.arrays[f"{opt}.step_errors"] = report.step_errors
        record.arrays[f"{opt}.tolerances"] = report.tolerances
        record.meta["cases"][opt] = report.labels
        record.meta["references"][opt] = entry.reference_name
        rows.append([opt, entry.reference_name, f"{report.max_rel_error:.2e}",
                     "PASS" if report.passed else "FAIL"])
    record.meta["summary"] = {"columns": ["optimizer", "reference", "max relative error", "verdict"],
                              "rows": rows}
    return record


def draw(record: Record) -> dict:
    a, meta = record.arrays, record.meta
    opts = meta["config"]["optimizers"]
    cols = min(3, len(opts))
    rows = -(-len(opts) // cols)
    steps = a[f"{opts[0]}.step_errors"].shape[1]
    title = (f"Verification: per-step relative error of each hand-written optimizer against optax\n({steps} "
             "steps, same gradient stream; dotted lines: each dtype's tolerance)")
    fig, axes = plotting.figure(cols, rows, width=4.8, height=3.6, title=title)
    for ax, o in zip(axes.flat, opts, strict=False):
        errors, tols, labels = a[f"{o}.step_errors"], a[f"{o}.tolerances"], meta["cases"][o]
        t = np.arange(1, errors.shape[1] + 1)
        zero_cases = []
        for err, tol, label in zip(errors, tols, labels, strict=True):
            setting, dtype = label.split(", ")
            color = DTYPE_COLORS.get(dtype, "0.3")
            if np.all(err == 0):
                zero_cases.append(label)
            ax.plot(t, np.where(err > 0, err, FLOOR), color=color,
                    linestyle="-" if setting == "constant lr" else "--", linewidth=1.2, label=label)
            ax.axhline(tol, color=color, linestyle=":", linewidth=1.2)
        ax.set_ylim(FLOOR / 3, 1.0)
        if zero_cases:
            ax.text(0.5, 0.3, f"bitwise identical to optax: error exactly 0 at every step\n"
                    f"in {len(zero_cases)} of {len(labels)} cases (drawn at {FLOOR:g})",
                    transform=ax.transAxes, ha="center", fontsize=7.5, color="0.25")
        plotting.style(ax, f"{plotting.optimizer_label(o)} vs {meta['references'][o]}", "step",
                       "relative error (max norm, log)", logy=True, legend_loc="center right")
    for ax in list(axes.flat)[len(opts):]:
        ax.axis("off")
    return {"11_verification.png": fig}
