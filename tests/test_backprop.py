"""The hand-written backprop against ``jax.value_and_grad`` and central finite differences.

The table: every activation (plus two with non-default parameters) x every loss x every penalty
(none, L1, L2, both) x two kinds of point (generic, and one sitting on the kinks) on a two-hidden-
layer MLP, and the same for one loss each on odd shapes (a batch of 1, one hidden layer, five hidden
layers, no hidden layer), in float64 (against autodiff and finite differences) and float32 (against
autodiff). Gradients are compared leaf by leaf (see :func:`_grad_errors`), so a wrong bias cannot
hide in the norm of the weights. Compilation is what costs time here, so one program per dtype runs
the whole table: penalties, points and activation rows are vmapped (see :func:`_row_activation`),
and only the (shape, loss) cells are unrolled.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lab.activations import ACTIVATIONS, Activation, get_activation
from lab.backprop import mlp_value_and_grad, output_delta
from lab.losses import LOSSES, get_loss
from lab.models import mlp
from lab.regularizers import regularized

ACTIVATION_ROWS = {name: get_activation(name) for name in ACTIVATIONS} | {
    "leaky_relu(0.2)": get_activation("leaky_relu", negative_slope=0.2),
    "elu(0.5)": get_activation("elu", alpha=0.5),
}
LOSS_NAMES = ("cross_entropy", "mse", "mse_classification")
PENALTIES = {"none": (0.0, 0.0), "L1": (0.05, 0.0), "L2": (0.0, 0.3), "L1+L2": (0.05, 0.3)}  # (l1, l2)
SHAPES = {  # name: (layer sizes, batch)
    "two hidden layers": ((4, 6, 5, 3), 7),
    "batch of 1": ((4, 6, 5, 3), 1),
    "one hidden layer": ((3, 4, 2), 5),
    "five hidden layers": ((3, 5, 4, 5, 4, 3, 2), 4),
    "no hidden layer": ((3, 2), 3),
}
BASE_CELLS = [("two hidden layers", loss) for loss in LOSS_NAMES]
ODD_CELLS = [
    ("batch of 1", "mse"),
    ("one hidden layer", "mse_classification"),
    ("five hidden layers", "cross_entropy"),
    ("no hidden layer", "mse"),
]
POINTS = ("generic", "kinks")
LEAF_FLOOR = 1e-2  # a gradient leaf's scale is at least this times the whole gradient's (see _grad_errors)
FD_STEP = 1e-6  # central differences in float64: error O(h^2) + O(eps / h), about 1e-10 here


def test_table_covers_every_activation_loss_and_shape():
    assert set(ACTIVATIONS) <= set(ACTIVATION_ROWS)
    assert set(LOSS_NAMES) == set(LOSSES) == {loss for _, loss in ODD_CELLS}
    assert {shape for shape, _ in BASE_CELLS + ODD_CELLS} == set(SHAPES)


def _row_activation(onehot: jax.Array) -> Activation:
    """The activation of the table row that ``onehot`` ((rows,), traced) selects.

    ``fn = sum_k onehot[k] fn_k`` and ``grad = sum_k onehot[k] grad_k``, with each row's own
    hand-written ``grad_k``. This is exact, not an approximation: ``1 * f(z) + 0 * (finite)`` is
    ``f(z)`` in floating point, for the value and for ``jax.grad`` (whose derivative is then
    ``1 * f'(z) + 0 * (finite)``, with each row's own choice at its kink). Vmapping over one-hot
    rows lets one compiled program check every activation.
    """
    acts = list(ACTIVATION_ROWS.values())
    return Activation(
        "table row",
        lambda z: sum(onehot[k] * a.fn(z) for k, a in enumerate(acts)),
        lambda z: sum(onehot[k] * a.grad(z) for k, a in enumerate(acts)),
    )


def _objective(params, x, y, l1, l2, *, activation, loss):
    """The reference objective, built from the library's forward pass, loss and penalty."""
    return regularized(lambda p, x, y: get_loss(loss)(mlp(p, x, activation), y), l1, l2)(params, x, y)


