"""``lab bench``: benchmark optimizers on a suite of workloads under one protocol.

Each optimizer is tuned on each workload by the same quasi-random search (:mod:`lab.bench.search`),
and scored by the steps it takes to reach each workload's validation target, summarised over
workloads by AlgoPerf's performance profiles (:mod:`lab.bench.profiles`).
"""
