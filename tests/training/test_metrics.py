"""tfrec.training.metrics against brute-force definitions, hand-computed values and the documented error cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfrec.training.metrics import (
    CalibrationTable,
    GroupedAUC,
    auc,
    calibration_table,
    expected_calibration_error,
    format_calibration,
    grouped_auc,
    log_loss,
    mrr,
    ndcg_at_k,
    popularity_scores,
    recall_at_k,
)


def brute_auc(labels, scores, weights=None):
    """Definition: weighted share of (positive, negative) pairs ordered correctly, ties counting half."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=float)
    pos, neg = labels == 1, labels == 0
    sp, sn = scores[pos][:, None], scores[neg][None, :]
    pair_w = weights[pos][:, None] * weights[neg][None, :]
    correct = (sp > sn) + 0.5 * (sp == sn)
    return float((pair_w * correct).sum() / pair_w.sum())


def brute_ndcg(gains, scores, k):
    order = np.argsort(-np.asarray(scores), kind="stable")
    disc = 1.0 / np.log2(np.arange(2, len(gains) + 2))
    dcg = (np.asarray(gains)[order][:k] * disc[:k]).sum()
    ideal = (np.sort(gains)[::-1][:k] * disc[:k]).sum()
    return dcg / ideal


# ----------------------------------------------------------------------------------------------------------- AUC
def test_auc_hand_computed():
    # pairs (pos, neg): (0.35 > 0.1) yes, (0.35 > 0.4) no, (0.8, 0.1) yes, (0.8, 0.4) yes -> 3/4
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert auc([1, 1, 0], [0.9, 0.2, 0.2]) == pytest.approx(0.75)
    assert auc([1, 0, 1, 0], [4, 3, 2, 1]) == pytest.approx(0.75)
    assert auc([0, 1], [0.2, 0.9]) == 1.0 and auc([1, 0], [0.2, 0.9]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 400
    labels = rng.integers(0, 2, n)
    scores = np.round(rng.normal(size=n) + labels * 0.5, 1)  # coarse rounding -> many ties
    assert len(np.unique(scores)) < n / 2
    assert auc(labels, scores) == pytest.approx(brute_auc(labels, scores), abs=1e-12)
    weights = rng.uniform(0, 3, n)
    assert auc(labels, scores, weights) == pytest.approx(brute_auc(labels, scores, weights), abs=1e-12)


def test_auc_invariant_to_row_order_and_monotone_transform():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 1000)
    scores = np.round(rng.uniform(size=1000) + 0.3 * labels, 2)
    perm = rng.permutation(1000)
    base = auc(labels, scores)
    assert auc(labels[perm], scores[perm]) == pytest.approx(base, abs=1e-12)
    assert auc(labels, np.exp(3 * scores)) == pytest.approx(base, abs=1e-12)


def test_auc_integer_weights_equal_repeating_rows():
    labels, scores, w = np.array([1, 0, 1, 0]), np.array([0.3, 0.5, 0.7, 0.1]), np.array([2, 1, 1, 3])
    assert auc(labels, scores, w) == pytest.approx(auc(np.repeat(labels, w), np.repeat(scores, w)))


def test_auc_accepts_bool_labels_and_column_scores():
    assert auc(np.array([False, True]), np.array([[0.1], [0.9]])) == 1.0


@pytest.mark.parametrize(
    "labels, scores, kwargs, match",
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], {}, "no negative examples"),
        ([0, 0], [0.1, 0.2], {}, "no positive examples"),
        ([1, 0], [0.1, 0.2], {"weights": [0.0, 1.0]}, "no positive examples"),
        ([1, 0, 1], [0.1, 0.2], {}, "lengths differ: labels=3, scores=2"),
        ([], [], {}, "empty input"),
        ([1, 2], [0.1, 0.2], {}, "labels must be 0/1, found 2.0"),
        ([1, 0], [0.1, float("nan")], {}, "scores contains NaN"),
        ([1, 0], [0.1, 0.2], {"weights": [1.0, -1.0]}, "weights must be non-negative"),
        ([1, 0], [[0.1, 0.2], [0.3, 0.4]], {}, r"scores must be 1-D"),
    ],
)
def test_auc_errors(labels, scores, kwargs, match):
    with pytest.raises(ValueError, match=match):
        auc(labels, scores, **kwargs)