def _problem(seed, sizes, batch, loss, dtype, point):
    """Params and data for one table cell, drawn with NumPy (no compilation per shape).

    ``"generic"``: random biases and inputs, away from every non-smooth point (finite differences
    are only valid there). ``"kinks"``: zero biases, a zero input row and one zero weight per layer,
    so some pre-activations are exactly 0 (ReLU'(0), LeakyReLU'(0), ELU'(0)) and the L1 term meets
    w = 0: autodiff and the hand-written rule must make the same choice there.
    """
    kinks = point == "kinks"
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), (fan_in, fan_out))
        b = rng.normal(0.0, 0.5, fan_out)
        if kinks:
            w[0, 0], b[:] = 0.0, 0.0
        params.append({"w": jnp.asarray(w, dtype), "b": jnp.asarray(b, dtype)})
    x = rng.normal(size=(batch, sizes[0]))
    if kinks:
        x[0] = 0.0
    if loss == "mse":
        y = jnp.asarray(rng.normal(size=(batch, sizes[-1])), dtype)
    else:
        y = jnp.asarray(rng.integers(0, sizes[-1], batch), jnp.int32)
    return params, jnp.asarray(x, dtype), y


def _problems(dtype, cells):
    """{(shape, loss): (params, x, y)}, each leaf stacked over POINTS (leading axis)."""
    table = {}
    for i, (shape, loss) in enumerate(cells):
        sizes, batch = SHAPES[shape]
        points = [_problem(i, sizes, batch, loss, dtype, point) for point in POINTS]
        table[(shape, loss)] = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *points)
    return table


def _cell(params, x, y, l1, l2, onehot, *, loss, with_fd):
    """Value and flat gradient by backprop, by autodiff and (optionally) by central differences.

    The central differences reuse the autodiff program: ``value_and_grad`` is vmapped over the
    point itself and its 2P perturbations, and only the values at the perturbed points are used.
    That costs a little run time and saves compiling a second forward pass.
    """
    act = _row_activation(onehot)
    value, grads = mlp_value_and_grad(params, x, y, activation=act, loss=loss, l1=l1, l2=l2)
    flat, unravel = ravel_pytree(params)  # (P,)
    points = flat[None, :]  # (1, P)
    if with_fd:
        steps = FD_STEP * jnp.eye(flat.size, dtype=flat.dtype)  # (P, P)
        points = jnp.concatenate([points, flat[None, :] + steps, flat[None, :] - steps])  # (1 + 2P, P)
    obj = functools.partial(_objective, activation=act, loss=loss)
    ad_values, ad_grads = jax.vmap(jax.value_and_grad(lambda f: obj(unravel(f), x, y, l1, l2)))(points)
    out = {"backprop": (value, ravel_pytree(grads)[0]), "autodiff": (ad_values[0], ad_grads[0])}
    if with_fd:
        forward, backward = ad_values[1 : 1 + flat.size], ad_values[1 + flat.size :]
        out["finite differences"] = (ad_values[0], (forward - backward) / (2 * FD_STEP))
    return out


@functools.partial(jax.jit, static_argnames="with_fd")
def _compare(problems, l1s, l2s, onehots, *, with_fd):
    """Every cell, as arrays shaped (point, activation row, penalty, ...)."""
    out = {}
    for (shape, loss), (params, x, y) in problems.items():
        cell = functools.partial(_cell, loss=loss, with_fd=with_fd)
        cell = jax.vmap(cell, in_axes=(None, None, None, 0, 0, None))  # penalties
        cell = jax.vmap(cell, in_axes=(None, None, None, None, None, 0))  # activation rows
        cell = jax.vmap(cell, in_axes=(0, 0, 0, None, None, None))  # points
        out[(shape, loss)] = cell(params, x, y, l1s, l2s, onehots)
    return out


