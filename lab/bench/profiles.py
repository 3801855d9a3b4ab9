"""Scoring a benchmark: steps to a validation target, medians over seeds, AlgoPerf's performance
profiles and benchmark score, bootstrap intervals of scores and ranks, and the expected best
result of k tuning trials. Plain numpy arrays in and out; each function's docstring gives its formula.

The pipeline, for optimizers ``s``, workloads ``w`` and seeds:
``steps_to_target`` (per run) -> ``median_steps`` (over seeds: t_{s,w}) -> ``performance_ratios``
-> ``profile_scores`` (and ``ranks``); ``bootstrap`` repeats the last three on resampled seeds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata

__all__ = ["TAU_MAX", "Bootstrap", "benchmark_scores", "bootstrap", "expected_max", "fraction_reaching",
           "median_steps", "performance_profile", "performance_ratios", "profile_scores", "ranks",
           "steps_to_target"]

TAU_MAX = 4.0  # AlgoPerf's r_max: no credit for more than 4x the fastest optimizer's steps


def _steps(steps, name: str, min_ndim: int = 1) -> np.ndarray:
    """``steps`` as float64, checked: no NaN, none negative (``inf``: never reached)."""
    steps = np.asarray(steps, dtype=np.float64)
    if steps.ndim < min_ndim or steps.size == 0:
        raise ValueError(f"{name}: expected a non-empty array of at least {min_ndim} dimension(s), "
                         f"got shape {steps.shape}")
    if np.isnan(steps).any() or (steps < 0).any():
        raise ValueError(f"{name}: steps must be >= 0 or inf (never reached), got "
                         f"{steps[np.isnan(steps) | (steps < 0)][0]}")
    return steps


def steps_to_target(eval_steps, metric_curves, target: float, higher_is_better: bool) -> np.ndarray:
    r"""The first evaluation step at which each run's validation metric reaches ``target``.

    .. math:: t = \min\{s_j : m_j \ge \text{target}\}\ (\text{or } m_j \le \text{target}),
        \quad t = \infty \text{ if there is none.}

    A NaN or infinite metric (a diverged run) never reaches the target; a run that reached it before
    diverging keeps that step, since training stops at the target (as in AlgoPerf).

    Args:
        eval_steps: ``(E,)`` the steps at which the curves were evaluated, strictly increasing, >= 0.
        metric_curves: ``(..., E)`` one validation curve per run (any leading shape: seeds, trials).
        target: the validation target, a finite number.
        higher_is_better: ``True`` for accuracy-like metrics, ``False`` for losses and error rates.

    Returns:
        float64 ``(...)``: each run's step at the target, ``inf`` where it never reaches it.
    """
    steps = np.asarray(eval_steps, dtype=np.float64)
    if steps.ndim != 1 or steps.size == 0 or not np.all(np.isfinite(steps)) or (steps < 0).any() \
            or (np.diff(steps) <= 0).any():
        raise ValueError(f"eval_steps: expected a non-empty 1-d array of finite steps >= 0 in strictly "
                         f"increasing order, got {np.asarray(eval_steps).tolist()}")
    curves = np.asarray(metric_curves, dtype=np.float64)
    if curves.ndim == 0 or curves.shape[-1] != steps.size:
        raise ValueError(f"metric_curves: expected shape (..., {steps.size}) to match eval_steps, "
                         f"got {curves.shape}")
    if not isinstance(target, int | float | np.floating | np.integer) or isinstance(target, bool) \
            or not np.isfinite(target):
        raise ValueError(f"target: expected a finite number, got {target!r}")
    if not isinstance(higher_is_better, bool | np.bool_):
        raise ValueError(f"higher_is_better: expected True or False, got {higher_is_better!r}")
    finite = np.isfinite(curves)
    safe = np.where(finite, curves, 0.0)  # (compares NaN without a warning; masked by `finite`)
    reached = finite & (safe >= target if higher_is_better else safe <= target)
    first = np.argmax(reached, axis=-1)  # the first True; 0 where none (masked below)
    return np.where(reached.any(axis=-1), steps[first], np.inf)


def median_steps(steps, axis: int = -1) -> np.ndarray:
    r"""The median of ``steps`` over ``axis`` (seeds), with ``inf`` (never reached) as the largest value.

    For n sorted values :math:`t_{(1)} \le \dots \le t_{(n)}` the median is
    :math:`\tfrac12 (t_{(\lfloor (n+1)/2 \rfloor)} + t_{(\lceil (n+1)/2 \rceil)})`: ``inf`` as soon as
    the middle seed never reaches the target (median of ``[100, inf, inf]`` is ``inf``, of
    ``[100, 200, inf]`` is 200). With an even number of seeds it is finite only if more than half of
    them reach the target.
    """
    steps = _steps(steps, "steps")
    ordered = np.sort(steps, axis=axis)
    n = ordered.shape[axis]
    low = np.take(ordered, (n - 1) // 2, axis=axis)
    high = np.take(ordered, n // 2, axis=axis)
    return 0.5 * (low + high)


def fraction_reaching(steps, axis: int = -1) -> np.ndarray:
    """The fraction of runs (along ``axis``) that reach the target: finite ``steps``."""
    return np.isfinite(_steps(steps, "steps")).mean(axis=axis)


def performance_ratios(times) -> np.ndarray:
    r"""AlgoPerf's performance ratios: each optimizer's steps over the fastest optimizer's, per workload.

    .. math:: r_{s,w} = \frac{t_{s,w}}{\min_{s'} t_{s',w}} \in [1, \infty]

    ``inf`` stays ``inf`` (never reached), so on a workload no optimizer solves every ratio is
    ``inf``. A workload solved at step 0 (the target met at initialisation) gives ratio 1 to the
    optimizers at 0 and ``inf`` to the others (the limit of t / 0).

    Args:
        times: ``(..., S, W)`` steps to target of S optimizers on W workloads (``inf``: never).

    Returns:
        float64 ``(..., S, W)``.
    """
    times = _steps(times, "times", min_ndim=2)
    best = np.broadcast_to(times.min(axis=-2, keepdims=True), times.shape)
    ratios = np.full(times.shape, np.inf)
    divisible = np.isfinite(times) & (best > 0)
    ratios[divisible] = times[divisible] / best[divisible]
    ratios[(times == 0) & (best == 0)] = 1.0
    return ratios


def performance_profile(ratios, taus) -> np.ndarray:
    r"""Dolan & Moré's performance profile as AlgoPerf uses it: the fraction of workloads on which
    each optimizer is within a factor tau of the fastest.

    .. math:: \rho_s(\tau) = \frac{1}{W} \big|\{w : r_{s,w} \le \tau\}\big|

    Args:
        ratios: ``(S, W)`` from :func:`performance_ratios`.
        taus: ``(T,)`` the factors at which to evaluate the profile.

    Returns:
        float64 ``(S, T)``.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.ndim != 2:
        raise ValueError(f"ratios: expected shape (optimizers, workloads), got {ratios.shape}")
    taus = np.asarray(taus, dtype=np.float64)
    if taus.ndim != 1:
        raise ValueError(f"taus: expected a 1-d array, got shape {taus.shape}")
    return (ratios[:, None, :] <= taus[None, :, None]).mean(axis=-1)


