"""A price test on the synthetic shop, and the true demand curves it was drawn from.

The generator's items have fixed prices, so nothing in its logs identifies price sensitivity. This simulation shows
product pages of the shop's most clicked items at randomly perturbed prices, shown = list price * exp(U(-r, r)),
to shoppers of every segment (the users' `segment` attribute), and draws add-to-cart and purchase with the
generator's own mechanism (`ClickModel.cart_probability` x `ClickModel.purchase_given_cart`, in which the price
enters through the shopper's price band and sensitivity) evaluated at the shown price. The default generator output
is untouched: the simulation builds its own per-view copy of the item latents with the shown price.

Truth. For segment s and item i the true demand is the purchase probability of a product-page view averaged over the
segment's shoppers (drawn by activity, a recommendation context on their usual device at a typical hour):
    D_si(p) = mean_u P(add_to_cart | view, u, i, p) P(purchase | add_to_cart, u, i, p),
its elasticity is d log D / d log p (central difference, step 1e-3 in log price), and its revenue-maximising price
within bounds is argmax p D_si(p), found as for the model (`tfrec.online.pricing.revenue_maximising_price`).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np

from tfrec.data.schema import EVENTS_SCHEMA, Table
from tfrec.data.synthetic.model import ClickModel, RequestFeatures
from tfrec.data.synthetic.sessions import HOUR_WEIGHTS, P_PREFERRED_DEVICE
from tfrec.online.pricing import revenue_maximising_price

LOG_STEP = 1e-3

__all__ = ["PriceTest", "PriceTestConfig", "TrueDemand", "simulate_price_test"]


@dataclasses.dataclass
class PriceTestConfig:
    """How the synthetic price test is run (the `simulation` block of configs/pricing.yaml)."""

    items: int = 30  # the most clicked items of the shop get the price test
    views_per_cell: int = 400  # product-page views per (segment, item)
    log_price_range: float = 0.4  # shown price = list price * exp(U(-r, r))
    truth_shoppers: int = 300  # shoppers per segment the true demand is averaged over
    seed: int = 0

    def validate(self) -> None:
        from tfrec.config import ConfigError

        for name in ("items", "views_per_cell", "truth_shoppers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", path=name)
        if not 0.0 < self.log_price_range <= 1.5:
            raise ConfigError(f"must be in (0, 1.5], got {self.log_price_range}", path="log_price_range")


def _contexts(model: ClickModel, users: np.ndarray, start: int, days: int,
              rng: np.random.Generator) -> RequestFeatures:
    """Recommendation requests (no query) of `users` on a random day of the window, at a typical hour, mostly on
    their usual device."""
    n = len(users)
    hour = rng.choice(24, n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    random_device = rng.integers(0, len(model.taxonomy.devices), n)
    device = np.where(rng.random(n) < P_PREFERRED_DEVICE, model.users.preferred_device[users], random_device)
    none, nan = np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
    return RequestFeatures(
        request_ids=np.array([f"P{i:08d}" for i in range(n)], dtype=object), user=users,
        timestamp=(start + rng.integers(0, days, n) * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)),
        device=device, is_search=np.zeros(n, bool), query=np.full(n, "", dtype=object), intent_leaf=none,
        brand=none, color=none, gender=none, price_min=nan, price_max=nan)


def _draw_shoppers(model: ClickModel, segment: int, n: int, rng: np.random.Generator) -> np.ndarray:
    members = np.flatnonzero(model.users.segment == segment)
    if not len(members):
        raise ValueError(f"segment {model.taxonomy.segments[segment]!r} has no users in this shop")
    weights = model.users.activity[members]
    return rng.choice(members, n, p=weights / weights.sum())


def _view_model(model: ClickModel, items: np.ndarray, prices: np.ndarray) -> ClickModel:
    """The click model over one pseudo-item per view: view k is item items[k] shown at prices[k]."""
    latents = model.items
    shown = dataclasses.replace(
        latents, item_ids=latents.item_ids[items], leaf=latents.leaf[items], brand=latents.brand[items],
        color=latents.color[items], gender=latents.gender[items], price=np.asarray(prices, dtype=np.float64),
        quality=latents.quality[items])
    return dataclasses.replace(model, items=shown)  # __post_init__ recomputes the price-dependent caches


def purchase_probability(model: ClickModel, requests: RequestFeatures, items: np.ndarray,
                         prices: np.ndarray) -> np.ndarray:
    """The generator's P(purchase | product-page view) of request k viewing items[k] at prices[k]."""
    view_model, rows = _view_model(model, items, prices), np.arange(len(items))
    return view_model.cart_probability(requests, rows, rows) * view_model.purchase_given_cart(requests, rows, rows)


