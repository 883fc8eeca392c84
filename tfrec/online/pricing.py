"""Price sensitivity: P(purchase | product-page view, segment, item, price), decreasing in price by construction.

    logit = b0 + a_s + a_i + g_s x_i - softplus(c_s + w_s x_i + d_i) * log(price / reference_i)
    P = sigmoid(logit),   elasticity = d log P / d log price = -softplus(c_s + w_s x_i + d_i) (1 - P)

s is the shopper's segment, i the item, reference_i its list price and x_i = log(reference_i / median list price of
its leaf category) (how premium the item is within its category, which moves both the level and the slope). The
slope is a softplus, so it is positive for every segment and item and P falls as the price rises. A view is a click
(the shopper opened the product page at the shown `price`); it converts when a purchase of the same item follows in
the same request. Unknown segments and items fall back to the shared terms (and an unknown item's reference is the
median list price of the training items; `item_known` says when that happened).

`revenue_maximising_price` finds argmax price * P(price) within bounds (log grid, then golden section), which the
fitted model (`PriceModel`), its exported SavedModel (`SavedPriceModel`) and the synthetic truth all use.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec.data.schema import Table, category_levels
from tfrec.export.loading import check_request

OUTPUTS = ("purchase_probability", "elasticity", "reference_price", "item_known")
_INVERSE_SOFTPLUS_1 = math.log(math.e - 1.0)  # softplus(this) = 1: the initial slope
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0

__all__ = ["OUTPUTS", "PriceExamples", "PriceModel", "PriceResponse", "SavedPriceModel", "item_features",
           "price_examples", "revenue_maximising_price"]


def revenue_maximising_price(demand: Callable[[np.ndarray], np.ndarray], low, high, grid: int = 41,
                             refine: int = 30) -> np.ndarray:
    """Per cell, the price in [low, high] maximising price * demand(price); `demand` maps one price per cell to one
    probability per cell. The best point of a log-spaced grid, refined by golden-section search between its grid
    neighbours (exact for a unimodal revenue curve; never worse than the best grid point)."""
    low, high = np.broadcast_arrays(np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64))
    low, high = np.atleast_1d(low), np.atleast_1d(high)
    if np.any(~(low > 0)) or np.any(high < low):
        raise ValueError("price bounds need 0 < low <= high")
    steps = np.linspace(0.0, 1.0, grid)[:, None]
    prices = low * (high / low) ** steps  # (grid, cells)
    revenue = np.stack([p * demand(p) for p in prices])
    best = np.argmax(revenue, axis=0)
    cells = np.arange(low.shape[0])
    best_price, best_revenue = prices[best, cells], revenue[best, cells]
    a = np.log(prices[np.maximum(best - 1, 0), cells])
    b = np.log(prices[np.minimum(best + 1, grid - 1), cells])
    for _ in range(refine):
        c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
        fc, fd = np.exp(c) * demand(np.exp(c)), np.exp(d) * demand(np.exp(d))
        left = fc >= fd  # the maximum lies in [a, d]
        a, b = np.where(left, a, c), np.where(left, d, b)
    refined = np.exp((a + b) / 2)
    refined_revenue = refined * demand(refined)
    return np.where(refined_revenue >= best_revenue, refined, best_price)


@dataclasses.dataclass
class PriceExamples:
    """One row per product-page view: the shopper's segment, the item, the shown price, whether it sold."""

    segment: np.ndarray
    item_id: np.ndarray
    price: np.ndarray
    purchased: np.ndarray  # float 0/1
    skipped: Dict[str, int]  # views left out, by reason

    def __len__(self) -> int:
        return len(self.price)


