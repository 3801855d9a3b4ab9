"""Record float64 ``torch.optim`` trajectories as test fixtures for the conventions table.

    pip install torch            # only for this script: torch is not a dependency of the lab
    python scripts/record_torch_trajectories.py     # writes tests/fixtures/torch_trajectories.json

Each row of ``ROWS`` is one PyTorch optimizer setting, the ``lab.optim`` call that reproduces it
(see docs/optimizers.md), and whether the reproduction is exact. The objective is
:func:`objective`: Rosenbrock in (x, y) plus a badly scaled quadratic in a vector ``w`` whose
gradients are of order 1e-6 (where the placement of ``eps`` matters) and a scalar ``s``.
``tests/test_optim.py`` replays every row with ``lab.optim`` (in JAX, float64) and compares.

``ZOO_ROWS`` (the fixture's ``"zoo"``) records the torch counterparts of the rest of the catalogue:
each row names its torch setting and its problem, ``"rosenbrock"`` (the objective above) or
``"matrix"`` (:func:`matrix_objective`: two least-squares problems in a tall and a wide matrix, for
optimizers that work on matrices: Adafactor's factored moments, Muon, which takes matrices only).
``tests/test_torch_zoo.py`` holds the ``lab.optim`` call of each row and replays it.
"""

from __future__ import annotations

import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "torch_trajectories.json"
STEPS = 100
START = {"xy": [-1.5, 2.0], "w": [1.0, -2.0, 0.5], "s": 3.0}
W_SCALE = [1e-6, 3e-6, 1e-5]  # the quadratic's curvatures in w: tiny gradients

# name, torch class, torch kwargs, lab factory, lab kwargs, extra lab block (L2 before), exact
ROWS = [
    ("sgd", "SGD", {"lr": 1e-3}, "sgd", {"learning_rate": 1e-3}, None, True),
    ("sgd_momentum", "SGD", {"lr": 1e-4, "momentum": 0.9}, "sgd", {"learning_rate": 1e-4, "momentum": 0.9},
     None, True),
    ("sgd_nesterov", "SGD", {"lr": 1e-4, "momentum": 0.9, "nesterov": True}, "sgd",
     {"learning_rate": 1e-4, "momentum": 0.9, "nesterov": True}, None, True),
    ("sgd_dampening", "SGD", {"lr": 1e-3, "momentum": 0.9, "dampening": 0.9}, "momentum",
     {"learning_rate": 1e-3, "beta": 0.9, "ema": True}, None, False),
    ("sgd_weight_decay", "SGD", {"lr": 1e-3, "weight_decay": 1e-2}, "sgd", {"learning_rate": 1e-3},
     1e-2, True),
    ("rmsprop", "RMSprop", {"lr": 1e-3}, "rmsprop",
     {"learning_rate": 1e-3, "decay": 0.99, "eps": 1e-8, "eps_in_sqrt": False}, None, True),
    ("rmsprop_eps_in_sqrt", "RMSprop", {"lr": 1e-3}, "rmsprop",
     {"learning_rate": 1e-3, "decay": 0.99, "eps": 1e-8}, None, False),
    ("rmsprop_centered_momentum", "RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.9}, "rmsprop",
     {"learning_rate": 1e-3, "decay": 0.99, "eps_in_sqrt": False, "centered": True, "momentum": 0.9},
     None, True),
    ("adam", "Adam", {"lr": 1e-2}, "adam", {"learning_rate": 1e-2}, None, True),
    ("adam_weight_decay", "Adam", {"lr": 1e-2, "weight_decay": 1e-2}, "adam", {"learning_rate": 1e-2},
     1e-2, True),
    ("adamw", "AdamW", {"lr": 1e-2}, "adamw", {"learning_rate": 1e-2, "weight_decay": 1e-2}, None, True),
    ("adagrad", "Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.1, "eps": 0.0}, "adagrad",
     {"learning_rate": 0.1, "initial_accumulator_value": 0.1, "eps": 0.0}, None, True),
    ("adagrad_default_eps", "Adagrad", {"lr": 0.1}, "adagrad",
     {"learning_rate": 0.1, "initial_accumulator_value": 0.0, "eps": 1e-10}, None, False),
]


