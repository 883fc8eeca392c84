"""The demo's serving path, through the model server's gRPC PredictionService (what a shop's backend would call):
a search is first parsed by the query-understanding model (intent and filters), the retrieval model finds top-k
candidates in the whole catalog, candidates outside the parsed price limits are dropped, then the CTR model ranks
the rest, and the synthetic ground truth says how good
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


def models_config(models_dir: str, names) -> str:
    """Writes `<models_dir>/models.config` (TF Serving's text format) serving `names` and returns its path."""
    import os

    entries = "".join(f'  config {{ name: "{n}" base_path: "{os.path.abspath(os.path.join(models_dir, n))}" '
                      f'model_platform: "tensorflow" }}\n' for n in names)
    path = os.path.join(models_dir, "models.config")
    with open(path, "w", encoding="utf-8") as f:
        f.write("model_config_list {\n" + entries + "}\n")
    return path


def understand_query(client, query: str) -> dict:
    """The query model's intent and non-empty filters for one search, as plain Python values."""
    out = {k: v[0] for k, v in client.predict("intent", {"query": [query]}).items()}
    text = lambda v: v.decode("utf-8") if isinstance(v, bytes) else v  # noqa: E731
    filters = {k: text(out[k]) for k in ("brand", "color", "size", "gender", "material") if text(out[k])}
    filters.update({k: float(out[k]) for k in ("price_min", "price_max") if not np.isnan(out[k])})
    return {"intent": text(out["intent"]), "probability": float(out["intent_probability"]), "filters": filters}


def _within_price(prices: np.ndarray, filters: dict) -> np.ndarray:
    keep = np.ones(len(prices), dtype=bool)
    if "price_min" in filters:
        keep &= prices >= filters["price_min"]
    if "price_max" in filters:
        keep &= prices <= filters["price_max"]
    return keep


def serve_samples(dataset, ground_truth, client, retrieval_config, ctr_config, per_kind: int = 2, show: int = 5,
                  understand: bool = True) -> None:
    """Sends each sample request through the model server (gRPC Predict): the query model parses a search, the
    retrieval model finds candidates, parsed price limits filter them, the CTR model ranks them; prints the top of
    the list beside the truth."""
    examples, picked = newest_requests(dataset, per_kind)
    catalog = catalog_columns(dataset)
    row_of = {item: i for i, item in enumerate(catalog["item_id"].tolist())}
    history = _recent_items(dataset, retrieval_config.examples.history_length)
    length = retrieval_config.examples.history_length
    gains = []
    for i in picked:
        request = {n: examples[n][i : i + 1] for n in retrieval_config.query_features if n != HISTORY}
        request[HISTORY] = np.array([_history_at(history, examples["user_id"][i], examples["timestamp"][i], length)], object)
        candidates = client.predict("retrieval", request)["item_ids"][0].astype(str)
        rows = np.array([row_of[c] for c in candidates])
        query = examples["query"][i]
        parsed = understand_query(client, query) if understand and query else None
        retrieved = len(candidates)
        if parsed:
            keep = _within_price(catalog["price"][rows], parsed["filters"])
            if keep.any():  # a limit nothing satisfies is ignored rather than answering with nothing
                candidates, rows = candidates[keep], rows[keep]
        features = {}
        for name in ctr_config.feature_spec.names:
            features[name] = catalog[name][rows] if name in catalog else np.repeat(examples[name][i : i + 1], len(rows))
        features["position"] = np.zeros(len(rows), dtype=np.int64)
        probs = client.predict("ctr", features)["click_probability"].reshape(-1)
        order = np.argsort(-probs, kind="stable")
        rid = examples["request_id"][i]
        truth = ground_truth.click_probability(np.repeat(rid, len(rows)), candidates, positions=features["position"])
        shown = np.flatnonzero(examples["request_id"] == rid)
        shown = shown[np.argsort(examples["position"][shown], kind="stable")][:show]  # the shop's own top, as logged
        shown_truth = ground_truth.click_probability(examples["request_id"][shown], examples["item_id"][shown],
                                                     positions=np.zeros(len(shown), dtype=np.int64))
        top = min(show, len(order))
        gains.append((truth[order[:top]].mean(), shown_truth.mean()))
        kind = f'search "{query}"' if query else "recommendation"
        print(f"\nrequest {rid} by {examples['user_id'][i]} ({kind}): {retrieved} candidates from "
              f"{len(catalog['item_id'])} items, ranked by P(click)")
        if parsed:
            print(f"  understood: intent {parsed['intent']} (p={parsed['probability']:.2f}), filters "
                  f"{parsed['filters'] or 'none'}; {len(candidates)} candidates within the price limits")
        print(f"  {'rank':>4} {'P(click)':>8} {'true':>6}  {'price':>8}  item")
        for r, j in enumerate(order[:top], 1):
            c = rows[j]
            print(f"  {r:>4} {probs[j]:>8.4f} {truth[j]:>6.3f}  {catalog['price'][c]:>8.2f}  {catalog['title'][c]}  "
                  f"[{catalog['category'][c]}]")
    ours, logged = np.mean(gains, axis=0)
    print(f"\nmean true P(click) of the top {show} at position 0: retrieve-then-rank {ours:.3f} vs "
          f"the shop's own top {show} {logged:.3f}")
