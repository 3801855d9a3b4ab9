"""The sweep engine's time and throughput against the number of runs, beside the baselines, from
``benchmarks/sweep.py``'s JSON files.

    lab run speed

Nothing is measured here: the first path (the CPU run) is required for a measured figure; later
ones (another device's run, recorded there with ``--out``) are drawn beside it when present.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import numpy as np
from matplotlib.transforms import blended_transform_factory

from lab import plotting
from lab.experiments.common import Context
from lab.experiments.record import Record

DESCRIPTION = ("the sweep engine's time and throughput against the number of runs, beside the baselines of "
               "benchmarks/sweep.py (read from its JSON, never rerun here)")
FIGURES = ("12_speed.png",)
REUSE = False  # it only reads files that may have changed: always reread them


@dataclass(frozen=True)
class Config:
    """The benchmark files to read, the one asked for first."""

    paths: tuple[str, ...] = (os.path.join("benchmarks", "results", "sweep_cpu.json"),
                              os.path.join("benchmarks", "results", "sweep_gpu.json"))


def quick() -> Config:
    return Config()


def run(cfg: Config, ctx: Context) -> Record:
    """Read ``benchmarks/sweep.py``'s JSON files (those that exist); nothing is measured here."""
    del ctx
    record = Record(meta={"path": cfg.paths[0], "measured": os.path.exists(cfg.paths[0]), "benchmarks": []})
    rows = []
    for path in cfg.paths if record.meta["measured"] else ():
        if not os.path.exists(path):
            continue
        with open(path) as f:
            bench = json.load(f)
        record.meta["benchmarks"].append(bench)
        rows.append([str(bench.get("device")), str(bench.get("runs")), str(bench.get("steps")),
                     *(f"{bench.get(k)}" for k in ("lab_seconds", "optax_loop_seconds", "torch_seconds"))])
    if not rows:
        command = f"run: python benchmarks/sweep.py --json --out {cfg.paths[0]}"
        rows = [["not measured yet", command, "", "", "", ""]]
    record.meta["summary"] = {"columns": ["device", "runs", "steps", "lab s", "optax loop s", "torch s"],
                              "rows": rows}
    return record


def _short_device(bench: dict, i: int) -> str:
    return re.sub(r",\s*\d+ device\(s\)$", "", str(bench.get("device", f"device {i}")))


def draw(record: Record) -> dict:
    meta = record.meta
    benches = meta.get("benchmarks") or []
    title = "Speed of the sweep engine (one compiled program for all runs)"
    if benches:
        notes = benches[0].get("notes", "").split(";")[0]
        title += f"\n{' and '.join(_short_device(b, i) for i, b in enumerate(benches))}; {notes}"
    fig, axes = plotting.figure(3, width=5.6, height=4.4, title=title)
    ax_scale, ax_rate, ax_base = axes[0]
    if not benches:
        for ax in (ax_scale, ax_rate, ax_base):
            ax.axis("off")
        text = (f"not measured yet\n\nrun  python benchmarks/sweep.py --json --out {meta['path']}\n"
                "then  lab run speed")
        fig.text(0.5, 0.45, text, ha="center", va="center", fontsize=12)
        return {"12_speed.png": fig}
    adam = plotting.optimizer_color("adam")
    markers, hatches = ("o", "^", "s"), ("", "//", "..")
    for i, bench in enumerate(benches):
        scaling = bench.get("scaling") or []
        if not scaling:
            continue
        device = _short_device(bench, i)
        runs = np.array([s["runs"] for s in scaling], np.float64)
        total = np.array([s["seconds"] for s in scaling], np.float64)
        compile_s = np.array([s.get("compile_seconds", np.nan) for s in scaling], np.float64)
        ax_scale.plot(runs, total, marker=markers[i % 3], color=adam, linestyle=plotting.series_linestyle(i),
                      label=f"lab sweep run time, {device}")
        compiled = np.where(compile_s > 0.01, compile_s, np.nan)  # ~0 s: a program cached by an earlier point
        ax_scale.plot(runs, compiled, marker=markers[i % 3], color="0.45",
                      linestyle=plotting.series_linestyle(i), markerfacecolor="none",
                      label=f"compile time (once), {device}")
        if i == 0:
            ax_scale.plot(runs, total[0] * runs / runs[0], linestyle=":", color="0.65",
                          label="linear in runs (from the first point)")
    first = benches[0]
    _throughput(ax_rate, benches)
    fig.supxlabel("\n".join(_caption(b, i) for i, b in enumerate(benches)), fontsize=8)
    plotting.style(ax_scale,
                   f"Time against number of runs (Adam, digits MLP, {first.get('steps')} steps each)",
                   "runs in the sweep", "seconds", logx=True, logy=True, legend_loc="upper left")
    columns = [("lab sweep", "lab_seconds", adam),
               ("Python loop over\na jitted optax step", "optax_loop_seconds", "#88CCEE"),
               ("PyTorch eager\ntorch.optim.Adam", "torch_seconds", "#DDCC77")]
    width = 0.8 / len(benches)
    for i, bench in enumerate(benches):
        device = _short_device(bench, i)
        lab_s = bench.get("lab_seconds")
        for j, (_, key, color) in enumerate(columns):
            x = j - 0.4 + width * (i + 0.5)
            value = bench.get(key)
            if value is None:
                ax_base.text(x, 1.0, "not\nmeasured", ha="center", va="bottom", fontsize=7,
                             transform=blended_transform_factory(ax_base.transData, ax_base.transAxes))
                continue
            ax_base.bar(x, float(value), width=width * 0.95, color=color, edgecolor="k", hatch=hatches[i % 3],
                        label=device if j == 0 else None)
            text = f"{float(value):.3g} s"
            if j and lab_s:
                text += f"\n{value / lab_s:.0f}x"
            ax_base.text(x, float(value), text, ha="center", va="bottom", fontsize=7)
    ax_base.set_xticks(np.arange(len(columns)), [c for c, *_ in columns], fontsize=8)
    ax_base.margins(y=0.2)
    fracs = ", ".join(f"{b['matmul_rate_fraction']:.0%}" for b in benches
                      if isinstance(b.get("matmul_rate_fraction"), int | float))
    extra = f"; lab at {fracs} of the matmul rate" if fracs else ""
    plotting.style(ax_base, f"{first.get('runs')} runs x {first.get('steps')} steps, run time{extra}", "",
                   "seconds (log scale; Nx = the lab's time)", logy=True, legend_loc="upper left")
    return {"12_speed.png": fig}


