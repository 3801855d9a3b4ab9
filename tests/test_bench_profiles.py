"""lab.bench.profiles against hand-computed values, numpy's median, a trapezoid integral of the
profile and a brute-force enumeration of all N^k draws (Dodge et al.'s expected maximum)."""

import itertools

import numpy as np
import pytest

from lab.bench import profiles

INF = np.inf

# Three optimizers on four workloads; nobody solves the last one.
TIMES = np.array([[100.0, 200.0, INF, INF],
                  [200.0, 200.0, 300.0, INF],
                  [400.0, INF, 600.0, INF]])
RATIOS = np.array([[1.0, 1.0, INF, INF],
                   [2.0, 1.0, 1.0, INF],
                   [4.0, INF, 2.0, INF]])
SCORES = np.array([(1 + 1) / 4, (2 / 3 + 1 + 1) / 4, (2 / 3) / 4])  # mean over w of (4 - r)_+ / 3


def test_steps_to_target_first_evaluation_at_target():
    steps = [0, 10, 20, 30]
    curves = np.array([[0.1, 0.5, 0.8, 0.9],      # reaches exactly 0.8 at 20
                       [0.1, 0.85, np.nan, np.nan],  # reached before diverging: kept
                       [np.nan] * 4,              # diverged: never
                       [0.1, 0.2, 0.3, 0.79],     # never
                       [0.1, INF, 0.9, 0.95]])    # an infinite value does not count
    got = profiles.steps_to_target(steps, curves, 0.8, higher_is_better=True)
    np.testing.assert_array_equal(got, [20.0, 10.0, INF, INF, 20.0])


def test_steps_to_target_lower_is_better_and_leading_shape():
    steps = [0, 5, 50, 500]
    losses = np.array([[2.0, 1.0, 0.5, 0.4], [2.0, np.nan, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1]])
    got = profiles.steps_to_target(steps, losses, 0.5, higher_is_better=False)
    np.testing.assert_array_equal(got, [50.0, 50.0, 0.0])
    stacked = np.stack([losses, losses[::-1]])  # (2, 3, E): one value per run, shape kept
    np.testing.assert_array_equal(profiles.steps_to_target(steps, stacked, 0.5, False),
                                  [[50.0, 50.0, 0.0], [0.0, 50.0, 50.0]])


@pytest.mark.parametrize("values, expected", [([100, INF, INF], INF), ([100, 200, INF], 200.0),
                                              ([INF, 200, 100], 200.0), ([100, 200, 300, INF], 250.0),
                                              ([100, 200, INF, INF], INF), ([INF], INF), ([7], 7.0)])
def test_median_steps_with_inf(values, expected):
    assert profiles.median_steps(values) == expected


def test_median_steps_matches_numpy_on_finite_values_along_an_axis():
    x = np.random.default_rng(0).integers(0, 1000, size=(4, 5, 6)).astype(np.float64)
    for axis in (0, 1, -1):
        np.testing.assert_array_equal(profiles.median_steps(x, axis=axis), np.median(x, axis=axis))


def test_fraction_reaching():
    np.testing.assert_array_equal(profiles.fraction_reaching([[100, INF, 3], [INF, INF, INF]]), [2 / 3, 0.0])


def test_performance_ratios_hand_computed():
    np.testing.assert_array_equal(profiles.performance_ratios(TIMES), RATIOS)


def test_performance_ratios_ties_and_target_met_at_step_zero():
    np.testing.assert_array_equal(profiles.performance_ratios([[50.0, 0.0], [50.0, 10.0]]),
                                  [[1.0, 1.0], [1.0, INF]])


def test_performance_profile_hand_computed():
    taus = [1.0, 2.0, 3.9, 4.0, 10.0]
    expected = [[0.5, 0.5, 0.5, 0.5, 0.5], [0.5, 0.75, 0.75, 0.75, 0.75], [0.0, 0.25, 0.25, 0.5, 0.5]]
    np.testing.assert_array_equal(profiles.performance_profile(RATIOS, taus), expected)