# --------------------------------------------------------------------------------------------------- grouped AUC
def test_grouped_auc_matches_per_group_brute_force():
    rng = np.random.default_rng(3)
    n = 3000
    groups = rng.integers(0, 60, n)
    labels = (rng.uniform(size=n) < 0.3).astype(int)
    scores = np.round(rng.normal(size=n) + labels, 1)
    total, weight, used = 0.0, 0, 0
    for g in np.unique(groups):
        m = groups == g
        if 0 < labels[m].sum() < m.sum():
            total += m.sum() * brute_auc(labels[m], scores[m])
            weight += m.sum()
            used += 1
    result = grouped_auc(labels, scores, groups)
    assert isinstance(result, GroupedAUC)
    assert result.value == pytest.approx(total / weight, abs=1e-12)
    assert result.groups_used == used and result.groups_total == 60


def test_grouped_auc_hand_computed_and_skips_single_class_groups():
    labels = [1, 0, 0, 1, 0, 1, 1, 0]
    scores = [0.9, 0.1, 0.5, 0.2, 0.3, 0.5, 0.4, 0.6]
    groups = ["u1", "u1", "u2", "u2", "u2", "u3", "u3", "u4"]
    # u1: 1.0 (2 rows); u2: pos 0.2 vs negs 0.5, 0.3 -> 0.0 (3 rows); u3 and u4 single-class -> skipped
    value, used, total = grouped_auc(labels, scores, groups)
    assert value == pytest.approx((2 * 1.0 + 3 * 0.0) / 5)
    assert (used, total) == (2, 4)


def test_grouped_auc_differs_from_global_auc_when_groups_differ_in_base_rate():
    # Within each user the ranking is perfect, but user b's scores are all higher than user a's.
    labels = [1, 0, 1, 0]
    scores = [0.2, 0.1, 0.9, 0.8]
    groups = ["a", "a", "b", "b"]
    assert grouped_auc(labels, scores, groups).value == 1.0
    assert auc(labels, scores) == pytest.approx(0.75)


def test_grouped_auc_errors():
    with pytest.raises(ValueError, match="none of the 2 groups"):
        grouped_auc([1, 1, 0], [0.1, 0.2, 0.3], [1, 1, 2])
    with pytest.raises(ValueError, match="lengths differ: labels=2, groups=3"):
        grouped_auc([1, 0], [0.1, 0.2], [1, 1, 2])


# ------------------------------------------------------------------------------------------------------ log loss
def test_log_loss_hand_computed():
    expected = -(math.log(0.8) + math.log(1 - 0.4)) / 2
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(expected)
    weighted = -(3 * math.log(0.8) + math.log(0.6)) / 4
    assert log_loss([1, 0], [0.8, 0.4], weights=[3, 1]) == pytest.approx(weighted)


def test_log_loss_clips_confident_mistakes():
    assert log_loss([1], [0.0], eps=1e-7) == pytest.approx(-math.log(1e-7))
    assert log_loss([0, 1], [0.0, 1.0]) == pytest.approx(-math.log(1 - 1e-7))


def test_log_loss_errors():
    with pytest.raises(ValueError, match="not logits"):
        log_loss([1, 0], [2.3, -1.0])
    with pytest.raises(ValueError, match="labels must lie in"):
        log_loss([2, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match="lengths differ"):
        log_loss([1, 0], [0.5])


# --------------------------------------------------------------------------------------------------- calibration
def test_calibration_table_equal_count_bins_hand_computed():
    probs = np.arange(10) / 10.0
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 0, 1, 1])
    table = calibration_table(labels[::-1], probs[::-1], bins=5)  # input order does not matter
    assert isinstance(table, CalibrationTable)
    assert [b.count for b in table.bins] == [2] * 5
    assert [b.mean_pred for b in table.bins] == pytest.approx([0.05, 0.25, 0.45, 0.65, 0.85])
    assert [b.observed_rate for b in table.bins] == pytest.approx([0.0, 0.5, 0.5, 0.5, 1.0])
    assert (table.bins[1].min_pred, table.bins[1].max_pred) == pytest.approx((0.2, 0.3))
    expected_ece = np.mean([0.05, 0.25, 0.05, 0.15, 0.15])
    assert table.ece == pytest.approx(expected_ece)
    assert expected_calibration_error(labels, probs, bins=5) == pytest.approx(expected_ece)


def test_calibration_uneven_and_tiny_inputs():
    table = calibration_table([1, 0, 1], [0.2, 0.4, 0.6], bins=10)
    assert [b.count for b in table.bins] == [1, 1, 1]
    assert sum(b.count for b in calibration_table(np.zeros(23), np.linspace(0, 1, 23), bins=4).bins) == 23


