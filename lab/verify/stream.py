"""The stream both optimizers see (initial parameters, gradients, loss values) and the per-step
error statistics computed from their updates. See docs/verify.md for why the defaults look so.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np

# The default tree: odd shapes, a scalar, a length-1 vector, matrices (Muon orthogonalizes them) and
# one whose two dimensions reach 128 (where Adafactor factors its second moment); one gradient
# scale per leaf.
DEFAULT_TREE: dict[str, tuple[int, ...]] = {
    "w": (7, 5),
    "b": (33,),
    "scalar": (),
    "one": (1,),
    "cube": (3, 1, 2),
    "tiny": (4,),
    "big": (129, 128),
}
DEFAULT_SCALES: dict[str, float] = {"w": 1.0, "b": 1e-3, "scalar": 30.0, "one": 1e-6, "cube": 0.1,
                                    "tiny": 1e-6, "big": 0.01}
ZERO_FRACTION = 0.1  # the fraction of exact zeros in the gradients
IMAG_SEED = 1_000_003  # a complex stream's imaginary part is the real stream of seed + IMAG_SEED


def is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(isinstance(d, int) for d in x)


@dataclasses.dataclass(frozen=True)
class Layout:
    """A tree of shapes laid out in one flat vector: leaf ``i`` is ``flat[..., offsets[i]:offsets[i+1]]``."""

    treedef: Any
    paths: tuple[str, ...]  # e.g. "['w']"
    shapes: tuple[tuple[int, ...], ...]
    scales: tuple[float, ...]
    offsets: tuple[int, ...]  # len(shapes) + 1

    @property
    def size(self) -> int:
        return self.offsets[-1]

    def split(self, flat):
        """The leaves (a list) of a ``(..., size)`` array, each reshaped to ``(..., *shape)``."""
        lead = flat.shape[:-1]
        return [flat[..., a:b].reshape((*lead, *shape))
                for a, b, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes, strict=True)]

    def unflatten(self, leaves):
        return jax.tree.unflatten(self.treedef, list(leaves))


def layout(tree: Any, scales: Any) -> Layout:
    """The :class:`Layout` of a tree whose leaves are shape tuples, with a like tree of scales."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_shape)
    for path, shape in with_paths:
        if not is_shape(shape) or any(d < 0 for d in shape):
            raise ValueError(f"tree leaves must be shape tuples of non-negative ints, got {shape!r} at "
                             f"{jax.tree_util.keystr(path) or '<root>'}")
    shapes = tuple(tuple(s) for _, s in with_paths)
    try:
        leaf_scales = jax.tree.leaves(jax.tree.map(lambda _, s: float(s), tree, scales, is_leaf=is_shape))
    except (ValueError, TypeError) as err:
        raise ValueError(f"scales must be a tree like tree with one number per leaf ({err})") from None
    offsets = tuple(int(x) for x in np.cumsum([0, *(int(np.prod(s)) for s in shapes)]))
    return Layout(treedef, tuple(jax.tree_util.keystr(p) or "<root>" for p, _ in with_paths), shapes,
                  tuple(leaf_scales), offsets)


@functools.lru_cache(maxsize=4)
def _seed_stream(seed: int, steps: int, shapes: tuple, scales: tuple) -> tuple[np.ndarray, ...]:
    sizes = [int(np.prod(s)) for s in shapes]
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(sum(sizes)).astype(np.float32)
    scale = np.repeat(np.asarray(scales, np.float32), sizes)
    params0 = mean + rng.standard_normal(sum(sizes), dtype=np.float32)
    grads = rng.standard_normal((steps, sum(sizes)), dtype=np.float32)
    grads += mean
    grads *= scale
    grads[rng.random((steps, sum(sizes)), dtype=np.float32) < ZERO_FRACTION] = 0.0
    values = (0.5 + rng.random(steps)).astype(np.float32)
    for a in (params0, grads, values):
        a.flags.writeable = False
    return params0, grads, values


def stream(lay: Layout, seeds: tuple[int, ...], steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per seed, float32: initial params ``(seeds, size)``, gradients ``(seeds, steps, size)`` and
    loss values ``(seeds, steps)``.

    Leaf ``i``'s gradients are ``scale_i (mean + noise_t)`` with a per-element mean and unit
    Gaussian noise, about 10% of them exactly zero; its initial parameters are ``mean + noise``
    (order 1, whatever the scale); the loss values are uniform in [0.5, 1.5). Drawn with NumPy up
    front (cached per seed).
    """
    per_seed = [_seed_stream(int(s), steps, lay.shapes, lay.scales) for s in seeds]
    return tuple(np.stack([p[i] for p in per_seed]) for i in range(3))


# ----------------------------------------------------------------------------- per-step statistics

STAT_NAMES = ("abs", "idx", "cand", "ref", "ref_max", "ref_sumsq")


def step_stats(xp, c, r, allowance=None):
    """One step of one leaf: ``c`` and ``r`` are the flattened ``(..., n)`` updates (same dtype).

    ``xp`` is ``numpy`` or ``jax.numpy``. Returns, over the last axis: the largest absolute error
    (``inf`` where non-finite values differ; less ``allowance`` per element, when given, floored at
    0), its index, both values there, the largest finite ``|r|`` and the sum of finite ``r**2``.
    """
    finite_r, finite_c = xp.isfinite(r), xp.isfinite(c)
    # Non-finite values must match exactly: NaN for NaN, the same infinity.
    same_nonfinite = xp.where(finite_r, finite_c, (c == r) | (xp.isnan(c) & xp.isnan(r)))
    both = finite_r & finite_c
    diff = xp.abs(xp.where(both, c, 0) - xp.where(both, r, 0))
    if allowance is not None:
        diff = xp.maximum(diff - allowance, 0)
    diff = xp.where(same_nonfinite, diff, xp.inf)
    idx = xp.argmax(diff, axis=-1)
    pick = lambda x: xp.take_along_axis(x, idx[..., None], axis=-1)[..., 0]  # noqa: E731
    ref_abs = xp.where(finite_r, xp.abs(r), 0)
    return (pick(diff), idx, pick(c), pick(r), xp.max(ref_abs, axis=-1), xp.sum(ref_abs * ref_abs, axis=-1))
