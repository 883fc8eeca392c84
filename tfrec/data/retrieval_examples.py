"""Positive (request, item) examples for retrieval models, each with what the shopper had done before it.

One row per positive interaction (click, add-to-cart, purchase or rating; one row per request and item, so a click
followed by a purchase of the same item counts once), with columns named as the feature spec names them: event
fields (user_id, item_id, query, timestamp, request_id and event attributes such as device), catalog and user
fields, and `recent_items`: the user's earlier positive items, oldest first, space-separated (a `sequence` feature).
History is strictly earlier in time, so an example never sees its own item or anything after it.

Splits of these rows (`split_positives`): by time (whole requests kept together), seeded random (the TensorFlow
Recommenders protocol) or leave-last-out per user.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np

from tfrec.data.examples import event_columns, join_item_and_user_features
from tfrec.data.interactions import select_events
from tfrec.data.schema import Dataset
from tfrec.data.splits import SplitConfig, split_indices

Columns = Dict[str, np.ndarray]
POSITIVE_TYPES = ("click", "add_to_cart", "purchase", "rate")
HISTORY = "recent_items"


def positive_examples(dataset: Dataset, event_types: Sequence[str] = POSITIVE_TYPES, history_length: int = 20) -> Columns:
    """The dataset's positive interactions as described in the module docstring, in chronological order."""
    if history_length < 0:
        raise ValueError(f"history_length must be >= 0, got {history_length}")
    present = [t for t in event_types if (dataset.events["event_type"] == t).any()]
    if not present:
        raise ValueError(f"the events have none of the positive types {list(event_types)}")
    events = select_events(dataset, present)
    rows = _first_per_request_item(events)
    order = np.lexsort((rows, events["timestamp"][rows]))
    rows = rows[order]
    out = event_columns(events, rows, ("request_id", "user_id", "item_id", "query", "timestamp", "event_type"))
    out[HISTORY] = histories(out["user_id"], out["item_id"], out["timestamp"], history_length)
    return join_item_and_user_features(out, dataset)


def _first_per_request_item(events) -> np.ndarray:
    """Row indices keeping the first event of each (request, item); events without a request id are all kept."""
    request, item = events["request_id"], events["item_id"]
    seen, keep = set(), []
    for i in np.lexsort((np.arange(len(events)), events["timestamp"])):
        if request[i]:
            key = (request[i], item[i])
            if key in seen:
                continue
            seen.add(key)
        keep.append(i)
    return np.sort(np.asarray(keep, dtype=np.int64))


def histories(user_ids: np.ndarray, item_ids: np.ndarray, timestamps: np.ndarray, length: int) -> np.ndarray:
    """For each row (rows in chronological order), the same user's items from strictly earlier rows, newest `length`."""
    out = np.full(len(user_ids), "", dtype=object)
    if length == 0:
        return out
    past: Dict[str, List[Tuple[int, str]]] = {}
    for i, (user, item, ts) in enumerate(zip(user_ids.tolist(), item_ids.tolist(), timestamps.tolist())):
        seen = past.setdefault(user, [])
        earlier = [it for t, it in seen[-length - 8:] if t < ts][-length:]  # same-second events are not history
        out[i] = " ".join(earlier)
        seen.append((ts, item))
    return out


@dataclasses.dataclass
class RetrievalSplitConfig:
    """How positives are split: `time` (newest requests test), `random` (seeded, TFRS) or `leave_last_out`."""

    protocol: Literal["time", "random", "leave_last_out"] = "time"
    validation_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 42

    def validate(self) -> None:
        if not 0.0 <= self.validation_fraction < 1.0 or not 0.0 < self.test_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1) and test_fraction in (0, 1)")
        if self.protocol != "leave_last_out" and self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError("validation_fraction + test_fraction must leave some training data")


def split_positives(config: RetrievalSplitConfig, columns: Columns) -> Dict[str, np.ndarray]:
    """Row indices of train, validation and test (rows in chronological order, as `positive_examples` returns)."""
    n = len(columns["user_id"])
    if config.protocol == "time":
        train, val, test = split_indices(
            SplitConfig(kind="time", validation_fraction=config.validation_fraction, test_fraction=config.test_fraction, seed=config.seed),
            columns["timestamp"], columns["request_id"],
        )
    elif config.protocol == "random":
        perm = np.random.default_rng(config.seed).permutation(n)
        n_test, n_val = int(round(n * config.test_fraction)), int(round(n * config.validation_fraction))
        test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    else:
        train, val, test = _leave_last_out(columns["user_id"], config)
    parts = {"train": np.sort(train), "validation": np.sort(val), "test": np.sort(test)}
    if len(parts["train"]) == 0 or len(parts["test"]) == 0:
        raise ValueError(f"the {config.protocol} split of {n} positives left no training or no test rows")
    return parts


def _leave_last_out(users: np.ndarray, config: RetrievalSplitConfig):
    """Each user's last positive is test (users with >= 2); a random `validation_fraction` of users also give
    their second-to-last to validation (users with >= 3)."""
    rows_by_user: Dict[str, List[int]] = {}
    for i, user in enumerate(users.tolist()):
        rows_by_user.setdefault(user, []).append(i)
    rng = np.random.default_rng(config.seed)
    train, val, test = [], [], []
    for user in sorted(rows_by_user):
        rows = rows_by_user[user]
        if len(rows) >= 2:
            test.append(rows.pop())
        if len(rows) >= 2 and rng.random() < config.validation_fraction:
            val.append(rows.pop())
        train.extend(rows)
    return np.asarray(train, np.int64), np.asarray(val, np.int64), np.asarray(test, np.int64)


def sampling_probability(train_items: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Each of `items`' frequency among the training positives (the log-Q correction's Q); unseen items get the
    smallest nonzero frequency, so the correction stays finite."""
    uniq, counts = np.unique(train_items.astype(str), return_counts=True)
    freq = dict(zip(uniq.tolist(), (counts / counts.sum()).tolist()))
    floor = 1.0 / max(counts.sum(), 1)
    return np.array([freq.get(i, floor) for i in items.astype(str).tolist()], dtype=np.float32)


def catalog_columns(dataset: Dataset, names: Optional[Sequence[str]] = None) -> Columns:
    """Every catalog item as one row of candidate features (catalog fields and item attributes)."""
    columns: Columns = {"item_id": dataset.catalog["item_id"]}
    join_item_and_user_features(columns, Dataset(catalog=dataset.catalog, events=dataset.events, users=None))
    if names is not None:
        missing = [n for n in names if n not in columns]
        if missing:
            raise ValueError(f"the catalog has no column for candidate features {missing}; it has {sorted(columns)}")
        columns = {n: columns[n] for n in names}
    return columns