def test_ece_small_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(0)
    p = rng.beta(1, 8, 200_000)  # CTR-like: most predictions near 0
    calibrated = (rng.uniform(size=p.size) < p).astype(float)
    assert expected_calibration_error(calibrated, p) < 0.005
    over = (rng.uniform(size=p.size) < p / 2).astype(float)  # model predicts twice the true rate
    assert expected_calibration_error(over, p) == pytest.approx(p.mean() / 2, rel=0.05)
    table = calibration_table(over, p)
    assert all(b.gap > 0 for b in table.bins)
    assert [b.mean_pred for b in table.bins] == sorted(b.mean_pred for b in table.bins)


def test_format_calibration_prints_every_bin_and_the_ece():
    table = calibration_table([0, 1, 0, 1], [0.1, 0.2, 0.7, 0.9], bins=2)
    text = format_calibration(table)
    lines = text.splitlines()
    assert lines[0].split() == ["bin", "count", "pred", "range", "mean", "pred", "observed", "gap"]
    assert len(lines) == 2 + 2 + 1
    assert lines[2].split() == ["0", "2", "0.1000-0.2000", "0.1500", "0.5000", "-0.3500"]
    assert lines[-1] == f"ECE = {table.ece:.4f} over 4 examples"


def test_calibration_errors():
    with pytest.raises(ValueError, match="bins must be a positive int"):
        calibration_table([0, 1], [0.1, 0.2], bins=0)
    with pytest.raises(ValueError, match="probs must lie in"):
        calibration_table([0, 1], [0.1, 1.2])


# ---------------------------------------------------------------------------------------------------------- NDCG
def test_ndcg_perfect_is_one_and_reversed_is_lower():
    gains = np.array([3, 2, 1, 0])
    groups = np.zeros(4)
    assert ndcg_at_k(gains, [4, 3, 2, 1], groups) == pytest.approx(1.0)
    reversed_ = ndcg_at_k(gains, [1, 2, 3, 4], groups)
    assert reversed_ < 1.0
    # reversed order: gains 0,1,2,3 at ranks 1..4; ideal 3,2,1,0
    dcg = 1 / math.log2(3) + 2 / math.log2(4) + 3 / math.log2(5)
    idcg = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    assert reversed_ == pytest.approx(dcg / idcg)


def test_ndcg_truncates_at_k():
    # only the relevant item is at rank 3: invisible at k=2, 1/log2(4) = 0.5 at k=3
    assert ndcg_at_k([0, 0, 1], [3, 2, 1], [7, 7, 7], k=2) == 0.0
    assert ndcg_at_k([0, 0, 1], [3, 2, 1], [7, 7, 7], k=3) == pytest.approx(0.5)


def test_ndcg_averages_over_groups_and_skips_groups_without_positives():
    gains = [1, 0, 0, 1, 0, 0]
    scores = [0.9, 0.1, 0.9, 0.1, 0.5, 0.4]
    groups = ["q1", "q1", "q2", "q2", "q3", "q3"]
    assert ndcg_at_k(gains, scores, groups) == pytest.approx((1.0 + 1 / math.log2(3)) / 2)


def test_ndcg_tied_scores_share_the_mean_discount():
    value = ndcg_at_k([1, 0], [0.5, 0.5], [0, 0])
    assert value == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert ndcg_at_k([0, 1], [0.5, 0.5], [0, 0]) == pytest.approx(value)


def test_ndcg_matches_brute_force_on_random_graded_lists():
    rng = np.random.default_rng(11)
    sizes = rng.integers(1, 30, 80)
    groups = np.repeat(np.arange(80), sizes)
    gains = rng.integers(0, 4, groups.size).astype(float)
    scores = rng.normal(size=groups.size)  # continuous: no ties
    perm = rng.permutation(groups.size)
    for k in (1, 5, 10, 50):
        expected = [
            brute_ndcg(gains[groups == g], scores[groups == g], k) for g in range(80) if gains[groups == g].sum() > 0
        ]
        assert ndcg_at_k(gains[perm], scores[perm], groups[perm], k=k) == pytest.approx(np.mean(expected), abs=1e-12)


