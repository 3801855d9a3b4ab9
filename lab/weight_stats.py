"""Per-run summaries of a sweep's final weights: norm, share of near-zero weights, and a histogram
over each run's own range (:func:`weight_stats`).
"""

from __future__ import annotations

import numpy as np

from lab.regularizers import weights

__all__ = ["HIST_BINS", "NEAR_ZERO", "weight_stats"]

NEAR_ZERO = 1e-3  # |w| below this counts as a near-zero weight
HIST_BINS = 50


def weight_stats(params, bins: int = HIST_BINS) -> dict[str, np.ndarray]:
    """Per-run summaries of the weights (leaves of rank >= 2 besides the run axis, see
    :func:`lab.regularizers.weights`) of params with a leading run axis.

    Returns ``weight_norm`` (runs,), ``near_zero_fraction`` (runs,), ``weight_hist`` (runs, bins)
    and ``hist_edges`` (runs, bins + 1): run ``r``'s ``bins`` equal bins over ``[-m_r, m_r]``,
    ``m_r`` the largest finite ``|w|`` of run ``r`` itself (1 if all its weights are 0), so a run's
    histogram does not depend on the other runs of its sweep. Bins are ``[e_i, e_{i+1})``, the last
    one closed; non-finite weights are not counted.
    """
    w = np.concatenate([np.asarray(x).reshape(x.shape[0], -1) for x in weights(params, batch_dims=1)],
                       axis=1)
    runs = w.shape[0]
    finite = np.isfinite(w)
    m = np.max(np.where(finite, np.abs(w), 0), axis=1, initial=0).astype(np.float32)
    m = np.where(m > 0, m, np.float32(1))
    edges = np.stack([np.linspace(-mr, mr, bins + 1, dtype=np.float32) for mr in m]).reshape(runs, bins + 1)
    hist = np.zeros((runs, bins), np.int32)
    for r in range(runs):
        idx = np.clip(np.searchsorted(edges[r], w[r][finite[r]], side="right") - 1, 0, bins - 1)
        hist[r] = np.bincount(idx, minlength=bins)
    return {
        "weight_norm": np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=1)).astype(np.float32),
        "near_zero_fraction": np.mean(np.abs(w) < NEAR_ZERO, axis=1).astype(np.float32),
        "weight_hist": hist,
        "hist_edges": edges,
    }