# name, problem, torch class, torch kwargs
ZOO_ROWS = [
    ("nadam", "rosenbrock", "NAdam", {"lr": 1e-2}),
    ("nadam_momentum_decay_1e4", "rosenbrock", "NAdam", {"lr": 1e-2, "momentum_decay": 1e4}),
    ("nadam_decoupled", "rosenbrock", "NAdam",
     {"lr": 1e-2, "momentum_decay": 1e4, "weight_decay": 1e-2, "decoupled_weight_decay": True}),
    ("radam", "rosenbrock", "RAdam", {"lr": 1e-2}),
    ("radam_eps_0", "rosenbrock", "RAdam", {"lr": 1e-2, "eps": 0.0}),
    ("radam_decoupled", "rosenbrock", "RAdam",
     {"lr": 1e-2, "eps": 0.0, "weight_decay": 1e-2, "decoupled_weight_decay": True}),
    ("adamax", "rosenbrock", "Adamax", {"lr": 1e-2}),
    ("adam_amsgrad", "rosenbrock", "Adam", {"lr": 1e-2, "amsgrad": True}),
    ("adadelta", "rosenbrock", "Adadelta", {"lr": 1.0}),
    ("adadelta_weight_decay", "rosenbrock", "Adadelta", {"lr": 1.0, "weight_decay": 0.1}),
    ("rprop", "rosenbrock", "Rprop", {"lr": 1e-3}),
    ("rprop_lr_above_max", "rosenbrock", "Rprop", {"lr": 0.1, "step_sizes": (1e-6, 1e-2)}),
    ("adafactor", "rosenbrock", "Adafactor", {"lr": 1e-2}),
    ("adafactor_matrix", "matrix", "Adafactor", {"lr": 0.2, "weight_decay": 0.1}),
    ("muon", "matrix", "Muon", {"lr": 1e-2}),
    ("muon_no_nesterov", "matrix", "Muon", {"lr": 1e-2, "nesterov": False, "weight_decay": 0.0}),
    ("muon_match_rms_adamw", "matrix", "Muon", {"lr": 1e-2, "adjust_lr_fn": "match_rms_adamw"}),
]
MATRIX_SHAPES = {"W": (4, 3), "V": (2, 5)}  # torch's layout (out, in): a tall and a wide matrix


def objective(xy, w, s, c):
    """(1 - x)^2 + 100 (y - x^2)^2 + sum_i c_i w_i^2 / 2 + (s - 1)^2 / 2 (torch or jax arrays)."""
    x, y = xy[0], xy[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2 + 0.5 * (c * w * w).sum() + 0.5 * (s - 1) ** 2


def record() -> dict:
    import torch

    torch.set_default_dtype(torch.float64)
    rows = []
    for name, cls, torch_kwargs, lab_name, lab_kwargs, l2, exact in ROWS:
        params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in START.items()}
        opt = getattr(torch.optim, cls)(list(params.values()), **torch_kwargs)
        path = {k: [v.detach().tolist()] for k, v in params.items()}
        for _ in range(STEPS):
            opt.zero_grad()
            objective(params["xy"], params["w"], params["s"], torch.tensor(W_SCALE)).backward()
            opt.step()
            for k, v in params.items():
                path[k].append(v.detach().tolist())
        rows.append({"name": name, "torch": {"class": cls, "kwargs": torch_kwargs},
                     "lab": {"factory": lab_name, "kwargs": lab_kwargs, "l2_before": l2},
                     "exact": exact, "path": path})
    return {"torch_version": torch.__version__, "steps": STEPS, "start": START, "w_scale": W_SCALE,
            "rows": rows, "zoo": record_zoo()}


def matrix_objective(p, d):
    """0.5 |X W - Y|^2 / 6 + 0.5 |V B - C|^2 / 2 for W (4, 3), V (2, 5) (torch or jax arrays; d holds
    X (6, 4), Y (6, 3), B (5, 4), C (2, 4))."""
    return (0.5 * ((d["X"] @ p["W"] - d["Y"]) ** 2).sum() / 6
            + 0.5 * ((p["V"] @ d["B"] - d["C"]) ** 2).sum() / 2)


def _matrix_problem(torch):
    """The matrix problem's data and start: standard normal draws of a fixed seed."""
    gen = torch.Generator().manual_seed(0)
    draw = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    data = {"X": draw(6, 4), "Y": draw(6, 3), "B": draw(5, 4), "C": draw(2, 4)}
    start = {k: draw(*shape) for k, shape in MATRIX_SHAPES.items()}
    return {k: v.tolist() for k, v in data.items()}, {k: v.tolist() for k, v in start.items()}


def record_zoo() -> dict:
    """The ``ZOO_ROWS`` trajectories (float64, ``STEPS`` steps each) with both problems' definitions."""
    import torch

    torch.set_default_dtype(torch.float64)
    data, matrix_start = _matrix_problem(torch)
    tensors = {k: torch.tensor(v) for k, v in data.items()}
    problems = {
        "rosenbrock": (START, lambda p: objective(p["xy"], p["w"], p["s"], torch.tensor(W_SCALE))),
        "matrix": (matrix_start, lambda p: matrix_objective(p, tensors)),
    }
    rows = []
    for name, problem, cls, torch_kwargs in ZOO_ROWS:
        start, loss = problems[problem]
        params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in start.items()}
        opt = getattr(torch.optim, cls)(list(params.values()), **torch_kwargs)
        path = {k: [v.detach().tolist()] for k, v in params.items()}
        for _ in range(STEPS):
            opt.zero_grad()
            loss(params).backward()
            opt.step()
            for k, v in params.items():
                path[k].append(v.detach().tolist())
        rows.append({"name": name, "problem": problem, "torch": {"class": cls, "kwargs": torch_kwargs},
                     "path": path})
    return {"matrix": {"data": data, "start": matrix_start}, "rows": rows}


if __name__ == "__main__":
    data = record()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    n = len(data["rows"]) + len(data["zoo"]["rows"])
    print(f"wrote {n} trajectories of {data['steps']} steps to {OUT} ({OUT.stat().st_size / 1024:.0f} KiB, "
          f"torch {data['torch_version']})")
