"""PyTorch optimizers verified against optax by lab.verify (torch is in the test extra: these run in CI).

torch.optim's own optimizers either pass against their optax namesakes or fail with their documented
convention named, and the size of the difference is checked against its closed form; planted bugs in a
hand-written torch Adam are caught in float32 despite the allowance for the parameters' own rounding.
"""

import math
import sys

import numpy as np
import optax
import pytest
import torch

from lab import verify
from lab.verify import torch_candidates

SMALL = {k: v for k, v in verify.DEFAULT_TREE.items() if k != "big"}
SMALL_SCALES = {k: verify.DEFAULT_SCALES[k] for k in SMALL}

# torch.optim optimizers that agree with optax: (torch class, its arguments) and (optax, its arguments).
AGREE = {
    "adam": (torch.optim.Adam, {}, optax.adam, {}),
    "adamax": (torch.optim.Adamax, {}, optax.adamax, {}),
    "adamw": (torch.optim.AdamW, {"weight_decay": 0.1}, optax.adamw, {"weight_decay": 0.1}),
    "sgd": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}, optax.sgd,
            {"momentum": 0.9, "nesterov": True}),
}


class _Together:
    """Several torch optimizers stepped as one, each on its own slice of the parameters."""

    def __init__(self, opts):
        self.opts = opts
        self.param_groups = [g for o in opts for g in o.param_groups]

    def step(self):
        for o in self.opts:
            o.step()


def together(params, lr):
    """The torch optimizers of AGREE on the subtrees of ``{name: SMALL}`` (leaves in tree order)."""
    params, n = list(params), len(SMALL)
    return _Together([cls(params[i * n:(i + 1) * n], lr=lr, **kw)
                      for i, (cls, kw, _, _) in enumerate(AGREE[k] for k in sorted(AGREE))])


def references(learning_rate):
    """Their optax namesakes, each on its subtree."""
    txs = {k: ref(learning_rate, **kw) for k, (_, _, ref, kw) in AGREE.items()}

    def init(params):
        return {k: tx.init(params[k]) for k, tx in txs.items()}

    def update(updates, state, params=None):
        out = {k: tx.update(updates[k], state[k], params[k]) for k, tx in txs.items()}
        return {k: o[0] for k, o in out.items()}, {k: o[1] for k, o in out.items()}

    return optax.GradientTransformation(init, update)


def test_torch_optimizers_that_agree_with_optax_pass():
    # (bfloat16, reported but not deciding, is tests/test_cli_verify.py's torch test)
    report = verify.compare(together, references, candidate_kwargs={"lr": 1e-2},
                            reference_kwargs={"learning_rate": 1e-2}, steps=50, seeds=(0,),
                            dtypes=("float32", "float64"), tree={k: SMALL for k in AGREE},
                            scales={k: SMALL_SCALES for k in AGREE})
    assert report.passed, report.summary()
    assert [c.label for c in report.cases] == [f"{s}, {d}" for s in ("constant lr", "schedule")
                                               for d in ("float32", "float64")]
    assert all(c.decides and c.verdict == "PASS" for c in report.cases)
    assert 0 < max(c.max_rel_error for c in report.cases if c.dtype == "float64") < 1e-13


def _named(cls, reference, candidate_kwargs, reference_kwargs, steps=30):
    report = verify.compare(cls, reference, candidate_kwargs=candidate_kwargs,
                            reference_kwargs=reference_kwargs, steps=steps, seeds=(0,), dtypes=("float64",),
                            schedule=False)
    assert not report.passed and report.convention is not None, report.summary()
    return report


def test_torch_rmsprop_is_optax_rmsprop_with_eps_outside_the_root_and_torch_decay():
    report = _named(torch.optim.RMSprop, "rmsprop", {"lr": 1e-3}, {"learning_rate": 1e-3})
    assert report.convention.optax_setting
    assert report.convention.name == ("RMSProp's ε outside the square root and RMSProp's decay: torch's "
                                      "default alpha=0.99")
    assert report.convention.matches == "optax.rmsprop(learning_rate=0.001, eps_in_sqrt=False, decay=0.99)"
    matching = {"learning_rate": 1e-3, "eps_in_sqrt": False, "decay": 0.99}
    assert verify.compare(torch.optim.RMSprop, "rmsprop", candidate_kwargs={"lr": 1e-3},
                          reference_kwargs=matching, steps=30, seeds=(0,), dtypes=("float32", "float64"),
                          schedule=False).passed


