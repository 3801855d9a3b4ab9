"""MNIST-1D, generated procedurally and offline: ten 1D digit templates, padded, dilated, scaled,
translated, with correlated and i.i.d. noise, sheared and subsampled to 40 points.

Greydanus, *Scaling Down Deep Learning* (2020): a benchmark small enough for a laptop that still
separates models (published test accuracies: about 32% logistic regression, 68% MLP, 94% CNN).
The generator follows the reference package ``mnist1d`` (``make_dataset(get_dataset_args())``)
step by step and draws from a private ``numpy.random.RandomState(seed)``, so with the default seed
42 it gives the published data set (4000 training and 1000 test signals), bit for bit up to
float32 rounding, and it never touches the global random state.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from lab.data import Dataset

DEFAULT_SEED = 42  # the reference generator's seed: the published data set

_TEMPLATES = np.asarray([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
])


@dataclass(frozen=True)
class Mnist1dArgs:
    """The generator's settings; the defaults are the reference's (the published data set)."""

    num_samples: int = 5000
    train_split: float = 0.8
    template_len: int = 12
    padding: tuple[int, int] = (36, 60)
    scale_coeff: float = 0.4
    max_translation: int = 48
    corr_noise_scale: float = 0.25
    iid_noise_scale: float = 2e-2
    shear_scale: float = 0.75
    final_seq_length: int = 40


def templates() -> np.ndarray:
    """(10, 12) float64 templates: whitened, starting and ending at 0, divided by 6."""
    x = _TEMPLATES - _TEMPLATES.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    x = x - x[:, :1]
    return x / 6.0


def _interpolate(x: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of ``x`` onto ``n`` equally spaced points of the same interval."""
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def _transform(x: np.ndarray, args: Mnist1dArgs, rng: np.random.RandomState) -> np.ndarray:
    """One signal from one template, drawing from ``rng`` in the reference's order."""
    low, high = args.padding
    p = low + int(rng.rand() * (high - low + 1))  # pad with zeros
    x = np.concatenate([x + 1e-8, np.zeros(p)])  # +1e-8: the template is never mistaken for padding
    x = _interpolate(x, args.template_len + high)  # dilate
    x = x * (1 + args.scale_coeff * (rng.rand() - 0.5))  # scale
    k = rng.choice(args.max_translation)  # translate (circularly)
    x = np.concatenate([x[-k:], x[:-k]])
    from scipy.ndimage import gaussian_filter1d  # here: importing scipy.ndimage takes a while

    mask = x != 0  # correlated noise where the signal is padding, then i.i.d. noise everywhere
    corr = gaussian_filter1d(args.corr_noise_scale * rng.randn(*x.shape), 2)
    x = mask * x + (1 - mask) * corr
    x = x + args.iid_noise_scale * rng.randn(*x.shape)
    x = x - args.shear_scale * (rng.rand() - 0.5) * np.linspace(-0.5, 0.5, len(x))  # shear
    return _interpolate(x, args.final_seq_length)  # subsample


def generate(seed: int = DEFAULT_SEED, args: Mnist1dArgs = Mnist1dArgs()) -> dict[str, np.ndarray]:
    """The data set as float64 NumPy arrays ``x``, ``y``, ``x_test``, ``y_test`` (labels int64).

    Signals are made class by class (``num_samples // 10`` of each), shuffled, then centred and
    scaled by the whole set's mean and standard deviation, and split ``train_split`` / rest.
    """
    rng = np.random.RandomState(seed)
    t = templates()
    per_class = args.num_samples // len(t)
    xs = np.stack([_transform(t[label], args, rng) for label in range(len(t)) for _ in range(per_class)])
    ys = np.repeat(np.arange(len(t)), per_class)
    order = rng.permutation(len(ys))
    xs, ys = xs[order], ys[order]
    xs = (xs - xs.mean()) / xs.std()
    split = int(len(ys) * args.train_split)
    return {"x": xs[:split], "y": ys[:split], "x_test": xs[split:], "y_test": ys[split:]}


@functools.lru_cache(maxsize=4)
def _cached(seed: int) -> dict[str, np.ndarray]:
    return generate(seed)


def mnist1d(seed: int | None = None) -> Dataset:
    """MNIST-1D as a :class:`lab.data.Dataset` of float32 signals (n, 40) and int32 labels.

    Args:
        seed: the generator's seed; ``None`` is the reference's 42, the published data set.
    """
    data = _cached(DEFAULT_SEED if seed is None else int(seed))
    return Dataset(jnp.asarray(data["x"], jnp.float32), jnp.asarray(data["y"], jnp.int32),
                   jnp.asarray(data["x_test"], jnp.float32), jnp.asarray(data["y_test"], jnp.int32))