def test_ndcg_errors():
    with pytest.raises(ValueError, match="none of the 1 groups has a positive gain"):
        ndcg_at_k([0, 0], [0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="gains must be non-negative"):
        ndcg_at_k([-1, 1], [0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="k must be a positive int"):
        ndcg_at_k([1, 0], [0.1, 0.2], [1, 1], k=0)


# ----------------------------------------------------------------------------------------------------- retrieval
def test_recall_and_mrr_hand_computed():
    ranked = [["a", "b", "c", "d"], ["x", "y", "z", "w"], ["p", "q", "r", "s"]]
    relevant = [{"b", "d"}, {"x"}, {"nope"}]
    # recall@2: 1/2, 1, 0 ; recall@4: 1, 1, 0
    assert recall_at_k(ranked, relevant, k=2) == pytest.approx((0.5 + 1 + 0) / 3)
    assert recall_at_k(ranked, relevant, k=4) == pytest.approx(2 / 3)
    # first hit ranks: 2, 1, none
    assert mrr(ranked, relevant) == pytest.approx((0.5 + 1 + 0) / 3)
    assert mrr(ranked, relevant, k=1) == pytest.approx(1 / 3)


def test_retrieval_skips_queries_without_relevant_items_and_ignores_duplicates():
    ranked = [[1, 1, 2], [3, 4, 5]]
    assert recall_at_k(ranked, [{1, 9}, set()], k=3) == pytest.approx(0.5)
    assert mrr(ranked, [[2], []], k=3) == pytest.approx(1 / 3)


def test_single_relevant_id_fast_path_matches_general_path():
    rng = np.random.default_rng(5)
    ranked = np.stack([rng.permutation(50)[:20] for _ in range(300)])
    target = rng.integers(0, 50, 300)
    sets = [{int(t)} for t in target]
    for k in (1, 5, 20):
        assert recall_at_k(ranked, target, k) == pytest.approx(recall_at_k(list(ranked), sets, k))
        assert mrr(ranked, target, k) == pytest.approx(mrr(list(ranked), sets, k))
    assert recall_at_k(ranked, target, 20) > recall_at_k(ranked, target, 5)


def test_retrieval_errors():
    with pytest.raises(ValueError, match="lengths differ"):
        recall_at_k([[1]], [{1}, {2}], k=1)
    with pytest.raises(ValueError, match="every query has an empty relevant set"):
        mrr([[1]], [set()])
    with pytest.raises(ValueError, match="k must be a positive int"):
        recall_at_k([[1]], [{1}], k=0)


# ------------------------------------------------------------------------------------------------------ baseline
def test_popularity_smoothed_ctr_hand_computed():
    items = ["a", "a", "a", "a", "b", "c", "c"]
    clicks = [1, 1, 1, 0, 1, 0, 0]
    rate = 4 / 7
    scores = popularity_scores(items, clicks, ["a", "b", "c", "unseen"], prior=2.0)
    expected = [(3 + 2 * rate) / 6, (1 + 2 * rate) / 3, (0 + 2 * rate) / 4, rate]
    np.testing.assert_allclose(scores, expected)
    # the default prior keeps a single lucky click ('b', 1/1) below the proven item 'a' (3/4)
    a, b = popularity_scores(items, clicks, ["a", "b"])
    assert a > b
    raw = popularity_scores(items, clicks, ["a", "b", "unseen"], prior=0.0)
    np.testing.assert_allclose(raw, [0.75, 1.0, rate])


def test_popularity_counts_without_labels():
    np.testing.assert_array_equal(popularity_scores([5, 5, 7], None, [7, 5, 9]), [1.0, 2.0, 0.0])


def test_popularity_baseline_beats_random_on_popularity_driven_clicks():
    rng = np.random.default_rng(2)
    item_ctr = rng.beta(1, 10, 200)
    train_items, eval_items = rng.integers(0, 200, 50_000), rng.integers(0, 200, 20_000)
    train_y = rng.uniform(size=train_items.size) < item_ctr[train_items]
    eval_y = rng.uniform(size=eval_items.size) < item_ctr[eval_items]
    baseline = auc(eval_y, popularity_scores(train_items, train_y, eval_items))
    assert baseline > 0.6
    assert baseline == pytest.approx(auc(eval_y, item_ctr[eval_items]), abs=0.02)


def test_popularity_errors():
    with pytest.raises(ValueError, match="lengths differ"):
        popularity_scores([1, 2], [1], [1])
    with pytest.raises(ValueError, match="prior must be >= 0"):
        popularity_scores([1], [1], [1], prior=-1)
