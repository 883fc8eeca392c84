"""The demo's serving path, as a shop's backend would use it: the newest logged requests are replayed as Search and
Recommend calls to the search service (tfrec.server.search), which calls the query-understanding, retrieval and DCN
ranker models on the model server over gRPC; the synthetic ground truth then says how good each answer is compared
with what the shop actually showed for that request."""

from __future__ import annotations

import os

import numpy as np

from tfrec.data.retrieval_examples import positive_examples


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


def models_config(models_dir: str, names) -> str:
    """Writes `<models_dir>/models.config` (TF Serving's text format) serving `names` and returns its path."""
    entries = "".join(f'  config {{ name: "{n}" base_path: "{os.path.abspath(os.path.join(models_dir, n))}" '
                      f'model_platform: "tensorflow" }}\n' for n in names)
    path = os.path.join(models_dir, "models.config")
    with open(path, "w", encoding="utf-8") as f:
        f.write("model_config_list {\n" + entries + "}\n")
    return path


class RecentItems:
    """Each shopper's positive items over time, so a replayed request carries the history it had then."""

    def __init__(self, dataset):
        positives = positive_examples(dataset, history_length=0)
        self.users, self.items, self.times = positives["user_id"], positives["item_id"], positives["timestamp"]

    def before(self, user: str, timestamp: int, length: int):
        """The user's items strictly before `timestamp`, most recent first (the Search request's order)."""
        rows = np.flatnonzero((self.users == user) & (self.times < timestamp))
        return self.items[rows][::-1][:length].tolist()


def serve_samples(dataset, ground_truth, client, per_kind: int = 2, show: int = 5, history_length: int = 20) -> None:
    """Replays the newest `per_kind` searches and recommendations through `client` (a SearchClient) and prints the
    ranked products with their reasons, beside the true click probability of the answer and of the shop's own list."""
    from tfrec.server.search.format import format_response

    examples, picked = newest_requests(dataset, per_kind)
    history = RecentItems(dataset)
    gains = []
    for i in picked:
        rid, user, query = examples["request_id"][i], examples["user_id"][i], examples["query"][i]
        context = {"device": examples["device"][i], "timestamp": int(examples["timestamp"][i])}
        common = dict(user_id=user, k=show, context=context, request_id=rid, explain=True,  # + the ranker's reasons
                      recent_items=history.before(user, int(examples["timestamp"][i]), history_length))
        response = client.search(query, **common) if query else client.recommend(**common)
        kind = f'Search "{query}"' if query else "Recommend"
        print(f"\n{kind} for {user} ({context['device']}), replaying logged request {rid}:")
        print(format_response(response))
        ids = np.array([item.item_id for item in response.items])
        if not len(ids):
            continue
        truth = ground_truth.click_probability(np.repeat(rid, len(ids)), ids, positions=np.zeros(len(ids), np.int64))
        shown = np.flatnonzero(examples["request_id"] == rid)
        shown = shown[np.argsort(examples["position"][shown], kind="stable")][:show]  # the shop's own top, as logged
        shown_truth = ground_truth.click_probability(examples["request_id"][shown], examples["item_id"][shown],
                                                     positions=np.zeros(len(shown), dtype=np.int64))
        gains.append((truth.mean(), shown_truth.mean()))
        print(f"  true P(click) at position 0, mean of the top {len(ids)}: {truth.mean():.3f} "
              f"(the shop's own top {len(shown)}: {shown_truth.mean():.3f})")
    if gains:
        ours, logged = np.mean(gains, axis=0)
        print(f"\nmean true P(click) of the top {show} at position 0: search service {ours:.3f} vs "
              f"the shop's own top {show} {logged:.3f}")


def show_click_effect(client, user: str, show: int = 3) -> None:
    """Logs a click on the last item of `user`'s recommendations and prints the next ones: the live user state
    (online.enabled) moves that item's category and brand up and says why."""
    import time

    before = client.recommend(user, k=show)
    if not before.items:
        return
    clicked = before.items[-1]
    ack = client.log_events([{"event_type": "click", "user_id": user, "item_id": clicked.item_id,
                              "request_id": before.request_id, "position": show - 1, "timestamp": time.time()}])
    after = client.recommend(user, k=show)
    print(f"\nLive user state: {user} clicks {clicked.title!r} ({clicked.category}, {clicked.brand}); "
          f"LogEvents accepted {ack.accepted}. Next Recommend:")
    for item in after.items:
        print(f"  {item.rank}. {item.title} ({item.category}, {item.brand}): {'; '.join(item.explanation.reasons)}")
