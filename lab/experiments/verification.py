"""Every optimizer of the catalogue against its optax reference, and planted bugs crossing their
tolerance: what the verifier passes, what it catches, and when.

    lab run verification [--quick]

Each optimizer runs beside its catalogue entry's reference on one gradient stream
(:func:`lab.verify.compare`) with the entry's first verification setting, in each dtype, at a constant
learning rate and, where the reference takes one, with an oscillating schedule. Beside them, the
deliberately wrong optimizers of :mod:`lab.experiments.planted` run the same way (float32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle

from lab import plotting
from lab.experiments import planted
from lab.experiments.common import Context
from lab.experiments.record import Record
from lab.optim import catalogue

DESCRIPTION = ("largest error against optax as a fraction of its tolerance, every optimizer x setting x "
               "dtype, beside planted bugs crossing their tolerance")
FIGURES = ("11_verification.png",)
SETTINGS = ("constant lr", "schedule")
FLOOR = 1e-9  # where an exact zero error is drawn on the planted panel's log axis
RATIO_RANGE = (1e-6, 1e2)  # the matrix's colour range of error / tolerance


@dataclass(frozen=True)
class Config:
    """Every optimizer of the catalogue in every dtype and setting, and every planted bug."""

    optimizers: tuple[str, ...] = field(default_factory=catalogue.names)
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float64")
    schedule: bool = True  # also run with an oscillating learning-rate schedule
    # 300 steps: enough for a step count that stalls after 256 steps to show; each optimizer costs
    # mostly its compilation, so more steps buy little here (lab verify runs 1000 on two seeds).
    steps: int = 300
    seeds: int = 1
    bugs: tuple[str, ...] = tuple(b.name for b in planted.BUGS)


def quick() -> Config:
    return Config(optimizers=("sgd", "momentum", "adam"), dtypes=("float32",), schedule=False, steps=200,
                  seeds=1, bugs=("every step x 1.001",))


def run(cfg: Config, ctx: Context) -> Record:
    """Every optimizer and planted bug against its reference; each case's largest error and tolerance."""
    from lab.verify import compare

    del ctx
    seeds = tuple(range(cfg.seeds))
    record = Record(meta={"skipped": {}, "references": {}, "planted": []})
    rows = []
    for opt in cfg.optimizers:
        entry = catalogue.get(opt)
        kwargs = dict(entry.verify[0]) if entry.verify else {"learning_rate": 1e-2}
        report = compare(entry.factory, entry.reference, kwargs, steps=cfg.steps, seeds=seeds,
                         dtypes=cfg.dtypes, schedule=cfg.schedule and entry.schedule,
                         needs_value=entry.needs_value, conventions=False)
        errors = np.full((len(SETTINGS), len(cfg.dtypes)), np.nan)  # NaN: skipped
        tolerances = np.full_like(errors, np.nan)
        for case in report.cases:
            i, j = SETTINGS.index(case.setting), cfg.dtypes.index(case.dtype)
            tolerances[i, j] = case.tolerance
            if case.ran:
                errors[i, j] = case.max_rel_error
            else:
                record.meta["skipped"].setdefault(opt, {})[case.label] = case.skipped
        record.arrays[f"{opt}.max_rel_error"], record.arrays[f"{opt}.tolerance"] = errors, tolerances
        record.meta["references"][opt] = entry.reference_name
        rows.append([opt, entry.reference_name, f"{report.max_rel_error:.2e}",
                     "PASS" if report.passed else "FAIL"])
    for i, name in enumerate(cfg.bugs):
        bug = planted.get(name)
        report = compare(bug.factory, bug.reference, dict(bug.kwargs), steps=cfg.steps, seeds=seeds,
                         dtypes=("float32",), schedule=cfg.schedule, conventions=False)
        # The case that parts first (the constant one on a tie): the one the panel draws.
        crossing = [c for c in report.ran if c.failure is not None]
        case = min(crossing, key=lambda c: c.failure.step) if crossing else report.ran[0]
        record.arrays[f"planted{i}.step_errors"] = case.step_errors
        record.meta["planted"].append({"name": name, "reference": f"optax.{bug.reference}",
                                       "case": case.label, "tolerance": case.tolerance,
                                       "first_step": None if case.failure is None else case.failure.step})
        rows.append([f"planted: {name}", f"optax.{bug.reference}", f"{report.max_rel_error:.2e}",
                     "caught" if not report.passed else "MISSED"])
    record.meta["summary"] = {"columns": ["optimizer", "reference", "max relative error", "verdict"],
                              "rows": rows}
    return record