def test_profile_scores_hand_computed_and_ranks():
    np.testing.assert_allclose(profiles.profile_scores(RATIOS), SCORES, rtol=1e-15)
    np.testing.assert_array_equal(profiles.ranks(SCORES), [2.0, 1.0, 3.0])


def test_profile_scores_equal_the_normalised_area_under_the_profile():
    """AlgoPerf's scoring code integrates rho with the trapezoid rule on a grid of taus."""
    ratios = np.array([[1.0, 1.7, 3.2, INF, 1.0], [2.5, 1.0, 1.0, 5.0, 1.3]])
    for tau_max in (4.0, 2.0):
        taus = np.linspace(1.0, tau_max, 200_001)
        area = np.trapezoid(profiles.performance_profile(ratios, taus), taus, axis=-1) / (tau_max - 1)
        np.testing.assert_allclose(profiles.profile_scores(ratios, tau_max), area, atol=1e-4)


def test_single_optimizer_scores_the_fraction_it_solves():
    ratios = profiles.performance_ratios([[100.0, INF, 5.0]])
    np.testing.assert_array_equal(ratios, [[1.0, INF, 1.0]])
    np.testing.assert_allclose(profiles.profile_scores(ratios), [2 / 3])


def test_ties_share_ranks():
    np.testing.assert_array_equal(profiles.ranks([0.5, 0.5, 0.2]), [1.5, 1.5, 3.0])
    np.testing.assert_array_equal(profiles.ranks([[0.1, 0.9], [0.7, 0.7]]), [[2.0, 1.0], [1.5, 1.5]])


def test_benchmark_scores_take_the_median_over_seeds():
    seeds = np.array([[[100, 90, 110], [200, 200, INF], [INF, INF, 5], [INF, 1, INF]],
                      [[200, 300, 100], [INF, 200, 150], [300, 290, 310], [INF, INF, INF]],
                      [[400, 400, INF], [INF, INF, 10], [600, 700, 500], [INF, INF, 3]]], dtype=np.float64)
    np.testing.assert_array_equal(profiles.median_steps(seeds), TIMES)
    np.testing.assert_allclose(profiles.benchmark_scores(seeds), SCORES, rtol=1e-15)


def test_bootstrap_is_deterministic_and_contains_the_point_estimate():
    rng = np.random.default_rng(1)
    steps = rng.lognormal(np.log([[[100.0]], [[130.0]], [[300.0]]]), 0.3, size=(3, 4, 5))
    steps[2, 1, :2] = INF
    a = profiles.bootstrap(steps, np.random.default_rng(7), resamples=300)
    b = profiles.bootstrap(steps, np.random.default_rng(7), resamples=300)
    c = profiles.bootstrap(steps, 8, resamples=300)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    np.testing.assert_array_equal(a.score, profiles.benchmark_scores(steps))
    np.testing.assert_array_equal(a.rank, profiles.ranks(a.score))
    assert np.all(a.score_low <= a.score) and np.all(a.score <= a.score_high)
    assert np.all(a.rank_low <= a.rank) and np.all(a.rank <= a.rank_high)
    assert np.all(a.score_low < a.score_high)  # the seeds vary: the intervals are not points


def test_bootstrap_interval_is_a_point_when_seeds_agree():
    steps = np.broadcast_to(TIMES[:, :, None], (3, 4, 5))
    boot = profiles.bootstrap(steps, 0, resamples=50)
    for point, low, high in ((boot.score, boot.score_low, boot.score_high),
                             (boot.rank, boot.rank_low, boot.rank_high)):
        np.testing.assert_array_equal(low, point)
        np.testing.assert_array_equal(high, point)


