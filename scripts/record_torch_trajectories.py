"""Record float64 ``torch.optim`` trajectories as test fixtures for the conventions table.

    pip install torch            # only for this script: torch is not a dependency of the lab
    python scripts/record_torch_trajectories.py     # writes tests/fixtures/torch_trajectories.json

Each row of ``ROWS`` is one PyTorch optimizer setting, the ``lab.optim`` call that reproduces it
(see docs/optimizers.md), and whether the reproduction is exact. The objective is
:func:`objective`: Rosenbrock in (x, y) plus a badly scaled quadratic in a vector ``w`` whose
gradients are of order 1e-6 (where the placement of ``eps`` matters) and a scalar ``s``.
``tests/test_optim.py`` replays every row with ``lab.optim`` (in JAX, float64) and compares.
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
            "rows": rows}


if __name__ == "__main__":
    data = record()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {len(data['rows'])} trajectories of {data['steps']} steps to {OUT} "
          f"({OUT.stat().st_size / 1024:.0f} KiB, torch {data['torch_version']})")