def ratio_matrix(record: Record) -> tuple[np.ndarray, list[str]]:
    """(optimizers, settings x dtypes) largest error / tolerance (0: exactly equal; NaN: skipped), and
    the column labels."""
    cfg = record.meta["config"]
    opts = cfg["optimizers"]
    ratios = np.stack([(record.arrays[f"{o}.max_rel_error"] / record.arrays[f"{o}.tolerance"]).reshape(-1)
                       for o in opts])
    columns = [f"{s}\n{d}" for s in SETTINGS for d in cfg["dtypes"]]
    keep = ~np.all(np.isnan(ratios), axis=0)  # settings that never ran (schedule=False) are left out
    return ratios[:, keep], [c for c, k in zip(columns, keep, strict=True) if k]


def _cell_text(r: float) -> str:
    if np.isnan(r):
        return "skip"
    return "0" if r == 0 else f"{r:.0e}".replace("e-0", "e-").replace("e+0", "e")


def draw(record: Record) -> dict:
    cfg, meta = record.meta["config"], record.meta
    opts = cfg["optimizers"]
    ratios, columns = ratio_matrix(record)
    height = max(4.5, 0.27 * len(opts) + 1.8)
    title = (f"Verification against optax: {len(opts)} optimizers, {cfg['steps']} steps on one gradient "
             f"stream ({cfg['seeds']} seed{'s' if cfg['seeds'] > 1 else ''})")
    fig, axes = plotting.figure(2, width=6.0, height=height, title=title)
    ax, ax_bug = axes[0]
    shown = np.where(ratios > 0, np.clip(ratios, *RATIO_RANGE), np.nan)
    image = ax.imshow(shown, aspect="auto", cmap="viridis", norm=LogNorm(*RATIO_RANGE), interpolation="none")
    for (i, j), r in np.ndenumerate(ratios):
        if np.isnan(r) or r == 0:  # skipped: grey; exact zero: white (the image leaves both blank)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color="0.85" if np.isnan(r) else "white"))
        dark = not np.isnan(r) and 0 < r and np.log10(max(r, RATIO_RANGE[0])) < -1.5
        ax.text(j, i, _cell_text(r), ha="center", va="center", fontsize=6.5,
                color="white" if dark else ("#B00020" if r > 1 else "0.2"),
                fontweight="bold" if r > 1 else "normal")
    ax.set_yticks(range(len(opts)), [plotting.optimizer_label(o) for o in opts], fontsize=7.5)
    ax.set_xticks(range(len(columns)), columns, fontsize=7.5)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for j in range(1, len(columns)):
        ax.axvline(j - 0.5, color="white", linewidth=0.8)
    bar = fig.colorbar(image, ax=ax, shrink=0.5, pad=0.02, extend="both")
    bar.set_label("largest error / tolerance (1: fails)", fontsize=8)
    ax.set_title("Largest relative error over the run as a fraction of the dtype's tolerance\n"
                 "0: bitwise identical at every step; skip: the reference takes no schedule", fontsize=9)

    for k, bug in enumerate(meta["planted"]):
        ratio = record.arrays[f"planted{k}.step_errors"] / bug["tolerance"]
        color = plotting.series_color(k)
        t = np.arange(ratio.size)
        setting = bug["case"].split(", ")[0]
        s = bug["first_step"]
        caught = "never crosses" if s is None else f"first crosses at step {s}"
        ax_bug.plot(t, np.where(ratio > 0, ratio, FLOOR), color=color, linewidth=1.4,
                    label=f"{bug['name']} ({setting}, vs {bug['reference']}): {caught}")
        if s is not None:
            ax_bug.plot(s, max(ratio[s], FLOOR), "o", color=color, markersize=7, markeredgecolor="black")
    ax_bug.axhline(1.0, color="#B00020", linestyle="--", linewidth=1.2,
                   label="tolerance (error / tolerance = 1)")
    ax_bug.set_ylim(FLOOR / 3, 1e7)
    plotting.style(ax_bug, "Planted bugs (float32): error / tolerance per step\no: the first step caught; "
                   f"an exact 0 is drawn at {FLOOR:g}", "step (0 = first update)",
                   "relative error / tolerance (log)", logy=True, legend=False)
    ax_bug.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, framealpha=0.85)
    return {"11_verification.png": fig}