def test_torch_adagrad_puts_eps_outside_the_root_by_the_closed_form():
    lr, eps = 0.1, 1e-10
    report = _named(torch.optim.Adagrad, "adagrad", {"lr": lr},
                    {"learning_rate": lr, "initial_accumulator_value": 0.0, "eps": eps})
    assert report.convention.name == "Adagrad's ε outside the square root"
    assert not report.convention.optax_setting
    # Step 0 from s = g^2: optax's update is -lr g / sqrt(g^2 + eps), torch's -lr g / (|g| + eps). Solve the
    # reference's value for g and predict torch's.
    failure = report.failure
    assert failure.step == 0
    r = failure.reference
    g2 = eps * r * r / (lr * lr - r * r)
    predicted = -lr * math.copysign(math.sqrt(g2), -r) / (math.sqrt(g2) + eps)
    assert failure.candidate == pytest.approx(predicted, rel=1e-9)
    assert abs(failure.candidate) > abs(failure.reference)  # eps outside the root floors the step less


def test_torch_nadam_momentum_schedule_by_the_closed_form():
    report = _named(torch.optim.NAdam, "nadam", {"lr": 1e-3}, {"learning_rate": 1e-3})
    assert report.convention.name == "NAdam's momentum schedule: torch's momentum_decay=0.004"
    # First step: torch's is g [(1 - mu_1) / (1 - P_1) + mu_2 (1 - b1) / (1 - P_1 mu_2)] / (|g| + eps)
    # with mu_t = b1 (1 - 0.5 * 0.96^(0.004 t)) and the running product P_1 = mu_1, which torch keeps in
    # float32; optax's is g [1 + b1 / (1 + b1)] / (|g| + eps).
    b1 = 0.9
    mu1, mu2 = (b1 * (1 - 0.5 * 0.96 ** (0.004 * t)) for t in (1, 2))
    p1 = float(np.float32(mu1))
    ratio = ((1 - mu1) / (1 - p1) + mu2 * (1 - b1) / (1 - p1 * mu2)) / (1 + b1 / (1 + b1))
    failure = report.failure
    assert failure.step == 0 and failure.candidate / failure.reference == pytest.approx(ratio, rel=1e-9)
    assert ratio == pytest.approx(0.7169, abs=1e-4)


def test_torch_radam_adds_eps_before_the_bias_correction():
    report = _named(torch.optim.RAdam, "radam", {"lr": 1e-3}, {"learning_rate": 1e-3})
    assert report.convention.name == "RAdam's ε added to √v before the bias correction (torch's)"
    # The two agree while the step is not rectified (rho_t <= 5) and part at the first rectified step.
    b2 = 0.999
    rho_inf = 2 / (1 - b2) - 1
    first = next(t for t in range(1, 100) if rho_inf - 2 * t * b2**t / (1 - b2**t) > 5)
    assert report.failure.step == first - 1 == 5
    # torch's eps / sqrt(1 - b2^t) is larger than optax's eps: its step is smaller where eps matters.
    assert abs(report.failure.candidate) < abs(report.failure.reference)
    assert report.failure.leaf in ("['one']", "['tiny']", "['b']")


