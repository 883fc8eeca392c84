"""Negative sampling for implicit data (purchases, ratings, reviews): positives are what users did, negatives are
items they did not interact with, drawn uniformly or in proportion to popularity^alpha (alpha=0.75 as in word2vec).

Negatives never include an item the same user interacted with anywhere in the data given, so a sampled negative is
never a hidden positive.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from tfrec.data.schema import Dataset


def sample_negatives(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    candidates: np.ndarray,
    per_positive: int = 4,
    alpha: float = 0.0,
    seed: int = 0,
    max_rounds: int = 20,
) -> tuple:
    """For each (user, item) positive, `per_positive` (user, negative item) pairs; returns (users, items) arrays.

    `alpha` = 0 samples candidates uniformly, 1 by popularity among the positives, 0.75 in between.
    """
    if per_positive < 1:
        raise ValueError(f"per_positive must be >= 1, got {per_positive}")
    user_ids, item_ids = np.asarray(user_ids, dtype=object), np.asarray(item_ids, dtype=object)
    candidates = np.unique(np.asarray(candidates, dtype=object))
    if len(candidates) < 2:
        raise ValueError("need at least two candidate items to sample negatives from")
    rng = np.random.default_rng(seed)
    cand_index = {c: i for i, c in enumerate(candidates)}
    counts = np.bincount([cand_index[i] for i in item_ids if i in cand_index], minlength=len(candidates))
    probs = (counts + 1e-9) ** alpha if alpha > 0 else np.ones(len(candidates))
    probs = probs / probs.sum()

    seen = {}
    for u, i in zip(user_ids, item_ids):
        seen.setdefault(u, set()).add(i)
    neg_users = np.repeat(user_ids, per_positive)
    neg_items = candidates[rng.choice(len(candidates), size=len(neg_users), p=probs)]
    for _ in range(max_rounds):  # resample the (rare) collisions with the user's own positives
        clash = np.fromiter((i in seen[u] for u, i in zip(neg_users, neg_items)), dtype=bool, count=len(neg_users))
        if not clash.any():
            break
        neg_items[clash] = candidates[rng.choice(len(candidates), size=int(clash.sum()), p=probs)]
    else:
        keep = ~clash  # users who interacted with (almost) every candidate: drop what cannot be resolved
        neg_users, neg_items = neg_users[keep], neg_items[keep]
    return neg_users, neg_items


def sampled_examples(
    dataset: Dataset,
    per_positive: int = 4,
    alpha: float = 0.0,
    seed: int = 0,
    event_types: Optional[tuple] = None,
    label: str = "label",
) -> Dict[str, np.ndarray]:
    """Labelled (user, item) examples from implicit events: label 1 for interactions, 0 for sampled negatives.

    Negatives take the timestamp of the positive they were drawn for, so time-based splits keep them together.
    """
    events = dataset.events
    mask = np.ones(len(events), dtype=bool) if event_types is None else np.isin(events["event_type"], event_types)
    users, items, ts = events["user_id"][mask], events["item_id"][mask], events["timestamp"][mask]
    if len(users) == 0:
        raise ValueError(f"no events of types {event_types} to use as positives")
    neg_users, neg_items = sample_negatives(users, items, dataset.catalog["item_id"], per_positive, alpha, seed)
    neg_ts = np.repeat(ts, per_positive)[: len(neg_users)] if len(neg_users) == len(users) * per_positive else (
        _timestamps_for(users, ts, neg_users)
    )
    return {
        "user_id": np.concatenate([users, neg_users]),
        "item_id": np.concatenate([items, neg_items]),
        "timestamp": np.concatenate([ts, neg_ts]).astype(np.int64),
        label: np.concatenate([np.ones(len(users), np.int64), np.zeros(len(neg_users), np.int64)]),
    }


def _timestamps_for(users: np.ndarray, ts: np.ndarray, neg_users: np.ndarray) -> np.ndarray:
    """Each negative gets its user's latest positive time (used only when some negatives had to be dropped)."""
    latest = {}
    for u, t in zip(users, ts):
        latest[u] = max(t, latest.get(u, t))
    return np.array([latest[u] for u in neg_users], dtype=np.int64)
