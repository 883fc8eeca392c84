"""Full-catalog retrieval evaluation: hand-computed metrics, seen-item exclusion, ties, batching, real baselines."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tfrec.data.interactions import leave_last_out, random_pair_split
from tfrec.data.public import load_amazon_sequences, load_movielens
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, Dataset, Table
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.retrieval.evaluation import (
    evaluate_scores, evaluate_top_k, format_reports, popularity_baseline, preferred_item_recall, recommend,
)
from tfrec.training.metrics import mrr, recall_at_k

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
AMAZON_BEAUTY = SHARED_DATA / "amazon-beauty"
MOVIELENS = SHARED_DATA / "movielens-100k"


def tiny_split():
    """u1 bought a then b, u2 bought c then d: leave-last-out tests u1->b (history a) and u2->d (history c)."""
    rows = [("u1", "a", 1), ("u1", "b", 2), ("u2", "c", 1), ("u2", "d", 2)]
    events = Table(EVENTS_SCHEMA, {"user_id": np.array([r[0] for r in rows], dtype=object),
                                   "item_id": np.array([r[1] for r in rows], dtype=object),
                                   "timestamp": np.array([r[2] for r in rows]),
                                   "event_type": np.full(4, "purchase", dtype=object)})
    catalog = Table(CATALOG_SCHEMA, {"item_id": np.array(["a", "b", "c", "d"], dtype=object)})
    return leave_last_out(Dataset(catalog, events))


def fixed_order(user_ids, history):  # a > b > c > d for everyone
    return np.tile([4.0, 3.0, 2.0, 1.0], (len(user_ids), 1))


KS = dict(recall_ks=(1, 2, 3), ndcg_ks=(2, 4), accuracy_ks=(1, 2))


def test_hand_computed_metrics_without_exclusion():
    r = evaluate_scores(tiny_split(), fixed_order, exclude_seen=False, **KS)
    # u1's target b is at position 1, u2's target d at position 3
    assert r.recall == {1: 0.0, 2: 0.5, 3: 0.5}
    assert r.ndcg[2] == pytest.approx((1 / math.log2(3)) / 2)
    assert r.ndcg[4] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / 2)
    assert r.mrr == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert r.top_k_accuracy == {1: 0.0, 2: 0.5}


def test_excluding_seen_items_moves_targets_up():
    split = tiny_split()
    assert split.test.exclude_seen_default
    r = evaluate_scores(split, fixed_order, **KS)  # default: exclude; u1's a and u2's c leave the ranking
    assert r.exclude_seen
    assert r.recall == {1: 0.5, 2: 0.5, 3: 1.0}  # b now first; d now third (a, b still above)
    assert r.mrr == pytest.approx((1 + 1 / 3) / 2)
    assert r.ndcg[2] == pytest.approx(0.5)


def test_ties_are_expected_for_standard_metrics_and_optimistic_for_tfrs_accuracy():
    constant = lambda users, history: np.zeros((len(users), 4))  # noqa: E731
    r = evaluate_scores(tiny_split(), constant, exclude_seen=False, **KS)
    assert r.recall[1] == pytest.approx(0.25) and r.recall[3] == pytest.approx(0.75)
    assert r.mrr == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert r.ndcg[2] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert r.top_k_accuracy[1] == 1.0  # tf.math.in_top_k counts ties in the target's favour


def _synthetic_split():
    data = generate(SyntheticConfig.preset("tiny"))
    return data, random_pair_split(data.dataset, 0.25, seed=1, event_types=["click", "add_to_cart", "purchase"])


def test_scores_and_top_k_lists_agree_and_batching_does_not_change_results():
    data, split = _synthetic_split()
    rng = np.random.default_rng(0)
    table = {u: rng.normal(size=len(split.item_ids)) for u in np.unique(split.test.user_ids).tolist()}
    scorer = lambda users, history: np.stack([table[u] for u in users])  # noqa: E731
    for exclude in (False, True):
        full = evaluate_scores(split, scorer, exclude_seen=exclude)
        small = evaluate_scores(split, scorer, exclude_seen=exclude, max_cells=3 * len(split.item_ids))
        assert full.metrics() == pytest.approx(small.metrics())
        users = np.unique(split.test.user_ids)
        index = {u: np.flatnonzero(split.test.user_ids == u)[0] for u in users.tolist()}
        history = [split.test.history[index[u]] for u in users.tolist()]
        lists = recommend(scorer, users, history, split.item_ids, k=len(split.item_ids), exclude_seen=False)
        listed = evaluate_top_k(split, dict(zip(users.tolist(), lists)), exclude_seen=exclude)
        assert listed.metrics() == pytest.approx(full.metrics())
    # without exclusion the one-item-per-query numbers match the shared metric functions
    ranked = [lists[np.searchsorted(users, u)] for u in split.test.user_ids]
    plain = evaluate_scores(split, scorer, exclude_seen=False)
    assert plain.recall[50] == pytest.approx(recall_at_k(ranked, split.test.item_ids, 50))
    assert plain.mrr == pytest.approx(mrr(ranked, split.test.item_ids, k=len(split.item_ids)))


def test_popularity_baseline_and_ground_truth_recall():
    data, split = _synthetic_split()
    pop = popularity_baseline(split)
    counts = {i: 0 for i in split.item_ids.tolist()}
    for item in split.train["item_id"].tolist():
        counts[item] += 1
    assert pop(["x"], [[]])[0].tolist() == [counts[i] for i in split.item_ids.tolist()]
    users = data.dataset.users["user_id"][:50]
    best = data.ground_truth.preferred_items(users, 10)
    assert preferred_item_recall(data.ground_truth, users, best, k=10) == 1.0
    popular = recommend(pop, users, [[]] * len(users), split.item_ids, k=10)
    assert 0.0 <= preferred_item_recall(data.ground_truth, users, popular, k=10) < 0.5


def test_report_format_dict_and_input_errors():
    split = tiny_split()
    r = evaluate_scores(split, fixed_order, name="fixed")
    assert "| recall@10 |" in r.format() and "fixed: leave_last_out, 2 queries" in r.format()
    assert json.loads(json.dumps(r.to_dict()))["metrics"]["top_100_accuracy"] == 1.0  # 4 candidates only
    assert format_reports([r, r]).count("| fixed |") == 2
    with pytest.raises(ValueError, match="shape"):
        evaluate_scores(split, lambda u, h: np.zeros((len(u), 3)))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores(split, lambda u, h: np.full((len(u), 4), np.nan))
    with pytest.raises(ValueError, match="metrics need 100"):
        evaluate_top_k(split, {"u1": ["a", "b"], "u2": ["d"]})
    with pytest.raises(ValueError, match="no top-k list for test user 'u2'"):
        evaluate_top_k(split, {"u1": ["a"]}, recall_ks=(1,), ndcg_ks=(1,), accuracy_ks=(1,))


@pytest.mark.skipif(not (AMAZON_BEAUTY / "beauty.txt").is_file(),
                    reason=f"Amazon Beauty copy not found at {AMAZON_BEAUTY.resolve()}")
def test_popularity_on_amazon_beauty_leave_last_out():
    split = leave_last_out(load_amazon_sequences(AMAZON_BEAUTY))
    r = evaluate_scores(split, popularity_baseline(split), name="popularity")
    print("\n" + r.format())
    assert r.n_queries == 40226 and r.n_items == 54542
    assert 0.0 < r.recall[10] < 0.1 and 0.0 < r.ndcg[10] < r.recall[10]


@pytest.mark.skipif(not (MOVIELENS / "u.data").is_file(),
                    reason=f"MovieLens 100K copy not found at {MOVIELENS.resolve()}")
def test_popularity_on_movielens_random_split():
    split = random_pair_split(load_movielens(MOVIELENS), test_fraction=0.2, seed=42)
    r = evaluate_scores(split, popularity_baseline(split), name="popularity")
    print("\n" + r.format())
    assert (len(split.train), r.n_queries, r.n_items) == (80_000, 20_000, 1682)
    assert 0.15 < r.top_k_accuracy[100] < 0.45