class MyAdam(torch.optim.Optimizer):
    """Adam with decoupled weight decay written by hand, with a planted bug to choose."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bug=None):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self.bug = bug

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            (b1, b2), lr, eps, wd = group["betas"], group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["t"] += 1
                t, m, v, g = state["t"], state["m"], state["v"], p.grad
                if self.bug == "coupled decay":  # BUG: L2 added to the gradient instead of decoupled
                    g = g + wd * p
                elif wd:
                    p.mul_(1 - lr * wd)
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                tc = t + 1 if self.bug == "bias correction off by one" else t  # BUG: one step ahead
                m_hat, v_hat = m / (1 - b1**tc), v / (1 - b2**tc)
                if self.bug == "eps inside the root":  # BUG: sqrt(v + eps) for sqrt(v) + eps
                    denom = (v_hat + eps).sqrt()
                else:
                    denom = v_hat.sqrt().add_(eps)
                step = lr * (1.001 if self.bug == "step 0.1% too large" else 1.0)
                p.addcdiv_(m_hat, denom, value=-step)


ADAMW = {"lr": 1e-3, "weight_decay": 0.1}
OPTAX_ADAMW = {"learning_rate": 1e-3, "weight_decay": 0.1}


def test_a_hand_written_torch_adam_passes_in_float32_and_float64():
    report = verify.compare(MyAdam, "adamw", candidate_kwargs=ADAMW, reference_kwargs=OPTAX_ADAMW, steps=20,
                            seeds=(0,), dtypes=("float32", "float64"), schedule=False)
    assert report.passed, report.summary()


@pytest.mark.parametrize("bug", ["bias correction off by one", "eps inside the root", "coupled decay",
                                 "step 0.1% too large"])
def test_planted_bugs_in_a_torch_adam_are_caught_in_float32_at_the_first_step(bug):
    report = verify.compare(MyAdam, "adamw", candidate_kwargs={**ADAMW, "bug": bug},
                            reference_kwargs=OPTAX_ADAMW, steps=5, seeds=(0,), dtypes=("float32",),
                            schedule=False, conventions=False)
    failure = report.failure
    assert not report.passed and failure is not None and failure.step == 0, report.summary()
    assert failure.dtype == "float32" and failure.error > failure.tolerance
    if bug == "eps inside the root":
        assert verify.DEFAULT_SCALES[failure.leaf[2:-2]] <= 1e-3  # where the gradients are small


def test_without_the_rounding_allowance_a_correct_torch_adamw_would_fail_in_float32(monkeypatch):
    # update = new params - old params: in float32 the parameters' own rounding (half an ulp at |p| ~ 4
    # is 2.4e-7, 1.7e-4 of a 1.4e-3 step) is far above the tolerance; the allowance is what passes it.
    options = {"candidate_kwargs": ADAMW, "reference_kwargs": OPTAX_ADAMW, "steps": 5, "seeds": (0,),
               "dtypes": ("float32",), "schedule": False, "conventions": False}
    monkeypatch.setattr(torch_candidates, "ROUNDING_ULPS", 0.0)
    report = verify.compare(torch.optim.AdamW, "adamw", **options)
    assert not report.passed and report.failure.rounding == 0.0
    monkeypatch.undo()
    passed = verify.compare(torch.optim.AdamW, "adamw", **options)
    assert passed.passed, passed.summary()


def sgd_by_function(params, lr=0.1):
    """A function returning a torch optimizer for given params (detected by its first argument)."""
    return torch.optim.SGD(params, lr=lr)


def test_torch_candidates_are_detected_and_torch_is_needed_only_for_them(monkeypatch):
    assert verify.is_torch(torch.optim.Adam) and verify.is_torch(MyAdam) and verify.is_torch(sgd_by_function)
    assert not verify.is_torch(optax.adam) and not verify.is_torch(optax.adam(1e-3))
    report = verify.compare(sgd_by_function, "sgd", candidate_kwargs={"lr": 0.1},
                            reference_kwargs={"learning_rate": 0.1}, steps=5, seeds=(0,), dtypes=("float32",))
    assert report.passed and report.candidate == "sgd_by_function"
    assert np.all(report.step_errors < 1e-6)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ImportError) as err:
        verify.compare(sgd_by_function, "sgd", candidate_kwargs={"lr": 0.1},
                       reference_kwargs={"learning_rate": 0.1}, steps=5, seeds=(0,), dtypes=("float32",))
    assert str(err.value) == verify.TORCH_HINT and "pip install -e '.[torch]'" in str(err.value)
