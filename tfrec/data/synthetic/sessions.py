"""Requests and what the shop showed: who asked, when, on which device, for what, and the logged ranked lists.

The logging policy ranks a candidate pool by the true utility plus noise, like a decent production ranker, so
logged positions are confounded with relevance just as in real logs.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from tfrec.data.synthetic._sampling import GroupedSampler
from tfrec.data.synthetic.catalog import CatalogBuild
from tfrec.data.synthetic.config import SyntheticConfig
from tfrec.data.synthetic.model import ClickModel, RequestFeatures, UserLatents
from tfrec.data.synthetic.queries import QueryWriter

# Relative traffic per UTC hour: a night trough, a lunch bump and an evening peak.
HOUR_WEIGHTS = np.array([0.6, 0.4, 0.3, 0.25, 0.25, 0.35, 0.6, 1.0, 1.3, 1.4, 1.5, 1.6,
                         1.8, 1.7, 1.6, 1.6, 1.7, 1.9, 2.2, 2.6, 2.9, 2.8, 2.2, 1.3])
WEEKEND_TRAFFIC = 1.2
FOLLOWUP_MARGIN = 3_600  # requests start this long before the window ends, leaving room for clicks and purchases
P_PREFERRED_DEVICE = 0.8
P_EXPLORE_INTENT = 0.15  # searches for a leaf outside the user's tastes (catalog-weighted)
POPULARITY_FROM_QUALITY = 0.8  # candidate retrieval favours items with exp(this x quality)
# Candidate sources: searches draw from the intent leaf, its department, the user's tastes, popular, any item;
# recommendations from the user's tastes, popular and any item.
SEARCH_SOURCES = (0.6, 0.15, 0.1, 0.1, 0.05)
RECOMMENDATION_SOURCES = (0.0, 0.0, 0.7, 0.2, 0.1)
CHUNK = 20_000  # requests ranked per block; fixed so results never depend on memory
MAX_REFILLS = 50


@dataclasses.dataclass
class Impressions:
    """The logged lists: one row per shown item (request index, item index, 0-based position)."""

    request: np.ndarray
    item: np.ndarray
    position: np.ndarray

    def __len__(self) -> int:
        return len(self.request)


def request_times(config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Sorted request timestamps with diurnal and weekly patterns, all inside [start, end - FOLLOWUP_MARGIN)."""
    n = config.n_sessions
    first_day = config.start // 86_400
    weekday = (first_day + np.arange(config.days) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    day_w = np.where(weekday >= 5, WEEKEND_TRAFFIC, 1.0)
    day = rng.choice(config.days, n, p=day_w / day_w.sum())
    hour = rng.choice(24, n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    t = config.start + day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)
    latest = config.end - FOLLOWUP_MARGIN
    t = np.where(t >= latest, t - FOLLOWUP_MARGIN, t)
    return np.maximum(np.sort(t), config.start)


def build_requests(
    config: SyntheticConfig,
    catalog: CatalogBuild,
    users: UserLatents,
    taste: GroupedSampler,
    writer: QueryWriter,
    rng: np.random.Generator,
) -> RequestFeatures:
    """Requests in time order: user by activity, device, search or not, and for searches an intent, slots, text.

    `taste` samples a leaf from a user's tastes (rows = users), see `taste_sampler`.
    """
    n = config.n_sessions
    timestamp = request_times(config, rng)
    user = rng.choice(len(users.user_ids), n, p=users.activity)
    random_device = rng.integers(0, len(catalog.taxonomy.devices), n)
    device = np.where(rng.random(n) < P_PREFERRED_DEVICE, users.preferred_device[user], random_device)
    is_search = rng.random(n) < config.search_fraction

    searches = np.flatnonzero(is_search)
    leaf_counts = np.bincount(catalog.items.leaf, minlength=catalog.taxonomy.n_leaves)
    explore = rng.random(len(searches)) < P_EXPLORE_INTENT
    intent_s = np.where(
        explore,
        rng.choice(len(leaf_counts), len(searches), p=leaf_counts / leaf_counts.sum()),
        taste.sample(user[searches], rng),
    )
    brand_s, color_s, gender_s, pmin_s, pmax_s = writer.sample_slots(intent_s, user[searches], users, rng)
    query_s = writer.render(intent_s, brand_s, color_s, gender_s, pmin_s, pmax_s, rng)

    def spread(values, fill, dtype):
        out = np.full(n, fill, dtype=dtype)
        out[searches] = values
        return out

    return RequestFeatures(
        request_ids=np.array([f"R{i:08d}" for i in range(n)], dtype=object),
        user=user,
        timestamp=timestamp.astype(np.int64),
        device=device,
        is_search=is_search,
        query=spread(query_s, "", object),
        intent_leaf=spread(intent_s, -1, np.int64),
        brand=spread(brand_s, -1, np.int64),
        color=spread(color_s, -1, np.int64),
        gender=spread(gender_s, -1, np.int64),
        price_min=spread(pmin_s, np.nan, np.float64),
        price_max=spread(pmax_s, np.nan, np.float64),
    )


def taste_sampler(users: UserLatents, taxonomy) -> GroupedSampler:
    """Samples a leaf per user from P(leaf) = department taste x leaf-within-department taste."""
    return GroupedSampler.from_matrix(users.leaf_distribution(taxonomy))


class LoggingPolicy:
    """Retrieves candidates for each request and shows the top `list_size` by noisy true utility."""

    def __init__(self, config: SyntheticConfig, catalog: CatalogBuild, model: ClickModel, taste: GroupedSampler):
        self.config, self.catalog, self.model = config, catalog, model
        items, tax = catalog.items, catalog.taxonomy
        self.n_items = len(items.item_ids)
        popularity = np.exp(POPULARITY_FROM_QUALITY * items.quality)
        self._in_leaf = GroupedSampler(items.leaf, popularity, tax.n_leaves)
        n_brands = len(tax.brands)
        self._n_brands = n_brands
        self._in_leaf_brand = GroupedSampler(items.leaf * n_brands + items.brand, popularity, tax.n_leaves * n_brands)
        self._popular = GroupedSampler(np.zeros(self.n_items), popularity, 1)
        self._taste = taste
        counts = np.bincount(tax.leaf_department, minlength=len(tax.departments))
        self._dept_first_leaf = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._dept_leaves = counts

    def show(self, requests: RequestFeatures, rng: np.random.Generator,
             progress: Optional[Callable[[int, int], None]] = None) -> Impressions:
        n, k = len(requests), self.config.list_size
        shown = np.empty((n, k), dtype=np.int64)
        for start in range(0, n, CHUNK):
            rows = np.arange(start, min(start + CHUNK, n))
            shown[rows] = self._rank(requests, rows, rng)
            if progress is not None:
                progress(int(rows[-1]) + 1, n)
        return Impressions(np.repeat(np.arange(n), k), shown.reshape(-1), np.tile(np.arange(k), n))

    def _candidates(self, requests: RequestFeatures, rows: np.ndarray, rng) -> np.ndarray:
        """(rows, candidates_per_request) item indices, possibly with repeats."""
        c = self.config.candidates_per_request
        search = requests.is_search[rows]
        probs = np.where(search[:, None], np.array(SEARCH_SOURCES), np.array(RECOMMENDATION_SOURCES))
        cum = np.cumsum(probs, axis=1)
        source = (rng.random((len(rows), c))[:, :, None] >= cum[:, None, :-1]).sum(axis=2)
        req = np.repeat(rows, c)
        source = source.reshape(-1)
        intent = requests.intent_leaf[req]
        brand = requests.brand[req]
        out = rng.integers(0, self.n_items, len(req))  # source 4: any item
        # source 0: the intent leaf; half of those cells retrieve the named brand's items when the query has one
        m = source == 0
        key = intent * self._n_brands + brand
        by_brand = m & (brand >= 0) & (rng.random(len(req)) < 0.5)
        by_brand &= self._in_leaf_brand.has_mass[np.where(by_brand, key, 0)]
        out[by_brand] = self._in_leaf_brand.sample(key[by_brand], rng)
        m &= ~by_brand
        out[m] = self._in_leaf.sample(intent[m], rng)
        m = source == 1  # a random leaf of the intent's department
        dept = self.catalog.taxonomy.leaf_department[intent[m]]
        leaf = self._dept_first_leaf[dept] + (rng.random(m.sum()) * self._dept_leaves[dept]).astype(np.int64)
        out[m] = self._in_leaf.sample(leaf, rng)
        m = source == 2  # a leaf from the user's tastes
        out[m] = self._in_leaf.sample(self._taste.sample(requests.user[req[m]], rng), rng)
        m = source == 3
        out[m] = self._popular.sample(np.zeros(m.sum(), dtype=np.int64), rng)
        return out.reshape(len(rows), c)

    def _rank(self, requests: RequestFeatures, rows: np.ndarray, rng) -> np.ndarray:
        k = self.config.list_size
        cand = self._candidates(requests, rows, rng)
        for _ in range(MAX_REFILLS):
            dup = _duplicates(cand)
            short = (~dup).sum(axis=1) < k
            if not short.any():
                break
            refill = dup & short[:, None]  # lists with too few distinct items get random items in repeated slots
            cand[refill] = rng.integers(0, self.n_items, int(refill.sum()))
        else:
            raise RuntimeError("could not find enough distinct candidates; increase n_items")
        req = np.repeat(rows, cand.shape[1])
        score = self.model.relevance(requests, req, cand.reshape(-1)).reshape(cand.shape)
        score = score + self.model.effects.logging_noise * rng.standard_normal(cand.shape)
        score[dup] = -np.inf
        top = np.argsort(-score, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(cand, top, axis=1)


def _duplicates(cand: np.ndarray) -> np.ndarray:
    """True for every repeat of an item already earlier in its row."""
    order = np.argsort(cand, axis=1, kind="stable")
    sorted_ = np.take_along_axis(cand, order, axis=1)
    repeat = np.zeros_like(cand, dtype=bool)
    repeat[:, 1:] = sorted_[:, 1:] == sorted_[:, :-1]
    dup = np.zeros_like(repeat)
    np.put_along_axis(dup, order, repeat, axis=1)
    return dup
