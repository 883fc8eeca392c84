"""TF-IDF + logistic regression intent baseline: accuracy helpers, top-k predictions, and held-out accuracy on
WANDS (real copy, skipped when absent) and on synthetic searches."""

from pathlib import Path

import numpy as np
import pytest

from tfrec.data.public.wands import load_wands, wands_split
from tfrec.data.query_labels import labelled_queries_from_ground_truth
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.training.intent_baselines import fit_tfidf_intent, intent_accuracy, majority_top_k

WANDS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wands-queries"
needs_wands = pytest.mark.skipif(not (WANDS / "query.csv").is_file(),
                                 reason=f"WANDS query copy not found at {WANDS.resolve()}")

TOY_Q = ["red running shoes", "running shoes men", "trail running shoe", "coffee maker", "espresso coffee machine",
         "drip coffee makers", "queen bed frame", "king bed", "wooden bed frame"]
TOY_Y = ["shoes"] * 3 + ["coffee"] * 3 + ["beds"] * 3


def test_intent_accuracy_and_majority():
    top = np.array([["a", "b", "c"], ["b", "a", "c"], ["c", "a", "b"], ["a", "c", "b"]], dtype=object)
    truth = ["a", "a", "b", "d"]
    assert intent_accuracy(top, truth) == {"top1": 0.25, "top3": 0.75}
    assert intent_accuracy(top, truth, ks=(2, 5)) == {"top2": 0.5, "top5": 0.75}
    assert intent_accuracy(np.array(["a", "b", "c", "d"], dtype=object), truth) == {"top1": 0.5, "top3": 0.5}
    with pytest.raises(ValueError, match="4 predictions but 3"):
        intent_accuracy(top, truth[:3])
    majority = majority_top_k(["x", "y", "y", "z", "z", "w"], 2, k=3)
    assert majority.tolist() == [["y", "z", "w"], ["y", "z", "w"]]


def test_top_k_predictions_on_toy_intents():
    model = fit_tfidf_intent(TOY_Q, TOY_Y)
    assert model.classes.tolist() == ["beds", "coffee", "shoes"]
    top = model.predict_top_k(["coffee makers", "bed frames", "running shoe"], k=5)
    assert top.shape == (3, 3)  # k is capped at the number of classes
    assert top[:, 0].tolist() == ["coffee", "beds", "shoes"]
    assert model.predict(["espresso machine"]).tolist() == ["coffee"]
    proba = model.predict_proba(["king bed"])
    assert proba.shape == (1, 3) and np.isclose(proba.sum(), 1.0) and proba[0].argmax() == 0
    assert np.array_equal(fit_tfidf_intent(TOY_Q, TOY_Y).predict_proba(TOY_Q), model.predict_proba(TOY_Q))
    with pytest.raises(ValueError, match="two distinct"):
        fit_tfidf_intent(TOY_Q[:3], TOY_Y[:3])
    with pytest.raises(ValueError, match="9 queries but 8 labels"):
        fit_tfidf_intent(TOY_Q, TOY_Y[:8])
    with pytest.raises(TypeError, match="sequence of queries"):
        model.predict_top_k("king bed")


@needs_wands
def test_tfidf_beats_majority_on_wands_held_out():
    train, test = wands_split(load_wands(WANDS), seed=0, test_fraction=0.25)
    model = fit_tfidf_intent(train.query, train.query_class)
    acc = intent_accuracy(model.predict_top_k(test.query, 3), test.query_class)
    floor = intent_accuracy(majority_top_k(train.query_class, len(test), 3), test.query_class)
    # measured: top1 0.525, top3 0.695; majority class 0.051 / 0.136
    assert acc["top1"] > floor["top1"] + 0.3 and acc["top3"] > floor["top3"] + 0.4, (acc, floor)
    assert acc["top1"] > 0.45 and acc["top3"] > 0.6, acc


def test_tfidf_learns_synthetic_intents_on_unseen_query_texts():
    table = labelled_queries_from_ground_truth(generate(SyntheticConfig.preset("tiny", seed=11, search_fraction=0.7))
                                               .ground_truth)
    queries, intents = table["query"], table["category"]
    distinct = np.unique(queries.astype(str))
    held = set(np.random.default_rng(0).permutation(distinct)[: len(distinct) // 4].tolist())
    test = np.array([q in held for q in queries.tolist()])  # query-disjoint: no test text seen in training
    model = fit_tfidf_intent(queries[~test], intents[~test])
    acc = intent_accuracy(model.predict_top_k(queries[test], 3), intents[test])
    floor = intent_accuracy(majority_top_k(intents[~test], int(test.sum()), 3), intents[test])
    assert acc["top1"] > 0.8 and acc["top1"] > floor["top1"] + 0.6, (acc, floor)
