"""Knobs of the synthetic shop: sizes, time window, logging policy and the hidden click model's effect sizes.

Effect sizes are logit-scale weights, so a test or experiment can switch one signal off (set it to 0) and check that
a model stops learning it; presets fix sizes for unit tests ("tiny") up to benchmarks ("large").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict

# 2024-01-01 00:00:00 UTC, a Monday: the default start of the simulated window.
DEFAULT_START = 1704067200


@dataclasses.dataclass(frozen=True)
class Effects:
    """Weights of the hidden utility (logit scale) and of the add-to-cart / purchase models."""

    department_affinity: float = 0.7  # user's taste for the item's department
    leaf_affinity: float = 0.5  # user's taste for the item's leaf category within the department
    brand_affinity: float = 0.8  # bonus when the item's brand is one of the user's favourites
    quality: float = 0.6  # latent item quality (what item-id / popularity features learn)
    price_fit: float = 0.5  # penalty for prices away from the user's preferred band, times their sensitivity
    context: float = 0.2  # scale of the device x department and hour-of-day effects
    query_category: float = 2.2  # search: bonus for the query's leaf (partial for its subcategory / department)
    query_brand: float = 1.2  # search: brand slot matched (+) or contradicted (-half)
    query_color: float = 0.9  # search: colour slot matched (+) or contradicted (-half)
    query_gender: float = 0.9  # search: gender slot matched (+), unisex (+half), contradicted (-half)
    query_price: float = 2.5  # search: penalty per unit of log-price outside the query's price limits (capped at 1)
    position_bias: float = 0.45  # click logit drops by this times log2(1 + position)
    logging_noise: float = 1.0  # std of the noise the logging ranker adds to the true utility
    cart_intercept: float = -2.0  # logit of P(add_to_cart | click) for an average item
    cart_relevance: float = 0.3  # how much utility raises P(add_to_cart | click)
    cart_price: float = 0.8  # how much pricier-than-preferred items (x sensitivity) lower P(add_to_cart | click)
    purchase_intercept: float = -0.2  # logit of P(purchase | add_to_cart) for an average item
    purchase_price: float = 1.0  # as cart_price, for P(purchase | add_to_cart), only above the preferred band


_PRESETS: Dict[str, Dict[str, Any]] = {
    # Unit tests: a logistic CTR model trains on it in seconds (~33k events).
    "tiny": dict(n_items=500, n_users=300, n_sessions=3_000, days=7),
    # The demo (~250k events).
    "small": dict(n_items=5_000, n_users=2_000, n_sessions=22_000, days=30),
    # ~1M events.
    "medium": dict(n_items=20_000, n_users=20_000, n_sessions=90_000, days=60),
    # ~10M events.
    "large": dict(n_items=100_000, n_users=150_000, n_sessions=900_000, days=90),
}
PRESETS = tuple(_PRESETS)


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Everything `generate` needs; the same config (including seed) always yields the same data, bit for bit.

    A session is one request (a search or a recommendation) showing `list_size` items, so a config yields about
    n_sessions * list_size * (1 + 1.15 * target_ctr) events.
    """

    seed: int = 0
    n_items: int = 500
    n_users: int = 300
    n_sessions: int = 3_000
    list_size: int = 10  # impressions per request
    search_fraction: float = 0.4  # share of requests that are searches (the rest are recommendations)
    days: int = 7  # length of the simulated window
    start: int = DEFAULT_START  # epoch seconds (UTC) of the window's start
    candidates_per_request: int = 30  # items the logging policy scores before showing the top `list_size`
    target_ctr: float = 0.08  # the click model's intercept is set so the mean P(click) over impressions is this
    user_concentration: float = 1.0  # Dirichlet concentration of user tastes; smaller = more focused users
    activity_skew: float = 0.9  # Zipf exponent of user activity; larger = more heavy users
    effects: Effects = dataclasses.field(default_factory=Effects)

    def __post_init__(self):
        if isinstance(self.effects, dict):  # accept the plain-dict form from JSON
            object.__setattr__(self, "effects", Effects(**self.effects))
        positive = ("n_items", "n_users", "n_sessions", "list_size", "days", "candidates_per_request")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SyntheticConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.candidates_per_request < self.list_size:
            raise ValueError(
                f"candidates_per_request ({self.candidates_per_request}) must be >= list_size ({self.list_size})"
            )
        if self.n_items < 2 * self.list_size:
            raise ValueError(f"n_items ({self.n_items}) must be at least twice list_size ({self.list_size})")
        if not 0.0 <= self.search_fraction <= 1.0:
            raise ValueError(f"search_fraction must be in [0, 1], got {self.search_fraction}")
        if not 0.0 < self.target_ctr < 1.0:
            raise ValueError(f"target_ctr must be in (0, 1), got {self.target_ctr}")
        if self.user_concentration <= 0 or self.activity_skew < 0:
            raise ValueError("user_concentration must be > 0 and activity_skew >= 0")

    @classmethod
    def preset(cls, name: str, seed: int = 0, **overrides) -> "SyntheticConfig":
        """A named size ("tiny", "small", "medium", "large") with `seed`; keyword overrides win over the preset."""
        if name not in _PRESETS:
            raise ValueError(f"unknown synthetic preset {name!r}; choose one of {PRESETS}")
        return cls(**{**_PRESETS[name], "seed": seed, **overrides})

    def replace(self, **changes) -> "SyntheticConfig":
        return dataclasses.replace(self, **changes)

    @property
    def end(self) -> int:
        """Epoch seconds just after the window: every event has start <= timestamp < end."""
        return self.start + self.days * 86_400

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-ready dict (effects nested), the inverse of `from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "SyntheticConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown SyntheticConfig fields {sorted(unknown)}")
        return cls(**data)
