"""Samples what shoppers did with the shown lists and writes it as the canonical events table.

Each impression is clicked with the hidden model's probability; a click leads to add_to_cart and then purchase with
price-sensitive probabilities. Follow-up events come seconds to minutes after the request, with the same
request_id, item_id and position, and the whole table is sorted by time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfrec.data.schema import EVENTS_SCHEMA, EventType, Table
from tfrec.data.synthetic.model import ClickModel, RequestFeatures, calibrate_intercept
from tfrec.data.synthetic.sessions import Impressions

STAGES = (EventType.IMPRESSION.value, EventType.CLICK.value, EventType.ADD_TO_CART.value, EventType.PURCHASE.value)
# Delay after the previous stage, in seconds: minimum, mean of the exponential extra, cap. Caps sum below an hour.
CLICK_DELAY = (2, 20, 600)
CART_DELAY = (5, 90, 1_200)
PURCHASE_DELAY = (30, 240, 1_500)
BLOCK = 500_000  # impressions evaluated per block, to bound memory on the large preset


@dataclasses.dataclass
class Outcomes:
    """Indices (into impressions) of clicked, carted and purchased impressions, with their event times."""

    clicked: np.ndarray
    carted: np.ndarray
    purchased: np.ndarray
    click_time: np.ndarray
    cart_time: np.ndarray
    purchase_time: np.ndarray


def _blocked(fn, n: int) -> np.ndarray:
    """Concatenates fn(slice) over fixed-size blocks of range(n)."""
    parts = [fn(slice(s, min(s + BLOCK, n))) for s in range(0, n, BLOCK)]
    return np.concatenate(parts) if parts else np.zeros(0)


def calibrate(model: ClickModel, requests: RequestFeatures, imp: Impressions, target_ctr: float) -> None:
    """Sets the model's intercept so the mean true P(click) over the logged impressions is `target_ctr`."""
    z = _blocked(
        lambda s: model.relevance(requests, imp.request[s], imp.item[s]) + model.position_bias(imp.position[s]),
        len(imp),
    )
    model.intercept = calibrate_intercept(z, target_ctr)


def sample_outcomes(
    model: ClickModel, requests: RequestFeatures, imp: Impressions, rng: np.random.Generator
) -> Outcomes:
    """Clicks from the true P(click); add_to_cart and purchase follow clicks with their true probabilities."""
    p_click = _blocked(
        lambda s: model.click_probability(requests, imp.request[s], imp.item[s], imp.position[s]), len(imp)
    )
    clicked = np.flatnonzero(rng.random(len(imp)) < p_click)
    p_cart = model.cart_probability(requests, imp.request[clicked], imp.item[clicked])
    carted = clicked[rng.random(len(clicked)) < p_cart]
    p_buy = model.purchase_given_cart(requests, imp.request[carted], imp.item[carted])
    purchased = carted[rng.random(len(carted)) < p_buy]

    shown_at = requests.timestamp[imp.request]
    click_time = shown_at[clicked] + _delay(CLICK_DELAY, len(clicked), rng)
    cart_time = click_time[np.searchsorted(clicked, carted)] + _delay(CART_DELAY, len(carted), rng)
    purchase_time = cart_time[np.searchsorted(carted, purchased)] + _delay(PURCHASE_DELAY, len(purchased), rng)
    return Outcomes(clicked, carted, purchased, click_time, cart_time, purchase_time)


def _delay(spec, n: int, rng: np.random.Generator) -> np.ndarray:
    low, mean_extra, cap = spec
    return np.minimum(low + rng.exponential(mean_extra, n), cap).astype(np.int64)


def events_table(model: ClickModel, requests: RequestFeatures, imp: Impressions, out: Outcomes) -> Table:
    """One impression per shown item plus click / add_to_cart / purchase events, sorted by time."""
    source = np.concatenate([np.arange(len(imp)), out.clicked, out.carted, out.purchased])
    stage = np.concatenate([np.full(n, s, dtype=np.int8) for s, n in enumerate(
        (len(imp), len(out.clicked), len(out.carted), len(out.purchased)))])
    timestamp = np.concatenate([requests.timestamp[imp.request], out.click_time, out.cart_time, out.purchase_time])
    req, item, position = imp.request[source], imp.item[source], imp.position[source]
    order = np.lexsort((position, stage, req, timestamp))
    source, stage, timestamp, req, item, position = (a[order] for a in (source, stage, timestamp, req, item, position))
    tax = model.taxonomy
    columns = {
        "user_id": model.users.user_ids[requests.user[req]],
        "item_id": model.items.item_ids[item],
        "event_type": np.array(STAGES, dtype=object)[stage],
        "timestamp": timestamp,
        "query": requests.query[req],
        "position": position.astype(np.int64),
        "price": model.items.price[item],
        "request_id": requests.request_ids[req],
    }
    return Table(EVENTS_SCHEMA, columns, {"device": np.array(tax.devices, dtype=object)[requests.device[req]]})