def profile_scores(ratios, tau_max: float = TAU_MAX) -> np.ndarray:
    r"""AlgoPerf's benchmark score: the normalised area under each optimizer's performance profile.

    .. math:: B_s = \frac{1}{\tau_{\max} - 1} \int_1^{\tau_{\max}} \rho_s(\tau)\, d\tau
        = \frac{1}{W} \sum_w \frac{\max(0,\ \tau_{\max} - r_{s,w})}{\tau_{\max} - 1} \in [0, 1]

    on a linear tau axis with :math:`\tau_{\max} = r_{\max} = 4`, as the AlgoPerf rules define it
    (Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms", section "Benchmark score
    using performance profiles"; mlcommons/algorithmic-efficiency, DOCUMENTATION.md): an optimizer
    more than 4x slower than the fastest gets no credit on that workload, as one that never reaches
    the target. The integral of the step function is exact here (each workload contributes
    :math:`\int_1^{\tau_{\max}} [r \le \tau] d\tau = \max(0, \tau_{\max} - r)` for r >= 1);
    AlgoPerf's scoring code approximates it with the trapezoid rule on a grid of taus.

    Args:
        ratios: ``(..., S, W)`` from :func:`performance_ratios` (all >= 1).
        tau_max: the upper integration limit, > 1.

    Returns:
        float64 ``(..., S)``, higher is better.
    """
    if not isinstance(tau_max, int | float) or isinstance(tau_max, bool) or not 1 < tau_max < np.inf:
        raise ValueError(f"tau_max: expected a finite number > 1, got {tau_max!r}")
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.ndim < 2 or np.isnan(ratios).any() or (ratios < 1).any():
        raise ValueError(f"ratios: expected shape (..., optimizers, workloads) of values >= 1 or inf "
                         f"(from performance_ratios), got shape {ratios.shape}")
    credit = np.maximum(tau_max - ratios, 0.0) / (tau_max - 1.0)  # r >= 1: credit <= 1
    return credit.mean(axis=-1)


