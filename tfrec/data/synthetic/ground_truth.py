"""The hidden truth behind a synthetic dataset: true click / purchase probabilities, request intents, user favourites.

Tests and benchmarks compare models against it: a ranker's AUC against `best_auc`, a query parser against the
request slots, a retriever against `preferred_items`. It saves to plain files (JSON + npz, plus a requests CSV for
other tools) so `tfrec data generate` can write it beside the dataset.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np

from tfrec.data.schema import Field, Table, TableSchema
from tfrec.data.synthetic.config import SyntheticConfig
from tfrec.data.synthetic.evaluation import impression_labels, rank_auc
from tfrec.data.synthetic.model import ClickModel, ItemLatents, RequestFeatures, Taxonomy, UserLatents
from tfrec.data.synthetic.sessions import Impressions

FORMAT = "tfrec-synthetic-ground-truth"
VERSION = 1
JSON_FILE, ARRAYS_FILE, REQUESTS_FILE = "ground_truth.json", "ground_truth.npz", "requests.csv"
_GRID_CELLS = 4_000_000  # users x items scored at once by preferred_items

REQUESTS_SCHEMA = TableSchema(
    "requests",
    (
        Field("request_id", "string", required=True),
        Field("user_id", "string", required=True),
        Field("timestamp", "timestamp", required=True),
        Field("device", "string", default=""),
        Field("is_search", "int", default=0, doc="1 for searches, 0 for recommendation requests"),
        Field("query", "string", default=""),
        Field("category", "string", default="", doc="intent leaf path of a search; '' for recommendations"),
        Field("brand", "string", default="", doc="brand slot of the query; '' when absent"),
        Field("color", "string", default=""),
        Field("gender", "string", default="", doc="men / women / kids; '' when absent"),
        Field("price_min", "float", default=float("nan"), doc="lower price limit of the query; NaN when absent"),
        Field("price_max", "float", default=float("nan"), doc="upper price limit of the query; NaN when absent"),
    ),
    key="request_id",
)


class _IdIndex:
    """Maps string ids to row indices with a sorted unicode array (vectorised, no Python dict)."""

    def __init__(self, ids: np.ndarray, what: str):
        keys = np.asarray(ids, dtype=str)
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]
        self._what = what

    def find(self, values) -> np.ndarray:
        v = np.atleast_1d(np.asarray(values, dtype=str))
        if not len(self._sorted):
            raise KeyError(f"no {self._what}s")
        pos = np.minimum(np.searchsorted(self._sorted, v), len(self._sorted) - 1)
        found = self._sorted[pos] == v
        if not found.all():
            raise KeyError(f"unknown {self._what}s: {v[~found][:5].tolist()}")
        return self._order[pos]


class GroundTruth:
    """True probabilities and intents for one generated dataset (see module docstring)."""

    def __init__(self, config: SyntheticConfig, model: ClickModel, request_features: RequestFeatures,
                 impressions: Impressions):
        self.config = config
        self.model = model
        self.request_features = request_features
        self.impressions = impressions
        self._requests = _IdIndex(request_features.request_ids, "request_id")
        self._items = _IdIndex(model.items.item_ids, "item_id")
        self._users = _IdIndex(model.users.user_ids, "user_id")
        n_items = len(model.items.item_ids)
        keys = impressions.request.astype(np.int64) * n_items + impressions.item
        self._imp_order = np.argsort(keys, kind="stable")
        self._imp_keys = keys[self._imp_order]

    def __repr__(self) -> str:
        return (f"GroundTruth(requests={len(self.request_features)}, impressions={len(self.impressions)}, "
                f"items={len(self.model.items.item_ids)}, users={len(self.model.users.user_ids)})")

    # --- lookups ---
    def _pairs(self, request_ids, item_ids) -> Tuple[np.ndarray, np.ndarray]:
        req, item = self._requests.find(request_ids), self._items.find(item_ids)
        if req.shape != item.shape:
            raise ValueError(f"request_ids and item_ids differ in length ({len(req)} vs {len(item)})")
        return req, item

    def logged_positions(self, request_ids, item_ids) -> np.ndarray:
        """The 0-based position each (request, item) was shown at; KeyError for pairs that were never shown."""
        req, item = self._pairs(request_ids, item_ids)
        return self._logged_position(req, item)

    def _logged_position(self, req, item) -> np.ndarray:
        keys = req * len(self.model.items.item_ids) + item
        pos = np.minimum(np.searchsorted(self._imp_keys, keys), max(len(self._imp_keys) - 1, 0))
        shown = self._imp_keys[pos] == keys if len(self._imp_keys) else np.zeros(len(keys), dtype=bool)
        if not shown.all():
            i = int(np.flatnonzero(~shown)[0])
            raise KeyError(f"item {self.model.items.item_ids[item[i]]} was not shown for request "
                           f"{self.request_features.request_ids[req[i]]}; pass `positions` to ask counterfactually")
        return self.impressions.position[self._imp_order[pos]]

    # --- probabilities ---
    def relevance(self, request_ids, item_ids) -> np.ndarray:
        """True position-free utility (click logit without intercept and position bias) of each pair."""
        req, item = self._pairs(request_ids, item_ids)
        return self.model.relevance(self.request_features, req, item)

    def click_probability(self, request_ids, item_ids, positions=None) -> np.ndarray:
        """True P(click) of each (request, item) impression.

        Without `positions`, each pair must have been shown and its logged position is used; with `positions`,
        any pair can be asked counterfactually ("what if this item were shown at rank 0 for this request?").
        """
        req, item = self._pairs(request_ids, item_ids)
        if positions is None:
            positions = self._logged_position(req, item)
        positions = np.broadcast_to(np.asarray(positions, dtype=np.int64), req.shape)
        return self.model.click_probability(self.request_features, req, item, positions)

    def add_to_cart_probability(self, request_ids, item_ids) -> np.ndarray:
        """True P(add_to_cart | click) of each pair."""
        req, item = self._pairs(request_ids, item_ids)
        return self.model.cart_probability(self.request_features, req, item)

    def purchase_probability(self, request_ids, item_ids) -> np.ndarray:
        """True P(purchase | click) = P(add_to_cart | click) x P(purchase | add_to_cart); multiply by
        `click_probability` for the unconditional purchase probability of an impression."""
        req, item = self._pairs(request_ids, item_ids)
        f = self.request_features
        return self.model.cart_probability(f, req, item) * self.model.purchase_given_cart(f, req, item)

    def best_auc(self, events: Table) -> float:
        """AUC of the true P(click) against the sampled clicks of the impressions in `events`.

        This is the best AUC any click model can expect on those events: the residual is pure sampling noise.
        Pass a split (e.g. the test events) to get the ceiling for that split.
        """
        labels = impression_labels(events)
        req, item = self._pairs(labels.request_ids, labels.item_ids)
        p = self.model.click_probability(self.request_features, req, item, labels.positions)
        return rank_auc(p, labels.clicked)

    # --- intents and tastes ---
    @functools.cached_property
    def requests(self) -> Table:
        """Per request: ids, time, device, query text and its true intent leaf and slots (see REQUESTS_SCHEMA)."""
        f, t = self.request_features, self.model.taxonomy

        def names(values, codes):  # code -1 -> ''
            return np.array(tuple(values) + ("",), dtype=object)[codes]

        return Table(
            REQUESTS_SCHEMA,
            {
                "request_id": f.request_ids,
                "user_id": self.model.users.user_ids[f.user],
                "timestamp": f.timestamp,
                "device": names(t.devices, f.device),
                "is_search": f.is_search.astype(np.int64),
                "query": f.query,
                "category": names(t.leaf_paths, f.intent_leaf),
                "brand": names(t.brands, f.brand),
                "color": names(t.colors, f.color),
                "gender": names(t.genders, f.gender),
                "price_min": f.price_min,
                "price_max": f.price_max,
            },
        )

    def preferred_items(self, user_ids, k: int = 10, return_scores: bool = False):
        """Each user's top-k items by true query-free utility (on their usual device), best first.

        Returns an (n_users, k) array of item ids, and with `return_scores` also the utilities.
        """
        users = self._users.find(user_ids)
        n_items = len(self.model.items.item_ids)
        k = min(int(k), n_items)
        all_items = np.arange(n_items)[None, :]
        top = np.empty((len(users), k), dtype=np.int64)
        scores = np.empty((len(users), k))
        step = max(1, _GRID_CELLS // n_items)
        for s in range(0, len(users), step):
            u = users[s : s + step, None]
            grid = self.model.personal(u, all_items, self.model.users.preferred_device[u])
            part = np.argpartition(-grid, k - 1, axis=1)[:, :k] if k < n_items else np.tile(all_items, (len(u), 1))
            best = np.take_along_axis(grid, part, axis=1)
            order = np.lexsort((part, -best), axis=1)  # by utility, ties by item index
            top[s : s + step] = np.take_along_axis(part, order, axis=1)
            scores[s : s + step] = np.take_along_axis(best, order, axis=1)
        ids = self.model.items.item_ids[top]
        return (ids, scores) if return_scores else ids

    # --- persistence ---
    def save(self, directory: str) -> None:
        """Writes ground_truth.json, ground_truth.npz and requests.csv into `directory` (created if needed)."""
        os.makedirs(directory, exist_ok=True)
        arrays: Dict[str, np.ndarray] = {}
        meta: Dict[str, Any] = {}
        for prefix, obj in (("taxonomy", self.model.taxonomy), ("items", self.model.items),
                            ("users", self.model.users), ("requests", self.request_features),
                            ("impressions", self.impressions)):
            _pack(prefix, obj, arrays, meta)
        arrays["model__device_department"] = self.model.device_department
        arrays["model__hour_effect"] = self.model.hour_effect
        doc = {"format": FORMAT, "version": VERSION, "config": self.config.to_dict(),
               "intercept": self.model.intercept, "taxonomy": meta["taxonomy"]}
        with open(os.path.join(directory, JSON_FILE), "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
        np.savez_compressed(os.path.join(directory, ARRAYS_FILE), **arrays)
        _write_csv(self.requests, os.path.join(directory, REQUESTS_FILE))

    @classmethod
    def load(cls, directory: str) -> "GroundTruth":
        """Reads what `save` wrote (the npz and JSON; requests.csv is an export for other tools)."""
        with open(os.path.join(directory, JSON_FILE), encoding="utf-8") as fh:
            doc = json.load(fh)
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ValueError(f"{directory}: not a {FORMAT} v{VERSION} directory (found {doc.get('format')!r} "
                             f"v{doc.get('version')!r})")
        with np.load(os.path.join(directory, ARRAYS_FILE), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        config = SyntheticConfig.from_dict(doc["config"])
        model = ClickModel(
            taxonomy=_unpack(Taxonomy, "taxonomy", arrays, doc["taxonomy"]),
            items=_unpack(ItemLatents, "items", arrays),
            users=_unpack(UserLatents, "users", arrays),
            effects=config.effects,
            intercept=float(doc["intercept"]),
            device_department=arrays["model__device_department"],
            hour_effect=arrays["model__hour_effect"],
        )
        requests = _unpack(RequestFeatures, "requests", arrays)
        return cls(config, model, requests, _unpack(Impressions, "impressions", arrays))


def _pack(prefix: str, obj, arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
    """Arrays go to the npz (strings as fixed-width unicode, never pickled); tuples of names go to the JSON."""
    fields = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            arrays[f"{prefix}__{f.name}"] = value.astype(str) if value.dtype == object else value
        else:
            fields[f.name] = list(value)
    meta[prefix] = fields


def _unpack(cls, prefix: str, arrays: Dict[str, np.ndarray], meta: Optional[Dict[str, Any]] = None):
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}__{f.name}"
        if key in arrays:
            a = arrays[key]
            kwargs[f.name] = a.astype(object) if a.dtype.kind == "U" else a
        else:
            kwargs[f.name] = tuple((meta or {})[f.name])
    return cls(**kwargs)


def _write_csv(table: Table, path: str) -> None:
    cols = [table[name] for name in table.column_names]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.column_names)
        for row in zip(*cols):
            writer.writerow(["" if isinstance(v, float) and v != v else v for v in row])
