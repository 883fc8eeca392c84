"""The synthetic click signal is learnable by a plain logistic model with crosses, and not trivially.

A numpy logistic regression with the feature crosses tfrec's CTR models use (user x department, segment x
department, query term x leaf, query term x brand) must beat one that only knows position and item id, and stay
below the ground-truth ceiling.
"""

from __future__ import annotations

import numpy as np
import pytest

from tfrec.data.synthetic import SyntheticConfig, generate, impression_labels, rank_auc


def _fit_logistic(rows, keys, y, n, train_rows, l2=10.0, iters=300, lr=0.3):
    """Full-batch Adagrad on one-hot features given as (row, key) pairs; returns a score per row."""
    vocab, fid = np.unique(keys, return_inverse=True)
    train = rows < train_rows
    w = np.zeros(len(vocab))
    g2 = np.full(len(vocab), 1e-8)
    for _ in range(iters):
        z = np.bincount(rows[train], weights=w[fid[train]], minlength=train_rows)
        err = 1.0 / (1.0 + np.exp(-z)) - y[:train_rows]
        grad = np.bincount(fid[train], weights=err[rows[train]], minlength=len(vocab)) + l2 * w
        g2 += grad**2
        w -= lr * grad / np.sqrt(g2)
    return np.bincount(rows, weights=w[fid], minlength=n)


@pytest.mark.parametrize("seed", [0, 3])
def test_logistic_model_with_crosses_learns_beyond_position_and_item(seed):
    data = generate(SyntheticConfig.preset("tiny", seed=seed))
    ev, cat, users = data.dataset.events, data.dataset.catalog, data.dataset.users
    imp = ev.take(ev["event_type"] == "impression")
    labels = impression_labels(ev)
    n, half = len(imp), len(imp) // 2  # events are in time order: train on the first half, test on the second
    y = labels.clicked.astype(float)

    row_of_item = {item: k for k, item in enumerate(cat["item_id"])}
    item = np.array([row_of_item[i] for i in imp["item_id"]])
    leaf = np.asarray(cat["category"][item], dtype=str)
    dept = np.array([path.split(" > ")[0] for path in leaf])
    brand = np.asarray(cat["brand"][item], dtype=str)
    segment_of = dict(zip(users["user_id"], users["segment"]))
    segment = np.array([segment_of[u] for u in imp["user_id"]])
    user = np.asarray(imp["user_id"], dtype=str)
    token_rows, tokens = zip(*[(r, w) for r, q in enumerate(imp["query"]) for w in set(q.lower().split())])
    token_rows, tokens = np.array(token_rows), np.array(tokens)

    everyone = np.arange(n)
    base = [(everyone, np.full(n, "bias")), (everyone, np.char.add("pos=", imp["position"].astype(str))),
            (everyone, np.char.add("item=", np.asarray(imp["item_id"], dtype=str)))]
    crosses = [
        (everyone, np.char.add("uxd=", np.char.add(user, dept))),
        (everyone, np.char.add("sxd=", np.char.add(segment, dept))),
        (token_rows, np.char.add("qxl=", np.char.add(tokens, leaf[token_rows]))),
        (token_rows, np.char.add("qxb=", np.char.add(tokens, brand[token_rows]))),
    ]

    def auc_of(features):
        rows = np.concatenate([r for r, _ in features])
        keys = np.concatenate([k for _, k in features])
        score = _fit_logistic(rows, keys, y, n, half)
        return rank_auc(score[half:], labels.clicked[half:])

    plain, crossed = auc_of(base), auc_of(base + crosses)
    truth = rank_auc(data.ground_truth.click_probability(labels.request_ids, labels.item_ids)[half:],
                     labels.clicked[half:])
    assert plain > 0.7
    assert crossed > plain + 0.01
    assert crossed < truth
