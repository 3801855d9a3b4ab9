"""The committed targets and baseline summaries (``lab/bench/``) are complete and tied to the code as it
is now, for the suite and its quick variants: what ``lab bench`` and the gallery figure read."""

import json

import pytest

from lab.bench import baselines, suite, targets
from lab.bench.protocol import PROTOCOL_VERSION, Settings
from lab.bench.workloads import WORKLOADS
from lab.cli_bench import QUICK_BUDGET, QUICK_SEEDS


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_the_committed_targets_and_baselines_are_current(tmp_path, quick):
    """Every baseline optimizer has a committed summary on every workload (and its quick variant), tied to
    the code as it is now: an edit to an optimizer's module, a model or a data set fails here, naming
    the command that computes its baselines again (the gallery figure would otherwise say 'not drawn')."""
    workloads = [w.quick() if quick else w for w in WORKLOADS.values()]
    settings = Settings(budget=QUICK_BUDGET, seeds=QUICK_SEEDS) if quick else Settings()  # lab bench's
    command = f"python scripts/bench_baselines.py{' --quick' if quick else ''} [--targets] --recompute"
    try:
        targets = baselines.load_targets(workloads)
        cells = suite.plan(list(baselines.BASELINES), workloads, settings, targets, out=str(tmp_path))
    except ValueError as err:
        pytest.fail(f"{err}: compute them again with {command}")
    assert len(targets) == len(workloads), f"targets missing: {command}"
    missing = [f"{c.optimizer} on {c.workload.name}" for c in cells if c.summary is None]
    assert not missing, f"no committed summary for {', '.join(missing)}: {command}"


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_the_committed_targets_were_set_by_the_procedure_as_it_is_now(quick):
    """Each committed target records how it was set; that must be the procedure the code runs now (its
    references, trials, seeds, window, slack, protocol version), or it is stale like a changed workload."""
    path = baselines.QUICK_TARGETS_JSON if quick else targets.TARGETS_JSON
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)["targets"]
    for w in WORKLOADS.values():
        w = w.quick() if quick else w
        want = baselines.provenance(w, baselines.procedure(quick))
        assert want["protocol"] == PROTOCOL_VERSION and want["trials"] == (4 if quick else 50)
        got = {k: entries[w.name][k] for k in want}
        assert got == want, f"{w.name}: set another way than now; python scripts/bench_baselines.py " \
                            f"{'--quick ' if quick else ''}--targets --recompute"
