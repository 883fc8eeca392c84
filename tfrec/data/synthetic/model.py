"""The hidden world of the synthetic shop and its click model: who likes what, and how likely a shown item is clicked.

P(click | request r, item i, position p) = sigmoid(intercept + relevance(r, i) + position_bias(p)). `relevance` is a
sum of pairwise terms (user x department, user x leaf, user x brand, item quality, user price band, device x
department, hour, and for searches query-leaf / brand / colour / gender / price-limit match), so a logistic model
with hashed crosses can learn most of it. The generator samples clicks from exactly this code, and `GroundTruth`
re-evaluates it, so the two can never disagree.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np

from tfrec.data.synthetic._sampling import sigmoid
from tfrec.data.synthetic.config import Effects

# Search topic match: item in the query's leaf / its subcategory / its department / elsewhere (x query_category).
TOPIC_LEAF, TOPIC_SUBCATEGORY, TOPIC_DEPARTMENT, TOPIC_OTHER = 1.0, 0.45, 0.15, -0.5
# Smoothing of taste probabilities before taking logs, so affinities stay within a few logits.
_DEPT_SMOOTHING, _LEAF_SMOOTHING = 0.02, 0.05


@dataclasses.dataclass
class Taxonomy:
    """Names behind the integer codes: departments, leaf paths, brands, colours, genders, devices, segments."""

    departments: Tuple[str, ...]
    leaf_paths: np.ndarray  # str, 'Department > Subcategory > Leaf'
    leaf_department: np.ndarray  # int, department of each leaf
    leaf_subcategory: np.ndarray  # int, global subcategory index of each leaf
    leaf_base_price: np.ndarray  # float, mid-tier reference price of each leaf
    brands: Tuple[str, ...]
    colors: Tuple[str, ...]
    genders: Tuple[str, ...]
    devices: Tuple[str, ...]
    segments: Tuple[str, ...]

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_paths)

    def leaves_in_department(self) -> np.ndarray:
        """Number of leaves of each leaf's department."""
        counts = np.bincount(self.leaf_department, minlength=len(self.departments))
        return counts[self.leaf_department]


@dataclasses.dataclass
class ItemLatents:
    """Per-item codes the click model reads; -1 means the attribute does not apply (e.g. colour of a book)."""

    item_ids: np.ndarray
    leaf: np.ndarray
    brand: np.ndarray
    color: np.ndarray
    gender: np.ndarray
    price: np.ndarray
    quality: np.ndarray  # latent quality ~ N(0, 1): the item-level signal behind popularity


@dataclasses.dataclass
class UserLatents:
    """Per-user hidden tastes; `segment` and `preferred_device` are also published as user attributes."""

    user_ids: np.ndarray
    segment: np.ndarray
    preferred_device: np.ndarray
    department_pref: np.ndarray  # (users, departments), rows sum to 1
    leaf_pref: np.ndarray  # (users, leaves): P(leaf | department), each department block of a row sums to 1
    favorite_brands: np.ndarray  # (users, k) brand codes, -1 padded
    price_tier: np.ndarray  # preferred log(price / leaf base price)
    price_sensitivity: np.ndarray  # > 0; scales the price-band penalty and the purchase price effect
    activity: np.ndarray  # share of sessions, Zipf-like

    def leaf_distribution(self, taxonomy: Taxonomy) -> np.ndarray:
        """P(leaf) per user: department taste times leaf-within-department taste, shape (users, leaves)."""
        return self.department_pref[:, taxonomy.leaf_department] * self.leaf_pref


@dataclasses.dataclass
class RequestFeatures:
    """Integer-coded requests as the click model sees them (slot codes -1 / NaN when the query has no such slot)."""

    request_ids: np.ndarray
    user: np.ndarray
    timestamp: np.ndarray
    device: np.ndarray
    is_search: np.ndarray  # bool
    query: np.ndarray  # str, '' for recommendations
    intent_leaf: np.ndarray  # leaf the shopper searched for, -1 for recommendations
    brand: np.ndarray
    color: np.ndarray
    gender: np.ndarray
    price_min: np.ndarray
    price_max: np.ndarray

    def __len__(self) -> int:
        return len(self.request_ids)

    @property
    def hour(self) -> np.ndarray:
        """UTC hour of day of each request."""
        return (self.timestamp % 86_400) // 3_600