def _points(bench: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(runs, run-steps per second, blocks)`` of a benchmark's scaling points (older files without
    ``run_steps_per_second`` or ``blocks``: computed from ``seconds``, one block)."""
    scaling = bench.get("scaling") or []
    runs = np.array([s["runs"] for s in scaling], np.float64)
    rate = np.array([s.get("run_steps_per_second") or s["runs"] * bench["steps"] / s["seconds"]
                     for s in scaling], np.float64)
    blocks = np.array([s.get("blocks", 1) for s in scaling], np.int64)
    return runs, rate, blocks


def _throughput(ax, benches: list[dict]) -> None:
    """Run-steps per second against runs, log-log; points that ran in several blocks ringed."""
    adam = plotting.optimizer_color("adam")
    markers = ("o", "^", "s")
    ringed = False
    for i, bench in enumerate(benches):
        runs, rate, blocks = _points(bench)
        if not runs.size:
            continue
        ax.plot(runs, rate, marker=markers[i % 3], color=adam, linestyle=plotting.series_linestyle(i),
                label=f"lab sweep, {_short_device(bench, i)}")
        split = blocks > 1
        if split.any():
            budget = bench.get("memory_budget_bytes")
            within = f" within {budget / 2**30:.1f} GiB" if budget else ""
            ax.plot(runs[split], rate[split], linestyle="none", marker="o", markersize=13,
                    markerfacecolor="none", markeredgecolor="#CC3311", markeredgewidth=1.5,
                    label=None if ringed else f"run in blocks{within} (their number beside)")
            ringed = True
            for x, y, b in zip(runs[split], rate[split], blocks[split], strict=True):
                ax.annotate(f"{b}", (x, y), xytext=(7, -11), textcoords="offset points", fontsize=8,
                            color="#CC3311")
    steps = benches[0].get("steps")
    plotting.style(ax, f"Throughput (Adam, digits MLP, {steps} steps each)", "runs in the sweep",
                   "run-steps per second (runs x steps / s)", logx=True, logy=True, legend_loc="upper left")


def _caption(bench: dict, i: int) -> str:
    """Where and how a benchmark file was measured, for the figure's caption."""
    command = bench.get("command") or "python benchmarks/sweep.py"
    versions = bench.get("versions") or {}
    jax_version = f", jax {versions['jax']}" if versions.get("jax") else ""
    return f"measured on {_short_device(bench, i)}{jax_version} with: {command}"