def price_examples(events: Table, users: Optional[Table], segment_attribute: str = "segment") -> PriceExamples:
    """Views (click events with a shown price) labelled by a purchase of the same item in the same request.

    A view without a price or request_id cannot be used and is counted in `skipped`; users without the segment
    attribute (or missing from `users`) get segment ''."""
    et = events["event_type"].astype(str)
    request, item = events["request_id"].astype(str), events["item_id"].astype(str)
    price = events["price"].astype(np.float64)
    clicks = et == "click"
    no_price = clicks & ~(np.isfinite(price) & (price > 0))
    no_request = clicks & ~no_price & (request == "")
    view = clicks & ~no_price & ~no_request
    bought_keys = np.unique(np.char.add(np.char.add(request[et == "purchase"], "\x1f"), item[et == "purchase"]))
    view_keys = np.char.add(np.char.add(request[view], "\x1f"), item[view])
    purchased = np.isin(view_keys, bought_keys).astype(np.float32)
    user = events["user_id"].astype(str)[view]
    segment = np.full(len(user), "", dtype=object)
    if users is not None and segment_attribute in users:
        ids = users["user_id"].astype(str)
        order = np.argsort(ids)
        pos = np.minimum(np.searchsorted(ids[order], user), max(len(ids) - 1, 0))
        known = ids[order][pos] == user if len(ids) else np.zeros(len(user), bool)
        segment[known] = users[segment_attribute][order][pos][known]
    elif users is not None:
        raise KeyError(f"users table has no attribute {segment_attribute!r}; it has {users.column_names}")
    skipped = {"view without a shown price": int(no_price.sum()), "view without a request_id": int(no_request.sum())}
    return PriceExamples(segment.astype(str), item[view], price[view], purchased, skipped)


def item_features(catalog: Table) -> Dict[str, np.ndarray]:
    """Priced catalog items with their reference (list) price and x = log(price / median price of the leaf)."""
    price = catalog["price"].astype(np.float64)
    priced = np.isfinite(price) & (price > 0)
    items = catalog["item_id"].astype(str)[priced]
    price = price[priced]
    leaf = np.asarray([" > ".join(category_levels(c)) for c in catalog["category"][priced]], dtype=str)
    log_price = np.log(price)
    relative = np.zeros(len(price))
    for name in np.unique(leaf):
        rows = leaf == name
        relative[rows] = log_price[rows] - np.median(log_price[rows])
    return {"item_id": items, "reference_price": price, "relative_price": relative}