@dataclasses.dataclass
class ClickModel:
    """The ground-truth behaviour: relevance, click, add-to-cart and purchase probabilities."""

    taxonomy: Taxonomy
    items: ItemLatents
    users: UserLatents
    effects: Effects
    intercept: float  # set so the mean P(click) over the logged impressions equals config.target_ctr
    device_department: np.ndarray  # (devices, departments) effect in units of effects.context
    hour_effect: np.ndarray  # (24,) effect in units of effects.context

    def __post_init__(self):
        t = self.taxonomy
        d = len(t.departments)
        self._item_dept = t.leaf_department[self.items.leaf]
        self._item_sub = t.leaf_subcategory[self.items.leaf]
        self._item_relprice = np.log(self.items.price / t.leaf_base_price[self.items.leaf])
        self._dept_aff = np.log((self.users.department_pref + _DEPT_SMOOTHING) / (1.0 / d + _DEPT_SMOOTHING))
        uniform_leaf = 1.0 / t.leaves_in_department()
        self._leaf_aff = np.log((self.users.leaf_pref + _LEAF_SMOOTHING) / (uniform_leaf + _LEAF_SMOOTHING))

    # --- the parts of relevance; every argument broadcasts, so pairs and (users x items) grids share the code ---
    def personal(self, user, item, device) -> np.ndarray:
        """Query-free relevance of `item` for `user` on `device`: tastes, quality, price band, device context."""
        e = self.effects
        dept = self._item_dept[item]
        brand = self.items.brand[item]
        fav = self.users.favorite_brands[user]  # (..., k)
        is_fav = np.any(fav == np.expand_dims(brand, -1), axis=-1)
        gap = self._item_relprice[item] - self.users.price_tier[user]
        return (
            e.department_affinity * self._dept_aff[user, dept]
            + e.leaf_affinity * self._leaf_aff[user, self.items.leaf[item]]
            + e.brand_affinity * is_fav
            + e.quality * self.items.quality[item]
            - e.price_fit * self.users.price_sensitivity[user] * gap**2
            + e.context * self.device_department[device, dept]
        )

    def query_match(self, requests: RequestFeatures, req, item) -> np.ndarray:
        """How well `item` answers the search of request `req` (0 for recommendations)."""
        e, t = self.effects, self.taxonomy
        intent = requests.intent_leaf[req]
        searched = intent >= 0
        safe = np.where(searched, intent, 0)
        leaf = self.items.leaf[item]
        same_leaf = leaf == intent
        same_sub = self._item_sub[item] == t.leaf_subcategory[safe]
        same_dept = self._item_dept[item] == t.leaf_department[safe]
        topic = np.select(
            [same_leaf, same_sub, same_dept],
            [TOPIC_LEAF, TOPIC_SUBCATEGORY, TOPIC_DEPARTMENT],
            TOPIC_OTHER,
        )
        score = e.query_category * topic
        score = score + e.query_brand * _slot_match(requests.brand[req], self.items.brand[item])
        score = score + e.query_color * _slot_match(requests.color[req], self.items.color[item])
        score = score + e.query_gender * self._gender_match(requests.gender[req], self.items.gender[item])
        price = self.items.price[item]
        with np.errstate(invalid="ignore"):
            over = np.log(price / requests.price_max[req])
            under = np.log(requests.price_min[req] / price)
        violation = np.nan_to_num(np.maximum(over, 0.0)) + np.nan_to_num(np.maximum(under, 0.0))
        score = score - e.query_price * np.minimum(3.0 * violation, 1.0)
        return np.where(searched, score, 0.0)

    def _gender_match(self, slot, item_gender) -> np.ndarray:
        unisex = self.taxonomy.genders.index("unisex")
        match = _slot_match(slot, item_gender)
        return np.where((slot >= 0) & (item_gender == unisex), 0.5, match)

    def relevance(self, requests: RequestFeatures, req, item) -> np.ndarray:
        """Position-free utility of showing `item` for request `req` (the logit without intercept and position)."""
        hour = requests.hour[req]
        return (
            self.personal(requests.user[req], item, requests.device[req])
            + self.effects.context * self.hour_effect[hour]
            + self.query_match(requests, req, item)
        )

    def position_bias(self, position) -> np.ndarray:
        """Additive click-logit effect of the 0-based rank: 0 at the top, decreasing with position."""
        return -self.effects.position_bias * np.log2(1.0 + np.asarray(position, dtype=np.float64))

    def click_probability(self, requests: RequestFeatures, req, item, position) -> np.ndarray:
        return sigmoid(self.intercept + self.relevance(requests, req, item) + self.position_bias(position))

    def cart_probability(self, requests: RequestFeatures, req, item) -> np.ndarray:
        """P(add_to_cart | click): higher for relevant items, lower for items pricier than the user's band."""
        e = self.effects
        user = requests.user[req]
        gap = self._item_relprice[item] - self.users.price_tier[user]
        logit = (e.cart_intercept + e.cart_relevance * self.relevance(requests, req, item)
                 - e.cart_price * self.users.price_sensitivity[user] * gap)
        return sigmoid(logit)

    def purchase_given_cart(self, requests: RequestFeatures, req, item) -> np.ndarray:
        """P(purchase | add_to_cart): only prices above the user's band (x sensitivity) hold buyers back."""
        e = self.effects
        user = requests.user[req]
        gap = self._item_relprice[item] - self.users.price_tier[user]
        over_band = np.maximum(gap, 0.0)
        return sigmoid(e.purchase_intercept - e.purchase_price * self.users.price_sensitivity[user] * over_band)


def _slot_match(slot, value) -> np.ndarray:
    """+1 when the query names this value, -0.5 when it names another one, 0 without slot or item attribute."""
    return np.where((slot < 0) | (value < 0), 0.0, np.where(slot == value, 1.0, -0.5))


def calibrate_intercept(logits_without_intercept: np.ndarray, target_mean: float) -> float:
    """The intercept b with mean(sigmoid(b + z)) == target_mean, by Newton's method (monotone, converges fast)."""
    z = np.asarray(logits_without_intercept, dtype=np.float64)
    b = float(np.log(target_mean / (1 - target_mean)) - np.mean(z))
    for _ in range(50):
        p = sigmoid(b + z)
        step = (p.mean() - target_mean) / max(float(np.mean(p * (1 - p))), 1e-12)
        b -= step
        if abs(step) < 1e-10:
            break
    return float(b)