def ranks(scores) -> np.ndarray:
    """Rank of each optimizer by score along the last axis: 1 is the highest score; tied scores share
    the mean of the ranks they span (two optimizers tied for first are both 1.5)."""
    scores = np.asarray(scores, dtype=np.float64)
    return rankdata(-scores, method="average", axis=-1)


def benchmark_scores(steps, tau_max: float = TAU_MAX) -> np.ndarray:
    """Scores from per-seed steps to target: ``steps (..., S, W, seeds)`` -> median over seeds ->
    performance ratios -> :func:`profile_scores` ``(..., S)``."""
    steps = _steps(steps, "steps", min_ndim=3)
    return profile_scores(performance_ratios(median_steps(steps, axis=-1)), tau_max)


class Bootstrap(NamedTuple):
    """Point estimates and percentile bootstrap intervals, each ``(S,)`` float64 over optimizers."""

    score: np.ndarray  # B_s from all seeds
    score_low: np.ndarray
    score_high: np.ndarray
    rank: np.ndarray  # 1 = best, from all seeds
    rank_low: np.ndarray
    rank_high: np.ndarray


def bootstrap(steps, rng: np.random.Generator | int, *, resamples: int = 1000, level: float = 0.95,
              tau_max: float = TAU_MAX) -> Bootstrap:
    """Percentile bootstrap intervals of each optimizer's score and rank over seeds.

    Each resample draws, independently for every (optimizer, workload), ``n`` seeds with replacement
    from its ``n`` seeds, and recomputes the medians, the performance ratios, the scores and the
    ranks; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    resampled values (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13).

    Args:
        steps: ``(S, W, seeds)`` steps to target per optimizer, workload and seed (``inf``: never).
        rng: a ``numpy.random.Generator`` (or an int seed for one); the same one gives the same result.
        resamples: number of bootstrap resamples.
        level: the intervals' coverage, in (0, 1).
        tau_max: as in :func:`profile_scores`.
    """
    steps = _steps(steps, "steps", min_ndim=3)
    if steps.ndim != 3:
        raise ValueError(f"steps: expected shape (optimizers, workloads, seeds), got {steps.shape}")
    if isinstance(rng, int) and not isinstance(rng, bool):
        rng = np.random.default_rng(rng)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator or an int seed, got {type(rng).__name__}")
    if not isinstance(resamples, int) or isinstance(resamples, bool) or resamples < 1:
        raise ValueError(f"resamples: expected a positive integer, got {resamples!r}")
    if not isinstance(level, float) or not 0 < level < 1:
        raise ValueError(f"level: expected a float in (0, 1), got {level!r}")
    score = benchmark_scores(steps, tau_max)
    index = rng.integers(0, steps.shape[-1], size=(resamples, *steps.shape))
    resampled = np.take_along_axis(steps[None], index, axis=-1)  # (resamples, S, W, seeds)
    scores = benchmark_scores(resampled, tau_max)  # (resamples, S)
    quantiles = [(1 - level) / 2, (1 + level) / 2]
    score_low, score_high = np.quantile(scores, quantiles, axis=0)
    rank_low, rank_high = np.quantile(ranks(scores), quantiles, axis=0)
    return Bootstrap(score, score_low, score_high, ranks(score), rank_low, rank_high)


def expected_max(values, higher_is_better: bool = True) -> np.ndarray:
    r"""The expected best validation result of k tuning trials, for k = 1 .. N (Dodge et al. 2019,
    "Show Your Work: Improved Reporting of Experimental Results", EMNLP, section 3).

    The k trials are drawn with replacement from the N observed ones, so with the values sorted
    from worst to best, :math:`v_{(1)}, \dots, v_{(N)}`, the best of k draws is :math:`v_{(i)}` with
    probability :math:`(i/N)^k - ((i-1)/N)^k` and

    .. math:: E[\max_k] = \sum_{i=1}^N v_{(i)} \big((i/N)^k - ((i-1)/N)^k\big).

    For ``higher_is_better=False`` "best" is the minimum (the values are sorted largest first).

    Args:
        values: ``(N,)`` finite validation results of N trials (give a diverged trial a finite worst
            value, such as its initial loss or chance accuracy).
        higher_is_better: whether the best trial has the largest value.

    Returns:
        float64 ``(N,)``: entry ``k - 1`` is the expectation for k trials.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"values: expected a non-empty 1-d array of finite results (give diverged trials "
                         f"a finite worst value), got {np.asarray(values).tolist()}")
    ordered = np.sort(values) if higher_is_better else np.sort(values)[::-1]
    n = values.size
    k = np.arange(1, n + 1, dtype=np.float64)[:, None]
    i = np.arange(1, n + 1, dtype=np.float64)[None, :]
    weights = (i / n) ** k - ((i - 1) / n) ** k  # (k, i): P(best of k draws is the i-th worst)
    return weights @ ordered
