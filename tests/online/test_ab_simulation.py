"""Simulated experiments on the synthetic shop: the report keeps its false-positive rate on A/A tests and detects a
truly better arm with the power the design predicts."""

import math

import numpy as np
import pytest

from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.online.ab_report import ab_report, compare_arms
from tfrec.online.ab_simulation import (
    expected_power, shopper_pool, simulate_events, simulate_experiments, two_arm_experiment, users_for_power,
)

ALPHA = 0.05
RUNS = 200
# A is a model no better than chance ordering (the logged items shuffled), B the logged ranker (noisy true utility).
AB = {"A": "shuffled", "B": "logged"}
AA = {"A": "shuffled", "B": "shuffled"}


@pytest.fixture(scope="module")
def shop():
    data = generate(SyntheticConfig.preset("tiny", seed=0))
    return data, shopper_pool(data)


def test_pool_replays_the_generator(shop):
    data, pool = shop
    assert pool.impressions.sum() == len(data.ground_truth.impressions)
    assert pool.n_requests.sum() == data.config.n_sessions
    # the logged order's true CTR is what the generator calibrated its intercept to
    assert pool.true_ratio("logged") == pytest.approx(data.config.target_ctr, rel=1e-6)
    ctr = {p: pool.true_ratio(p) for p in ("oracle", "logged", "shuffled", "reversed")}
    assert ctr["oracle"] > ctr["logged"] > ctr["shuffled"] > ctr["reversed"]


def test_aa_false_positives_and_ab_power(shop):
    _, pool = shop
    users = users_for_power(pool, AB["A"], AB["B"], power=0.8, alpha=ALPHA)
    predicted = expected_power(pool, AB["A"], AB["B"], users, ALPHA)
    assert predicted.power == pytest.approx(0.8, abs=0.01) and predicted.lift > 0.1

    def outcomes(policies, seed):
        runs = simulate_experiments(pool, policies, RUNS, users, seed=seed)
        return [compare_arms(r["A"], r["B"], "ctr", ALPHA) for r in runs]

    aa = outcomes(AA, seed=1)
    false_positive = np.mean([c.significant for c in aa])
    naive = np.mean([c.p_value_independent < ALPHA for c in aa])
    # one-sided binomial upper bound (z = 2.33) on 200 runs
    assert false_positive <= ALPHA + 2.33 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS), false_positive
    # treating impressions as independent trials flags far more A/A tests: why the report clusters by user
    assert naive > 3 * ALPHA, naive

    ab = outcomes(AB, seed=2)
    power = np.mean([c.significant and c.diff > 0 for c in ab])
    assert not any(c.significant and c.diff < 0 for c in ab)
    tolerance = 3 * math.sqrt(predicted.power * (1 - predicted.power) / RUNS)
    assert abs(power - predicted.power) <= tolerance, (power, predicted.power)
    lifts = np.array([c.lift for c in ab])
    assert np.median(lifts) == pytest.approx(predicted.lift, abs=0.03)  # the estimate is centred on the truth


def test_simulated_events_through_the_report(shop):
    _, pool = shop
    exp = two_arm_experiment("sim_check", salt="s")
    events = simulate_events(pool, exp, {"A": "reversed", "B": "oracle"}, users=800, seed=5)
    assert set(events["arm"]) == {"sim_check:A", "sim_check:B"}
    report = ab_report(exp, events, arm_source="recorded")
    assert report.verdicts[0].startswith("B better than A on ctr")
    truth = pool.true_ratio("oracle") / pool.true_ratio("reversed") - 1
    comparison = report.comparison("B")
    assert comparison.lift_low < truth < comparison.lift_high
    # per-arm totals are what the shoppers drawn into each arm were shown
    shown = sum(a.totals["impressions"] for a in report.arms)
    assert shown == np.sum(events["event_type"] == "impression")