def _rel_err(a, b, floor=0.0) -> float:
    """``|a - b| / max(|b|, floor)`` in the 2-norm (0 when both are 0)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), floor, np.finfo(b.dtype).tiny))


def _leaves(sizes):
    """``{leaf name: slice}`` of the flat gradient (``ravel_pytree``'s order) of an MLP with ``sizes``."""
    template = [{"w": np.zeros((i, o)), "b": np.zeros(o)} for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    out, start = {}, 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
        out[jax.tree_util.keystr(path)] = slice(start, start + leaf.size)
        start += leaf.size
    return out


def _grad_errors(grad, ref, leaves) -> dict[str, float]:
    """Relative error of every leaf (``"[0]['b']"``, ...) of the flat ``grad`` against ``ref``.

    Leaf by leaf, so that a wrong small leaf (a bias) cannot hide in the norm of the whole gradient.
    Each leaf's scale is floored at ``LEAF_FLOOR`` times the whole gradient's norm: a leaf whose
    gradient is (near) zero is held to an absolute error on that scale, not to a relative one that
    its rounding noise alone could fail.
    """
    floor = LEAF_FLOOR * np.linalg.norm(ref)
    return {name: _rel_err(grad[s], ref[s], floor) for name, s in leaves.items()}


def _failures(results, tol_autodiff, tol_fd):
    """Every cell, reference and gradient leaf whose relative error is over its tolerance (or NaN)."""
    bad = []
    results = jax.tree_util.tree_map(np.asarray, results)  # index NumPy arrays, not device arrays
    rows = list(itertools.product(enumerate(POINTS), enumerate(ACTIVATION_ROWS), enumerate(PENALTIES)))
    for (shape, loss), refs in results.items():
        bp_value, bp_grad = refs["backprop"]
        leaves = _leaves(SHAPES[shape][0])
        for (p, point), (a, act), (k, pen) in rows:
            for ref, (value, grad) in refs.items():
                if ref == "backprop" or (ref == "finite differences" and point != "generic"):
                    continue
                tol = tol_fd if ref == "finite differences" else tol_autodiff
                errs = {"value": _rel_err(bp_value[p, a, k], value[p, a, k])}
                errs |= {f"grad{leaf}": err
                         for leaf, err in _grad_errors(bp_grad[p, a, k], grad[p, a, k], leaves).items()}
                bad += [f"{act}/{loss}/{pen}/{shape}/{point}: {what} vs {ref}: {err:.1e} > {tol:.0e}"
                        for what, err in errs.items() if not err <= tol]
    return bad


def _run_table(dtype, cells, with_fd):
    args = (
        _problems(dtype, cells),
        *(jnp.asarray(v, dtype) for v in zip(*PENALTIES.values(), strict=True)),  # l1s, l2s
        jnp.eye(len(ACTIVATION_ROWS), dtype=dtype),  # one-hot activation rows
    )
    # Compiled once and run once: LLVM's optimizations would cost more time than they save.
    compiled = _compare.lower(*args, with_fd=with_fd).compile({"xla_backend_optimization_level": 0})
    return compiled(*args)


def test_matches_autodiff_and_finite_differences_float64():
    with jax.enable_x64(True):
        results = _run_table(jnp.float64, BASE_CELLS + ODD_CELLS, with_fd=True)
        assert not _failures(results, tol_autodiff=1e-10, tol_fd=1e-6)


@pytest.fixture(scope="module")
def float32_results():
    """The float32 table, every cell (odd shapes too), compiled and run once for this module."""
    return _run_table(jnp.float32, BASE_CELLS + ODD_CELLS, with_fd=False)


def test_matches_autodiff_float32(float32_results):
    assert set(float32_results) == set(BASE_CELLS + ODD_CELLS)
    assert all(refs["backprop"][1].dtype == jnp.float32 for refs in float32_results.values())
    assert not _failures(float32_results, tol_autodiff=1e-4, tol_fd=0.0)


def test_per_leaf_comparison_catches_a_wrong_bias_gradient(float32_results):
    """A bias gradient 0.1% off in one layer fails the float32 check, in every row of its cell.

    Measured over the whole gradient the same bug would pass the 1e-4 tolerance in some rows (the
    bias is a small part of the gradient's norm there): that is why the comparison goes leaf by leaf.
    """
    cell, leaf = ("two hidden layers", "cross_entropy"), "[1]['b']"
    results = jax.tree_util.tree_map(np.array, float32_results)  # writable copies
    value, grad = results[cell]["backprop"]
    grad[..., _leaves(SHAPES[cell[0]][0])[leaf]] *= np.float32(1 + 1e-3)  # the planted bug

    bad = _failures(results, tol_autodiff=1e-4, tol_fd=0.0)
    assert len(bad) == len(POINTS) * len(ACTIVATION_ROWS) * len(PENALTIES)  # every row of the cell
    assert all(f"/{cell[1]}/" in b and f"/{cell[0]}/" in b and f"grad{leaf} vs autodiff" in b for b in bad)
    whole = [_rel_err(grad[i], results[cell]["autodiff"][1][i]) for i in np.ndindex(grad.shape[:3])]
    assert min(whole) <= 1e-4 < max(whole)  # the whole-gradient measure would miss some of them


def test_row_activation_is_exactly_the_row():
    """The one-hot mixture reproduces each row's fn and grad bit for bit (kinks included)."""
    z = jnp.array([-3.0, -0.5, 0.0, 0.5, 3.0], jnp.float32)
    onehots = jnp.eye(len(ACTIVATION_ROWS), dtype=jnp.float32)

    @jax.jit
    def both(z):
        rows = [_row_activation(onehots[k]) for k in range(len(ACTIVATION_ROWS))]
        mixed = [(row.fn(z), row.grad(z)) for row in rows]
        direct = [(act.fn(z), act.grad(z)) for act in ACTIVATION_ROWS.values()]
        return mixed, direct

    mixed, direct = both(z)
    for name, m, d in zip(ACTIVATION_ROWS, mixed, direct, strict=True):
        np.testing.assert_array_equal(m, d, err_msg=name)


def test_comparison_would_catch_a_wrong_derivative():
    """The table's tolerance means something: a derivative 1% off fails it by orders of magnitude."""
    tanh = get_activation("tanh")
    wrong = Activation("tanh, 1% off", tanh.fn, lambda z: 1.01 * tanh.grad(z))

    @jax.jit
    def errors(params, x, y):
        ref_grads = jax.grad(_objective)(params, x, y, 0.0, 0.0, activation=tanh, loss="cross_entropy")
        ref = ravel_pytree(ref_grads)[0]
        rel = []
        for act in (tanh, wrong):
            grads = mlp_value_and_grad(params, x, y, activation=act, loss="cross_entropy")[1]
            rel.append(jnp.linalg.norm(ravel_pytree(grads)[0] - ref) / jnp.linalg.norm(ref))
        return rel

    with jax.enable_x64(True):
        good, bad = errors(*_problem(0, (4, 6, 5, 3), 7, "cross_entropy", jnp.float64, "generic"))
        assert good <= 1e-10 and bad > 1e-4


def test_grads_have_the_structure_shape_and_dtype_of_params():
    params, x, y = _problem(1, (3, 5, 2), 4, "cross_entropy", jnp.float32, "generic")
    fn = jax.jit(mlp_value_and_grad, static_argnames=("activation", "loss"))
    value, grads = fn(params, x, y, activation="tanh", loss="cross_entropy", l1=0.1)
    assert value.shape == () and value.dtype == jnp.float32
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
    for g, p in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(params), strict=True):
        assert g.shape == p.shape and g.dtype == p.dtype


def test_jit_traces_once_for_new_penalty_strengths():
    params, x, y = _problem(2, (3, 4, 2), 5, "mse_classification", jnp.float32, "generic")
    traces = []

    @jax.jit
    def step(params, x, y, l1, l2):
        traces.append(None)
        return mlp_value_and_grad(params, x, y, activation="relu", loss="mse_classification", l1=l1, l2=l2)

    values = [step(params, x, y, jnp.float32(l1), jnp.float32(0.1))[0] for l1 in (0.0, 0.1, 0.2)]
    assert len(traces) == 1
    assert values[0] < values[1] < values[2]  # the L1 term grows with its strength


def test_cross_entropy_delta_is_finite_and_exact_at_huge_logits():
    logits = jnp.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], jnp.float32)
    labels = jnp.array([0, 2])
    value, delta = output_delta("cross_entropy", logits, labels)
    # Row 0 is predicted with certainty: no loss and no gradient. Row 1 puts all mass on class 1
    # and none on its label 2: loss 1e4, gradient (softmax - onehot) / 2 = (0, 1, -1) / 2.
    np.testing.assert_allclose(value, 1e4 / 2)
    np.testing.assert_allclose(delta, [[0, 0, 0], [0, 0.5, -0.5]], atol=0)
    np.testing.assert_allclose(delta, jax.grad(get_loss("cross_entropy"))(logits, labels), atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "swish", "loss": "mse_classification"}, "valid names: sigmoid, tanh, relu"),
        ({"activation": "relu", "loss": "hinge"}, "valid names: mse, cross_entropy, mse_classification"),
        ({"activation": "relu", "loss": "mse"}, "does not match target shape"),  # labels given to mse
    ],
)
def test_bad_input_raises(kwargs, match):
    params, x, y = _problem(3, (3, 4, 2), 5, "cross_entropy", jnp.float32, "generic")
    with pytest.raises(ValueError, match=match):
        mlp_value_and_grad(params, x, y, **kwargs)
