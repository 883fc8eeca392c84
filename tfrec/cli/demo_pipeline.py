"""The demo's serving path: a request goes through the reloaded retrieval SavedModel (whole catalog → top-k
candidates), then the reloaded CTR SavedModel ranks those candidates, and the synthetic ground truth says how good
the final list is compared with what the shop actually showed for that request."""

from __future__ import annotations

import numpy as np

from tfrec.data.retrieval_examples import HISTORY, catalog_columns, positive_examples


def newest_requests(dataset, per_kind: int):
    """(impression examples, the row of the newest `per_kind` search and `per_kind` recommendation requests)."""
    from tfrec.data.examples import impression_examples

    examples = impression_examples(dataset)
    newest = np.argsort(-examples["timestamp"], kind="stable")
    picked = []
    for want_search in (True, False):
        seen = set()
        for i in newest:
            rid = examples["request_id"][i]
            if rid in seen or bool(examples["query"][i]) != want_search:
                continue
            seen.add(rid)
            picked.append(i)
            if len(seen) == per_kind:
                break
    return examples, picked


def _recent_items(dataset, history_length: int) -> dict:
    """Every positive (user, item, time), from which `_history_at` rebuilds a request's recent items as the
    retrieval job does."""
    positives = positive_examples(dataset, history_length=history_length)
    return {"users": positives["user_id"], "items": positives["item_id"], "ts": positives["timestamp"]}


def _history_at(history, user: str, ts: int, length: int) -> str:
    rows = np.flatnonzero((history["users"] == user) & (history["ts"] < ts))
    return " ".join(history["items"][rows][-length:].tolist())


def serve_samples(dataset, ground_truth, retrieval_path: str, ctr_path: str, retrieval_config, ctr_config,
                  per_kind: int = 2, show: int = 5) -> None:
    """Prints, per sample request, the top of the retrieve-then-rank list beside the truth."""
    from tfrec.export.loading import check_request, saved_model_predictor
    import tensorflow as tf

    retrieve = tf.saved_model.load(retrieval_path).signatures["serving_default"]
    rank = saved_model_predictor(ctr_path, output="click_probability")
    examples, picked = newest_requests(dataset, per_kind)
    catalog = catalog_columns(dataset)
    row_of = {item: i for i, item in enumerate(catalog["item_id"].tolist())}
    history = _recent_items(dataset, retrieval_config.examples.history_length)
    length = retrieval_config.examples.history_length
    gains = []
    for i in picked:
        request = {n: examples[n][i : i + 1] for n in retrieval_config.query_features if n != HISTORY}
        request[HISTORY] = np.array([_history_at(history, examples["user_id"][i], examples["timestamp"][i], length)], object)
        candidates = retrieve(**check_request(retrieve, request))["item_ids"].numpy()[0].astype(str)
        rows = np.array([row_of[c] for c in candidates])
        features = {}
        for name in ctr_config.feature_spec.names:
            features[name] = catalog[name][rows] if name in catalog else np.repeat(examples[name][i : i + 1], len(rows))
        features["position"] = np.zeros(len(rows), dtype=np.int64)
        probs = rank(features)
        order = np.argsort(-probs, kind="stable")
        rid = examples["request_id"][i]
        truth = ground_truth.click_probability(np.repeat(rid, len(rows)), candidates, positions=features["position"])
        shown = np.flatnonzero(examples["request_id"] == rid)
        shown = shown[np.argsort(examples["position"][shown], kind="stable")][:show]  # the shop's own top, as logged
        shown_truth = ground_truth.click_probability(examples["request_id"][shown], examples["item_id"][shown],
                                                     positions=np.zeros(len(shown), dtype=np.int64))
        top = min(show, len(order))
        gains.append((truth[order[:top]].mean(), shown_truth.mean()))
        query = examples["query"][i]
        kind = f'search "{query}"' if query else "recommendation"
        print(f"\nrequest {rid} by {examples['user_id'][i]} ({kind}): {len(candidates)} candidates from "
              f"{len(catalog['item_id'])} items, ranked by P(click)")
        print(f"  {'rank':>4} {'P(click)':>8} {'true':>6}  {'price':>8}  item")
        for r, j in enumerate(order[:top], 1):
            c = rows[j]
            print(f"  {r:>4} {probs[j]:>8.4f} {truth[j]:>6.3f}  {catalog['price'][c]:>8.2f}  {catalog['title'][c]}  "
                  f"[{catalog['category'][c]}]")
    ours, logged = np.mean(gains, axis=0)
    print(f"\nmean true P(click) of the top {show} at position 0: retrieve-then-rank {ours:.3f} vs "
          f"the shop's own top {show} {logged:.3f}")