def test_bootstrap_resamples_seeds_per_optimizer_and_workload():
    """B's median over 3 resampled seeds of [50, 50, inf] is finite with probability
    (2/3)^3 + 3 (2/3)^2 (1/3) = 20/27: B scores 1 then (A scores 2/3), else 0 (A scores 1)."""
    steps = np.array([[[100.0, 100.0, 100.0]], [[50.0, 50.0, INF]]])
    wide = profiles.bootstrap(steps, 3, resamples=2000, level=0.9)   # quantiles 0.05, 0.95
    np.testing.assert_array_equal([wide.score_low, wide.score_high], [[2 / 3, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal([wide.rank_low, wide.rank_high], [[1.0, 1.0], [2.0, 2.0]])
    narrow = profiles.bootstrap(steps, 3, resamples=2000, level=0.4)  # quantiles 0.3, 0.7
    np.testing.assert_array_equal([narrow.score_low, narrow.score_high], [[2 / 3, 1.0], [2 / 3, 1.0]])
    # Two optimizers with the same seeds are resampled independently: each is sometimes alone at the
    # target (P = 20/27 * 7/27 each way), so their ranks are not always tied at 1.5.
    twins = profiles.bootstrap(np.array([[[50.0, 50.0, INF]]] * 2), 4, resamples=2000, level=0.9)
    np.testing.assert_array_equal([twins.rank_low, twins.rank, twins.rank_high], [[1.0, 1.0], [1.5, 1.5],
                                                                                  [2.0, 2.0]])


def _brute_force_expected_best(values, k, best):
    draws = itertools.product(values, repeat=k)  # all N^k equally likely sequences
    return np.mean([best(d) for d in draws])


@pytest.mark.parametrize("values", [[0.3, 0.9, 0.5, 0.5], [2.0, -1.0, 7.5], [4.0]])
def test_expected_max_matches_enumeration_of_all_draws(values):
    n = len(values)
    for higher, best in ((True, max), (False, min)):
        expected = [_brute_force_expected_best(values, k, best) for k in range(1, n + 1)]
        np.testing.assert_allclose(profiles.expected_max(values, higher), expected, rtol=1e-12)


def test_expected_max_hand_computed():
    np.testing.assert_allclose(profiles.expected_max([1.0, 2.0]), [1.5, 0.25 * 1 + 0.75 * 2])
    np.testing.assert_allclose(profiles.expected_max([1.0, 2.0], higher_is_better=False), [1.5, 1.25])


@pytest.mark.parametrize("call, match", [
    (lambda: profiles.steps_to_target([0, 10, 10], np.zeros(3), 0.5, True), "eval_steps"),
    (lambda: profiles.steps_to_target([0, 10], np.zeros(3), 0.5, True), "metric_curves"),
    (lambda: profiles.steps_to_target([0, 10], np.zeros(2), np.nan, True), "target"),
    (lambda: profiles.steps_to_target([0, 10], np.zeros(2), 0.5, "yes"), "higher_is_better"),
    (lambda: profiles.median_steps([1.0, np.nan]), "steps"),
    (lambda: profiles.median_steps([]), "steps"),
    (lambda: profiles.performance_ratios([[-1.0, 2.0]]), "times"),
    (lambda: profiles.performance_ratios([1.0, 2.0]), "times"),
    (lambda: profiles.profile_scores(RATIOS, tau_max=1.0), "tau_max"),
    (lambda: profiles.profile_scores([[0.5, 1.0]]), "ratios"),
    (lambda: profiles.performance_profile(RATIOS, [[1.0]]), "taus"),
    (lambda: profiles.bootstrap(TIMES, 0), "steps"),
    (lambda: profiles.bootstrap(TIMES[:, :, None], 0, level=95.0), "level"),
    (lambda: profiles.bootstrap(TIMES[:, :, None], 0, resamples=0), "resamples"),
    (lambda: profiles.expected_max([0.1, np.nan]), "values"),
    (lambda: profiles.expected_max([]), "values"),
])
def test_bad_input_is_one_line_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_bootstrap_needs_a_generator():
    with pytest.raises(TypeError, match="rng"):
        profiles.bootstrap(TIMES[:, :, None], np.random.RandomState(0))
