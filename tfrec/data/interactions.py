"""User-item interaction splits for retrieval protocols: leave-last-out, a seeded random split, a time split.

Every split returns the training events (a canonical events `Table`, ready for fitting a model or a baseline) and
the held-out `TestPairs`: one (user, item) query per held-out interaction, with that user's training items as
history, so a scorer sees exactly what it would see in production and a harness can exclude already-seen items.
The candidate set (`item_ids`) is the catalog in catalog order, plus any event item missing from the catalog
(sorted), so a held-out item is always rankable.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from tfrec.data.schema import EVENT_TYPES, Dataset, Table

__all__ = ["InteractionSplit", "TestPairs", "interaction_counts", "leave_last_out", "random_pair_split", "select_events", "time_pair_split"]

EventTypes = Optional[Union[str, Sequence[str]]]


@dataclasses.dataclass(frozen=True)
class TestPairs:
    """Held-out (user, item) pairs; `history[i]` holds pair i's user's training items, oldest first (repeats kept)."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    history: List[np.ndarray]
    protocol: str
    exclude_seen_default: bool

    def __post_init__(self):
        if not (len(self.user_ids) == len(self.item_ids) == len(self.history)):
            raise ValueError("user_ids, item_ids and history must have one entry per test pair")

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def n_users(self) -> int:
        return len(np.unique(self.user_ids)) if len(self) else 0


class InteractionSplit(NamedTuple):
    """(train events, test pairs, candidate item ids); unpacks as `train, test, item_ids = split`."""

    train: Table
    test: TestPairs
    item_ids: np.ndarray