class TrueDemand:
    """D_si(p) of every (segment, item) cell (module docstring), for comparing a fitted model with the truth."""

    def __init__(self, model: ClickModel, segments: Sequence[int], items: Sequence[int], shoppers: int, start: int,
                 days: int, rng: np.random.Generator):
        self.model = model
        self.segments = np.asarray(segments)
        self.items = np.asarray(items)
        self.shoppers = shoppers
        users = np.concatenate([_draw_shoppers(model, s, shoppers, rng) for s in self.segments])
        self._requests = _contexts(model, users, start, days, rng)

    @property
    def segment_names(self) -> List[str]:
        return [self.model.taxonomy.segments[s] for s in self.segments]

    def list_price(self, item: np.ndarray) -> np.ndarray:
        return self.model.items.price[self.items[item]]

    def demand(self, segment: np.ndarray, item: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Mean purchase probability of cells (segment position, item position) at `price`, one value per cell."""
        segment, item = np.broadcast_arrays(np.asarray(segment), np.asarray(item))
        price = np.broadcast_to(np.asarray(price, dtype=np.float64), segment.shape)
        k = self.shoppers
        rows = (segment[:, None] * k + np.arange(k)[None, :]).reshape(-1)  # each cell's shoppers
        req = _take(self._requests, rows)
        p = purchase_probability(self.model, req, np.repeat(self.items[item], k), np.repeat(price, k))
        return p.reshape(len(segment), k).mean(axis=1)

    def elasticity(self, segment: np.ndarray, item: np.ndarray, price: np.ndarray) -> np.ndarray:
        """d log D / d log p by a central difference."""
        up = self.demand(segment, item, np.asarray(price) * np.exp(LOG_STEP))
        down = self.demand(segment, item, np.asarray(price) * np.exp(-LOG_STEP))
        return (np.log(up) - np.log(down)) / (2 * LOG_STEP)

    def optimal_price(self, segment: np.ndarray, item: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        return revenue_maximising_price(lambda p: self.demand(segment, item, p), low, high)


def _take(requests: RequestFeatures, rows: np.ndarray) -> RequestFeatures:
    return RequestFeatures(**{f.name: getattr(requests, f.name)[rows] for f in dataclasses.fields(RequestFeatures)})


@dataclasses.dataclass
class PriceTest:
    """The simulated views as canonical events (click = product-page view, with add_to_cart / purchase following,
    all with the shown `price`), the users table (with `segment`), and the truth behind them."""

    events: Table
    users: Table
    catalog: Table
    truth: TrueDemand
    config: PriceTestConfig

    def cells(self) -> Dict[str, np.ndarray]:
        """Every (segment, item) cell: segment name, item id, positions into truth.segments / truth.items."""
        s, i = np.meshgrid(np.arange(len(self.truth.segments)), np.arange(len(self.truth.items)), indexing="ij")
        s, i = s.reshape(-1), i.reshape(-1)
        names = np.asarray(self.truth.segment_names, dtype=object)
        return {"segment": names[s], "item_id": self.truth.model.items.item_ids[self.truth.items[i]],
                "segment_index": s, "item_index": i, "list_price": self.truth.list_price(i)}


def most_clicked_items(data, n: int) -> np.ndarray:
    """Indices (into the generator's items) of the `n` most clicked items of the logged events."""
    model = data.ground_truth.model
    events = data.dataset.events
    clicked = events["item_id"][events["event_type"] == "click"]
    ids, counts = np.unique(clicked.astype(str), return_counts=True)
    top = ids[np.argsort(-counts, kind="stable")[:n]]
    index = {item: k for k, item in enumerate(model.items.item_ids)}
    return np.asarray([index[i] for i in top], dtype=np.int64)


def simulate_price_test(data, config: Optional[PriceTestConfig] = None) -> PriceTest:
    """Runs the price test of `config` (default PriceTestConfig()) on a `tfrec.data.synthetic.SyntheticData`."""
    config = config or PriceTestConfig()
    config.validate()
    model = data.ground_truth.model
    rng = np.random.default_rng(config.seed)
    items = most_clicked_items(data, config.items)
    segments = np.arange(len(model.taxonomy.segments))
    segments = segments[[np.any(model.users.segment == s) for s in segments]]
    start = data.config.start
    truth = TrueDemand(model, segments, items, config.truth_shoppers, start, data.config.days, rng)

    v = config.views_per_cell
    cell_item = np.tile(np.repeat(items, v), len(segments))
    users = np.concatenate([_draw_shoppers(model, s, len(items) * v, rng) for s in segments])
    requests = _contexts(model, users, start, data.config.days, rng)
    shown = model.items.price[cell_item] * np.exp(rng.uniform(-config.log_price_range, config.log_price_range,
                                                              len(cell_item)))
    shown = np.round(shown, 2)
    carted, purchased = _draw_outcomes(model, requests, cell_item, shown, rng)
    events = _events(model, requests, cell_item, shown, carted, purchased)
    return PriceTest(events, data.dataset.users, data.dataset.catalog, truth, config)


def _draw_outcomes(model: ClickModel, requests: RequestFeatures, items: np.ndarray, prices: np.ndarray,
                   rng: np.random.Generator):
    """add_to_cart, then purchase among carts, as the generator draws them; in blocks to bound memory."""
    n = len(items)
    carted, purchased = np.zeros(n, bool), np.zeros(n, bool)
    for chunk in np.array_split(np.arange(n), max(1, n // 200_000)):
        req, view_model, rows = _take(requests, chunk), _view_model(model, items[chunk], prices[chunk]), \
            np.arange(len(chunk))
        cart = rng.random(len(chunk)) < view_model.cart_probability(req, rows, rows)
        buy = cart & (rng.random(len(chunk)) < view_model.purchase_given_cart(req, rows, rows))
        carted[chunk], purchased[chunk] = cart, buy
    return carted, purchased


def _events(model, requests, items, prices, carted, purchased) -> Table:
    n = len(items)
    views = np.arange(n)
    carts, buys = np.flatnonzero(carted), np.flatnonzero(purchased)
    rows = np.concatenate([views, carts, buys])
    kinds = np.concatenate([np.full(n, "click", dtype=object), np.full(len(carts), "add_to_cart", dtype=object),
                            np.full(len(buys), "purchase", dtype=object)])
    delay = np.concatenate([np.zeros(n), np.full(len(carts), 60), np.full(len(buys), 240)]).astype(np.int64)
    request_ids = np.char.add("PT", np.arange(n).astype(str)).astype(object)
    columns = {
        "user_id": model.users.user_ids[requests.user[rows]],
        "item_id": model.items.item_ids[items[rows]],
        "event_type": kinds,
        "timestamp": requests.timestamp[rows] + delay,
        "price": prices[rows],
        "request_id": request_ids[rows],
    }
    order = np.argsort(columns["timestamp"], kind="stable")
    return Table(EVENTS_SCHEMA, {k: v[order] for k, v in columns.items()})
