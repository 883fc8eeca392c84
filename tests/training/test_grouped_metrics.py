"""List-wise metrics per group (tfrec.training.rank_metrics.grouped_metrics) against hand-computed values, the
groups they skip, and the ranker report that carries them beside the logistic CTR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfrec.training.metrics import auc
from tfrec.training.rank_metrics import grouped_metrics
from tfrec.training.ranker_evaluation import ranker_report

LOG3 = math.log2(3.0)

# Four lists: A and C are mixed; B (no click) and D (a single clicked item) cannot be ranked and are skipped.
GROUPS = np.array(["A", "A", "A", "B", "B", "C", "C", "C", "C", "D"])
LABELS = np.array([1, 0, 0, 0, 0, 1, 1, 0, 0, 1])
SCORES = np.array([0.9, 0.5, 0.95, 0.1, 0.2, 0.3, 0.3, 0.3, 0.1, 0.7])
PROBS = np.array([0.8, 0.2, 0.4, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.9])

# A: the click (0.9) beats 0.5 and loses to 0.95 -> AUC 1/2; it sits at rank 2 -> NDCG 1/log2(3);
#    log loss -(ln .8 + ln .8 + ln .6) / 3.
# C: each click ties one 0.3 negative (1/2) and beats 0.1 (1) -> AUC (2 * 1.5) / 4 = 3/4; the three tied items
#    share the mean discount of ranks 1-3 -> DCG 2 * (1 + 1/log2(3) + 1/2) / 3 over IDCG 1 + 1/log2(3); log loss ln 2.
AUC_A, AUC_C = 0.5, 0.75
NDCG_A = 1.0 / LOG3
NDCG_C = (2.0 * (1.0 + 1.0 / LOG3 + 0.5) / 3.0) / (1.0 + 1.0 / LOG3)
LOSS_A = -(2.0 * math.log(0.8) + math.log(0.6)) / 3.0
LOSS_C = math.log(2.0)


def test_hand_computed_values_average_each_mixed_list_once():
    result = grouped_metrics(LABELS, SCORES, GROUPS, k=10, probabilities=PROBS)
    assert result.auc == pytest.approx((AUC_A + AUC_C) / 2)
    assert result.ndcg == pytest.approx((NDCG_A + NDCG_C) / 2)
    assert result.log_loss == pytest.approx((LOSS_A + LOSS_C) / 2)
    assert (result.groups_used, result.groups_total, result.k) == (2, 4, 10)
    assert result.to_dict() == {"group_auc": result.auc, "group_log_loss": result.log_loss, "ndcg@10": result.ndcg}


def test_cutoff_k_counts_only_the_top_positions():
    # At k=1 only the top item counts: A's top item (0.95) is no click -> 0; C's top three tie, 2 of 3 are clicks.
    result = grouped_metrics(LABELS, SCORES, GROUPS, k=1)
    assert result.ndcg == pytest.approx((0.0 + 2.0 / 3.0) / 2)
    assert result.log_loss is None


def test_graded_labels_get_ndcg_over_users_with_unequal_ratings():
    groups = np.array(["u1", "u1", "u1", "u2", "u2"])
    ratings = np.array([5.0, 3.0, 3.0, 4.0, 4.0])  # u2 rated everything 4: any order is ideal, so it is skipped
    predicted = np.array([1.0, 3.0, 2.0, 0.0, 9.0])
    result = grouped_metrics(ratings, predicted, groups, k=10)
    dcg = 3.0 + 3.0 / LOG3 + 5.0 / 2.0
    ideal = 5.0 + 3.0 / LOG3 + 3.0 / 2.0
    assert result.ndcg == pytest.approx(dcg / ideal)
    assert result.auc is None and result.groups_used == 1
    assert set(result.to_dict()) == {"ndcg@10"}


def test_list_wise_differs_from_pointwise():
    # Perfect within every list, but the lists' score levels run against their click rates: pointwise AUC is poor.
    groups = np.repeat(["busy", "quiet"], 4)
    labels = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    scores = np.array([0.4, 0.3, 0.2, 0.1, 0.9, 0.8, 0.7, 0.6])
    result = grouped_metrics(labels, scores, groups)
    assert result.auc == 1.0 and result.ndcg == 1.0
    assert auc(labels, scores) < 0.7


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="none of the 2 groups has unequal labels"):
        grouped_metrics([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], ["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="lengths differ: labels=3, scores=2"):
        grouped_metrics([1, 0, 0], [0.1, 0.2], ["a", "a", "a"])
    with pytest.raises(ValueError, match="lengths differ: labels=3, groups=2"):
        grouped_metrics([1, 0, 0], [0.1, 0.2, 0.3], ["a", "a"])
    with pytest.raises(ValueError, match="probabilities=2"):
        grouped_metrics([1, 0, 0], [0.1, 0.2, 0.3], ["a", "a", "a"], probabilities=[0.5, 0.5])


def test_ranker_report_has_list_wise_rows_for_every_model():
    scores = {"logged": PROBS, "serving": SCORES}
    baseline = {"logged": PROBS[::-1].copy(), "serving": SCORES[::-1].copy()}
    report = ranker_report(["click"], {"click": LABELS}, GROUPS, {"click": scores}, baseline=baseline,
                           popularity={"click": np.full(len(LABELS), 0.3)})
    ranker = report.row("click", "dcn_ranker")
    assert ranker["group_auc"] == pytest.approx((AUC_A + AUC_C) / 2)
    assert ranker["ndcg@10"] == pytest.approx((NDCG_A + NDCG_C) / 2)
    assert ranker["group_log_loss"] == pytest.approx((LOSS_A + LOSS_C) / 2)
    ctr = report.row("click", "logistic_ctr")
    assert {"auc", "log_loss", "group_auc", "group_log_loss", "ndcg@10"} == set(ctr)
    assert report.row("click", "popularity")["group_auc"] == 0.5  # a constant score ties every pair


def test_rating_report_compares_liked_items_with_the_baseline():
    groups = np.array(["u1"] * 3 + ["u2"] * 3)
    ratings = np.array([5.0, 2.0, 4.0, 1.0, 3.0, 5.0])
    like = (ratings >= 4).astype(np.int64)
    predicted = np.array([4.5, 2.5, 3.0, 2.0, 3.5, 1.5])  # u2's 5 is scored below its 1 and 3
    p_like = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.7])  # orders both users perfectly
    report = ranker_report(["rating"], {"rating": ratings, "like": like}, groups,
                           {"rating": {"logged": predicted, "serving": predicted}},
                           baseline={"logged": p_like, "serving": p_like}, baseline_label="like",
                           train_means={"rating": 3.0})
    ranker, ctr = report.row("rating", "dcn_ranker"), report.row("rating", "logistic_ctr")
    assert ranker["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - ratings) ** 2)))
    assert ranker["like_group_auc"] == pytest.approx((1.0 + 0.0) / 2)  # u1 right, u2's one like below both others
    assert ctr["like_group_auc"] == 1.0 and ctr["ndcg@10"] == pytest.approx(1.0)
    assert "like_log_loss" in ctr and "like_log_loss" not in ranker
    assert report.row("rating", "training_mean")["rmse"] == pytest.approx(np.sqrt(np.mean((ratings - 3.0) ** 2)))