def select_events(dataset: Dataset, event_types: EventTypes = None) -> Table:
    """The dataset's events of the given types (all when None); ValueError for unknown types or no events left."""
    events = dataset.events
    if len(events) == 0:
        raise ValueError("the dataset has no events to build interactions from")
    if event_types is None:
        return events
    wanted = [event_types] if isinstance(event_types, str) else [str(getattr(t, "value", t)) for t in event_types]
    if not wanted:
        raise ValueError("event_types is empty; pass None for all event types")
    unknown = sorted(set(wanted) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types {unknown}; known types are {list(EVENT_TYPES)}")
    mask = np.isin(events["event_type"], np.array(wanted, dtype=object))
    if not mask.any():
        present = sorted(set(events["event_type"].tolist()))
        raise ValueError(f"no events of types {wanted}; the dataset has {present}")
    return events.take(np.flatnonzero(mask))


def _candidate_items(dataset: Dataset, events: Table) -> np.ndarray:
    catalog = dataset.catalog["item_id"]
    extra = np.setdiff1d(np.unique(events["item_id"].astype(str)), catalog.astype(str))
    return np.concatenate([catalog, extra.astype(object)]).astype(object)


def _chronological(events: Table) -> np.ndarray:
    """Row order by (user, timestamp, file order): each user's events oldest first, ties kept in file order."""
    _, user_codes = np.unique(events["user_id"], return_inverse=True)
    return np.lexsort((np.arange(len(events)), events["timestamp"], user_codes.ravel()))


def _histories(train: Table, users: np.ndarray) -> List[np.ndarray]:
    """Each of `users`' training items, oldest first (ties in file order); empty for users without training rows."""
    order = _chronological(train)
    sorted_users, sorted_items = train["user_id"][order], train["item_id"][order]
    if len(sorted_users) == 0:
        return [np.array([], dtype=object) for _ in users]
    uniq, starts = np.unique(sorted_users, return_index=True)
    ends = np.append(starts[1:], len(sorted_users))
    pos = np.searchsorted(uniq, users)
    found = (pos < len(uniq)) & (uniq[np.minimum(pos, len(uniq) - 1)] == users)
    empty = np.array([], dtype=object)
    return [sorted_items[starts[p]:ends[p]] if f else empty for p, f in zip(pos, found)]


def _pairs(events: Table, train_rows: np.ndarray, test_rows: np.ndarray, protocol: str, exclude: bool,
           dataset: Dataset) -> InteractionSplit:
    train = events.take(np.sort(train_rows))
    users = events["user_id"][test_rows]
    test = TestPairs(users, events["item_id"][test_rows], _histories(train, users), protocol, exclude)
    return InteractionSplit(train, test, _candidate_items(dataset, events))


def _check_fraction(test_fraction: float, n: int) -> int:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = int(round(n * test_fraction))
    if n_test == 0 or n_test == n:
        raise ValueError(f"test_fraction {test_fraction} of {n} interactions leaves an empty train or test set")
    return n_test


def leave_last_out(dataset: Dataset, event_types: EventTypes = None, min_history: int = 2) -> InteractionSplit:
    """Holds out each user's chronologically last interaction (ties: the later row in the file) as their test item.

    `min_history` is the number of interactions a user needs to be evaluated, the held-out one included (2 = at least
    one earlier item). Users with fewer keep all their events in training, where they still inform item statistics,
    but get no test pair. Seen-item exclusion defaults to on: re-recommending a past purchase is not a retrieval hit.
    """
    if min_history < 1:
        raise ValueError(f"min_history must be >= 1, got {min_history}")
    events = select_events(dataset, event_types)
    order = _chronological(events)
    users = events["user_id"][order]
    is_last = np.ones(len(order), dtype=bool)
    is_last[:-1] = users[1:] != users[:-1]
    counts = np.unique(users, return_counts=True)[1]  # users are sorted, so counts line up with last_rows
    last_rows = order[is_last]
    eligible = counts >= min_history
    if not eligible.any():
        raise ValueError(f"no user has at least {min_history} interactions; lower min_history")
    test_rows = last_rows[eligible]
    train_mask = np.ones(len(events), dtype=bool)
    train_mask[test_rows] = False
    return _pairs(events, np.flatnonzero(train_mask), test_rows, "leave_last_out", True, dataset)


def random_pair_split(dataset: Dataset, test_fraction: float = 0.2, seed: int = 42,
                      event_types: EventTypes = None) -> InteractionSplit:
    """The TensorFlow Recommenders basic-retrieval protocol: shuffle all interactions, train on the first 80%.

    Every interaction (for MovieLens: every rating, whatever its value) is an implicit positive and one test query;
    seen items are not excluded by default, as in TFRS. With 100,000 ratings and 0.2 this gives 80,000 / 20,000.

    Same as TFRS: the split sizes, ratings as implicit positives, one query per test rating, no exclusion.
    NOT the same: which ratings land in test. The shuffle is `numpy.random.default_rng(seed).permutation` over the
    dataset's event order; TFRS uses `tf.data.Dataset.shuffle(100_000, seed=42)` (a different generator, also
    driven by the global TF seed) over TFDS's record order, so the two splits are different random draws and
    metrics agree only statistically. TFRS also keys movies by title, and ML-100K has fewer distinct titles than
    movie ids, while this split keeps item ids.
    """
    events = select_events(dataset, event_types)
    n = len(events)
    n_test = _check_fraction(test_fraction, n)
    perm = np.random.default_rng(seed).permutation(n)
    return _pairs(events, perm[: n - n_test], perm[n - n_test:], "random_pair_split", False, dataset)


def time_pair_split(dataset: Dataset, test_fraction: float = 0.2, event_types: EventTypes = None) -> InteractionSplit:
    """The newest `test_fraction` of interactions (global time, ties by file order) are test pairs; the rest train.

    Unlike leave-last-out this evaluates on future traffic, including users and items unseen in training. Needs
    real timestamps: loaders that synthesise times (Amazon sequences) make this split meaningless.
    """
    events = select_events(dataset, event_types)
    n = len(events)
    n_test = _check_fraction(test_fraction, n)
    order = np.lexsort((np.arange(n), events["timestamp"]))
    return _pairs(events, order[: n - n_test], order[n - n_test:], "time_pair_split", False, dataset)


def interaction_counts(events: Table, item_ids: Iterable) -> np.ndarray:
    """How often each of `item_ids` occurs in `events` (0 for items without events), as float64."""
    item_ids = np.asarray(list(item_ids) if not isinstance(item_ids, np.ndarray) else item_ids, dtype=object)
    index = {item: i for i, item in enumerate(item_ids.tolist())}
    codes = np.fromiter((index.get(i, -1) for i in events["item_id"].tolist()), dtype=np.int64, count=len(events))
    return np.bincount(codes[codes >= 0], minlength=len(item_ids)).astype(np.float64)