class PriceResponse(tf.keras.layers.Layer):
    """The monotone price-response model of the module docstring; inputs segment, item_id (strings), price."""

    def __init__(self, segments: Sequence[str], item_ids: Sequence[str], reference_prices: Sequence[float],
                 relative_prices: Sequence[float], l2: float = 1e-4, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.segments = [str(s) for s in segments]
        self.item_ids = [str(i) for i in item_ids]
        self.reference_prices = [float(p) for p in reference_prices]
        self.relative_prices = [float(x) for x in relative_prices]
        self.l2 = float(l2)
        if len(self.item_ids) != len(self.reference_prices) or len(self.item_ids) != len(self.relative_prices):
            raise ValueError("item_ids, reference_prices and relative_prices must have the same length")
        self.segment_lookup = tf.keras.layers.StringLookup(vocabulary=self.segments or ["?"], num_oov_indices=1)
        self.item_lookup = tf.keras.layers.StringLookup(vocabulary=self.item_ids or ["?"], num_oov_indices=1)
        # index 0 = out of vocabulary: the median reference price, relative price 0
        fallback = float(np.median(self.reference_prices)) if self.reference_prices else 1.0
        self._reference = tf.constant([fallback] + self.reference_prices, tf.float32)
        self._relative = tf.constant([0.0] + self.relative_prices, tf.float32)

    def build(self, input_shape=None):
        n_seg, n_item = len(self.segments) + 1, len(self.item_ids) + 1
        reg = tf.keras.regularizers.l2(self.l2)

        def weight(name, n, init=0.0, regularizer=reg):
            return self.add_weight(name=name, shape=(n,), initializer=tf.keras.initializers.Constant(init),
                                   regularizer=regularizer)

        self.bias = self.add_weight(name="bias", shape=(), initializer=tf.keras.initializers.Constant(-2.0))
        self.segment_level = weight("segment_level", n_seg)
        self.item_level = weight("item_level", n_item)
        self.segment_relative = weight("segment_relative", n_seg)
        self.slope = weight("slope", n_seg, _INVERSE_SOFTPLUS_1, regularizer=None)
        self.slope_relative = weight("slope_relative", n_seg)
        self.slope_item = weight("slope_item", n_item)
        super().build(input_shape)

    def call(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        s = self.segment_lookup(tf.reshape(inputs["segment"], [-1]))
        i = self.item_lookup(tf.reshape(inputs["item_id"], [-1]))
        price = tf.maximum(tf.cast(tf.reshape(inputs["price"], [-1]), tf.float32), 1e-6)
        reference = tf.gather(self._reference, i)
        x = tf.gather(self._relative, i)
        level = (self.bias + tf.gather(self.segment_level, s) + tf.gather(self.item_level, i)
                 + tf.gather(self.segment_relative, s) * x)
        slope = tf.nn.softplus(tf.gather(self.slope, s) + tf.gather(self.slope_relative, s) * x
                               + tf.gather(self.slope_item, i))
        logit = level - slope * tf.math.log(price / reference)
        probability = tf.sigmoid(logit)
        return {"purchase_probability": probability, "elasticity": -slope * (1.0 - probability),
                "reference_price": reference, "item_known": tf.cast(i > 0, tf.float32), "logit": logit}

    def get_config(self):
        config = super().get_config()
        config.update({"segments": self.segments, "item_ids": self.item_ids,
                       "reference_prices": self.reference_prices, "relative_prices": self.relative_prices,
                       "l2": self.l2})
        return config


class _PriceQueries(abc.ABC):
    """Elasticity and revenue-maximising prices from any `predict(segment, item_id, price) -> outputs`."""

    @abc.abstractmethod
    def predict(self, segment, item_id, price) -> Dict[str, np.ndarray]:
        """The OUTPUTS for equal-length arrays of segments, item ids and prices."""

    def _outputs(self, segment, item_id, price):
        segment, item_id, price = np.broadcast_arrays(np.asarray(segment, dtype=object),
                                                      np.asarray(item_id, dtype=object),
                                                      np.asarray(price, dtype=np.float64))
        return self.predict(np.atleast_1d(segment), np.atleast_1d(item_id), np.atleast_1d(price))

    def purchase_probability(self, segment, item_id, price) -> np.ndarray:
        return self._outputs(segment, item_id, price)["purchase_probability"]

    def elasticity(self, segment, item_id, price) -> np.ndarray:
        """d log P(purchase) / d log price (negative)."""
        return self._outputs(segment, item_id, price)["elasticity"]

    def reference_price(self, item_id) -> np.ndarray:
        """The item's list price; NaN for an item the model does not know."""
        out = self._outputs("", item_id, 1.0)
        return np.where(out["item_known"] > 0, out["reference_price"], np.nan)

    def optimal_price(self, segment, item_id, low, high) -> np.ndarray:
        """The price within [low, high] maximising price * P(purchase | price), per (segment, item)."""
        segment, item_id, low, high = (np.atleast_1d(a) for a in np.broadcast_arrays(
            np.asarray(segment, dtype=object), np.asarray(item_id, dtype=object), np.asarray(low, dtype=np.float64),
            np.asarray(high, dtype=np.float64)))
        return revenue_maximising_price(lambda p: self.purchase_probability(segment, item_id, p), low, high)


class PriceModel(_PriceQueries):
    """A trained `PriceResponse` with numpy-in / numpy-out queries."""

    def __init__(self, layer: PriceResponse):
        self.layer = layer

    def predict(self, segment, item_id, price) -> Dict[str, np.ndarray]:
        out = self.layer({"segment": tf.constant(np.asarray(segment).astype(str)),
                          "item_id": tf.constant(np.asarray(item_id).astype(str)),
                          "price": tf.constant(np.asarray(price, dtype=np.float32))})
        return {k: out[k].numpy().astype(np.float64) for k in OUTPUTS}


class SavedPriceModel(_PriceQueries):
    """An exported pricing SavedModel (`tfrec.online.pricing_job.export_price_model`), queried through its
    serving signature exactly as TF Serving would run it."""

    def __init__(self, path: str):
        self.path = path
        self._fn = tf.saved_model.load(path).signatures["serving_default"]

    def predict(self, segment, item_id, price) -> Dict[str, np.ndarray]:
        request = {"segment": np.asarray(segment).astype(str), "item_id": np.asarray(item_id).astype(str),
                   "price": np.asarray(price, dtype=np.float32)}
        out = self._fn(**check_request(self._fn, request))
        return {k: out[k].numpy().reshape(-1).astype(np.float64) for k in OUTPUTS}


def segments_of(examples: PriceExamples, min_views: int = 1) -> List[str]:
    """Segments with at least `min_views` views, sorted (the model's segment vocabulary)."""
    names, counts = np.unique(examples.segment, return_counts=True)
    return sorted(str(n) for n, c in zip(names, counts) if c >= min_views and n != "")
