"""Typed configs of the online loop (event log, user state, profiles, drift), loaded from configs/online.yaml.

Every number a deployment may change lives here, validated when the file is loaded: an unknown key, a wrong type or
an out-of-range value is a ConfigError naming the file and the key.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Literal, Optional

from tfrec.config import ConfigError, load_config
from tfrec.online.events import EVENT_TYPES, MAX_FUTURE_SECONDS

__all__ = [
    "DEFAULT_EVENT_WEIGHTS", "DriftConfig", "EventLogConfig", "OnlineConfig", "ProfileConfig", "UserStateConfig",
    "load_online_config",
]

# How much one event says about a shopper's taste. An impression shows what was offered, not what they wanted.
DEFAULT_EVENT_WEIGHTS = {"impression": 0.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


def _positive(value: float, path: str) -> None:
    if not value > 0:
        raise ConfigError(f"must be positive, got {value!r}", path=path)


@dataclasses.dataclass
class EventLogConfig:
    """Where the durable event log lives and how hard each commit syncs (see tfrec.online.event_log)."""

    path: str = "online/events.sqlite"
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    max_future_seconds: float = MAX_FUTURE_SECONDS  # events stamped further ahead of the server clock are rejected

    def validate(self) -> None:
        if self.max_future_seconds < 0:
            raise ConfigError(f"must be >= 0, got {self.max_future_seconds!r}", path="max_future_seconds")


@dataclasses.dataclass
class UserStateConfig:
    """How events fold into a shopper's state: affinity half-life, per-type weights, list bounds, price band."""

    half_life_seconds: float = 3 * 86_400.0  # an event's weight in the affinities halves every half-life
    event_weights: Dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    recent_items: int = 50  # most recent engaged items kept (click / add_to_cart / purchase: weight > 0)
    recent_queries: int = 20
    max_affinities: int = 100  # categories (and brands) kept per user, the strongest first
    min_price_spread: float = 0.1  # floor of the price band's half-width in log-price (0.1 ~ +-10 %)
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = "tfrec:user:"
    redis_ttl_seconds: Optional[int] = None  # Redis forgets users idle this long; None keeps them

    def validate(self) -> None:
        _positive(self.half_life_seconds, "half_life_seconds")
        for name in ("recent_items", "recent_queries", "max_affinities"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)!r}", path=name)
        unknown = sorted(set(self.event_weights) - set(EVENT_TYPES))
        if unknown:
            raise ConfigError(f"unknown event type {unknown[0]!r}; expected {', '.join(EVENT_TYPES)}",
                              path="event_weights")
        for name, weight in self.event_weights.items():
            if weight < 0:
                raise ConfigError(f"must be >= 0, got {weight!r}", path=f"event_weights.{name}")
        if self.min_price_spread < 0:
            raise ConfigError(f"must be >= 0, got {self.min_price_spread!r}", path="min_price_spread")
        if self.redis_ttl_seconds is not None:
            _positive(self.redis_ttl_seconds, "redis_ttl_seconds")

    def weight(self, event_type: str) -> float:
        return float(self.event_weights.get(event_type, 0.0))


@dataclasses.dataclass
class ProfileConfig:
    """What a user profile lists: how many top categories / brands / predicted interests."""

    top_k: int = 5
    predicted_interests: int = 5
    output: str = "online/profiles.jsonl"

    def validate(self) -> None:
        for name in ("top_k", "predicted_interests"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)!r}", path=name)


@dataclasses.dataclass
class DriftConfig:
    """Histogram resolution of the drift metrics and the PSI level that counts as drift."""

    bins: int = 10  # quantile bins of numeric features (from the reference) and calibration buckets
    max_categories: int = 50  # categorical values beyond the reference's most frequent ones pool into "other"
    psi_alert: float = 0.2  # the usual rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 shifted

    def validate(self) -> None:
        if self.bins < 2:
            raise ConfigError(f"must be >= 2, got {self.bins!r}", path="bins")
        if self.max_categories < 1:
            raise ConfigError(f"must be >= 1, got {self.max_categories!r}", path="max_categories")
        _positive(self.psi_alert, "psi_alert")


@dataclasses.dataclass
class OnlineConfig:
    """configs/online.yaml: every knob of the live-traffic loop."""

    event_log: EventLogConfig = dataclasses.field(default_factory=EventLogConfig)
    user_state: UserStateConfig = dataclasses.field(default_factory=UserStateConfig)
    profiles: ProfileConfig = dataclasses.field(default_factory=ProfileConfig)
    drift: DriftConfig = dataclasses.field(default_factory=DriftConfig)


def load_online_config(path: str, overrides: Optional[Dict] = None) -> OnlineConfig:
    return load_config(path, OnlineConfig, overrides)
