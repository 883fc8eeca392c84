"""Training examples for click models: every impression joined with its item, its user and what happened next.

One row per impression event, with columns named as the feature spec names them:
event fields (user_id, item_id, query, position, timestamp, request_id and event attributes such as device),
catalog fields (title, category, brand, and `price`: the price shown, falling back to the list price), item and user
attributes, and the labels `click`, `add_to_cart` and `purchase` (0/1).

Labels are joined on (request_id, item_id). Events without a request id fall back to (user_id, item_id) with the
follow-up event at most `window_seconds` after the impression.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from tfrec.data.schema import Dataset, EventType

Columns = Dict[str, np.ndarray]
LABELS = ("click", "add_to_cart", "purchase")
_FOLLOW_UPS = {"click": EventType.CLICK.value, "add_to_cart": EventType.ADD_TO_CART.value, "purchase": EventType.PURCHASE.value}


def impression_examples(dataset: Dataset, window_seconds: int = 1800) -> Columns:
    """One example per impression with catalog/user features and click/add_to_cart/purchase labels."""
    events = dataset.events
    etype = events["event_type"]
    is_imp = etype == EventType.IMPRESSION.value
    if not is_imp.any():
        raise ValueError(
            "the events have no impressions, so there is nothing to label as clicked or not; for implicit data "
            "(purchases/ratings only) build examples with tfrec.data.negatives.sampled_examples instead"
        )
    imp = np.flatnonzero(is_imp)
    out = event_columns(events, imp, ("request_id", "user_id", "item_id", "query", "position", "timestamp"))

    join_item_and_user_features(out, dataset, shown_price=events["price"][imp])
    for label, event_type in _FOLLOW_UPS.items():
        out[label] = _follow_up_labels(events, imp, etype == event_type, window_seconds)
    return out


def event_columns(events, rows: np.ndarray, fields) -> Columns:
    """The named event fields and every event attribute (device, ...) at `rows`."""
    out: Columns = {name: events[name][rows] for name in fields}
    for name, values in events.attributes.items():
        out[name] = values[rows]
    return out


def join_item_and_user_features(out: Columns, dataset: Dataset, shown_price=None) -> Columns:
    """Adds catalog fields, item attributes and user attributes to examples keyed by `item_id`/`user_id` (in place).

    `price` is the price shown where known, else the catalog's list price.
    """
    n = len(out["item_id"])
    catalog = dataset.catalog
    item_index = {item: i for i, item in enumerate(catalog["item_id"])}
    try:
        rows = np.fromiter((item_index[i] for i in out["item_id"]), dtype=np.int64, count=n)
    except KeyError as exc:
        raise ValueError(f"example item {exc.args[0]!r} is not in the catalog") from None
    for name in ("title", "category", "brand"):
        out[name] = catalog[name][rows]
    list_price = catalog["price"][rows]
    out["price"] = list_price if shown_price is None else np.where(np.isnan(shown_price), list_price, shown_price)
    _add_attributes(out, catalog.attributes, rows, "item")
    if dataset.users is not None:
        user_index = {u: i for i, u in enumerate(dataset.users["user_id"])}
        urows = np.fromiter((user_index.get(u, -1) for u in out["user_id"]), dtype=np.int64, count=n)
        known = urows >= 0
        for name, values in dataset.users.attributes.items():
            col = np.full(n, "", dtype=object)
            col[known] = values[urows[known]]
            _put(out, name, col, "user")
    return out


def _put(out: Columns, name: str, column: np.ndarray, table: str) -> None:
    """Adds an attribute column, prefixing it with its table when the name is already taken."""
    out[name if name not in out else f"{table}_{name}"] = column


def _add_attributes(out: Columns, attributes, rows: np.ndarray, table: str) -> None:
    for name, values in attributes.items():
        _put(out, name, values[rows], table)


def _follow_up_labels(events, imp: np.ndarray, is_follow: np.ndarray, window_seconds: int) -> np.ndarray:
    """1 where the impression was followed by an event of the given type, joined as the module docstring says."""
    labels = np.zeros(len(imp), dtype=np.int64)
    follow = np.flatnonzero(is_follow)
    if follow.size == 0:
        return labels
    req, item, user, ts = events["request_id"], events["item_id"], events["user_id"], events["timestamp"]
    keyed = {(req[j], item[j]) for j in follow if req[j]}
    by_user_item: Dict[tuple, list] = {}
    for j in follow:
        if not req[j]:
            by_user_item.setdefault((user[j], item[j]), []).append(ts[j])
    for k, i in enumerate(imp):
        if req[i]:
            labels[k] = (req[i], item[i]) in keyed
        else:
            times = by_user_item.get((user[i], item[i]))
            labels[k] = bool(times) and any(ts[i] <= t <= ts[i] + window_seconds for t in times)
    return labels


def take(columns: Columns, indices: np.ndarray) -> Columns:
    """The rows at `indices` of every column."""
    return {k: v[indices] for k, v in columns.items()}
