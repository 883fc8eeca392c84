"""Real-time user state: what a shopper did lately, folded from live events the moment they are ingested, so the
next Search / Recommend request already sees the click that happened a second ago.

Affinities decay exponentially with a half-life h: after events (t_i, w_i) on a category, its affinity at time T is

    a(T) = sum_i w_i * 2 ** (-(T - t_i) / h)

where w_i is the event type's weight (configs/online.yaml `user_state.event_weights`). The state stores a(updated_at)
with updated_at the newest event time; a newer event first scales every affinity by 2 ** (-(t - updated_at) / h) and
then adds its weight, an older (out-of-order) event adds its weight already decayed to updated_at, so the result
does not depend on arrival order. The price band is exp(mu -+ max(sigma, min_spread)) from the same decayed weights'
mean mu and standard deviation sigma of log-price over engaged items.

`UserStateStore` is the interface the services read; `InMemoryUserStateStore` is the embedded default and
`tfrec.online.redis_state.RedisUserStateStore` the shared one. Both fold events with the same `apply_events`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import threading
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from tfrec.data.schema import Table, is_missing
from tfrec.online.config import UserStateConfig
from tfrec.online.events import Event

__all__ = [
    "InMemoryUserStateStore", "ItemInfo", "UserState", "UserStateStore", "apply_events", "decay_factor",
    "group_by_user", "item_metadata_from_catalog",
]


class ItemInfo(NamedTuple):
    """What the state needs to know about an item: its category path, brand and list price (None if unknown)."""

    category: str
    brand: str
    price: Optional[float]


def item_metadata_from_catalog(catalog: Table) -> Dict[str, ItemInfo]:
    """item_id -> ItemInfo for every catalog row (NaN prices become None)."""
    ids, cats, brands, prices = catalog["item_id"], catalog["category"], catalog["brand"], catalog["price"]
    return {str(i): ItemInfo(str(c), str(b), None if is_missing(float(p)) else float(p))
            for i, c, b, p in zip(ids, cats, brands, prices)}


def decay_factor(seconds: float, half_life_seconds: float) -> float:
    """2 ** (-seconds / half_life): how much weight is left after `seconds`."""
    return 2.0 ** (-max(seconds, 0.0) / half_life_seconds)


@dataclasses.dataclass
class UserState:
    """A shopper's live state. Lists are most recent first; affinities are as of `updated_at` (newest event time).

    `recent_item_times` / `recent_query_times` align with the lists (the newest time each was seen);
    `price_moments` are the decayed (sum w, sum w*log p, sum w*(log p)^2) the price band comes from.
    """

    user_id: str
    recent_items: List[str] = dataclasses.field(default_factory=list)
    recent_queries: List[str] = dataclasses.field(default_factory=list)
    category_affinity: Dict[str, float] = dataclasses.field(default_factory=dict)
    brand_affinity: Dict[str, float] = dataclasses.field(default_factory=dict)
    price_band: Optional[Tuple[float, float]] = None
    updated_at: float = 0.0
    counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    first_seen: float = 0.0
    recent_item_times: List[float] = dataclasses.field(default_factory=list)
    recent_query_times: List[float] = dataclasses.field(default_factory=list)
    price_moments: Tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def is_empty(self) -> bool:
        """No event has been applied for this user."""
        return not self.counts

    def decayed(self, now: float, half_life_seconds: float) -> "UserState":
        """A copy with the affinities decayed from `updated_at` to `now` (unchanged when now <= updated_at)."""
        out = self.copy()
        if now > self.updated_at and not self.is_empty:
            f = decay_factor(now - self.updated_at, half_life_seconds)
            out.category_affinity = {k: v * f for k, v in self.category_affinity.items()}
            out.brand_affinity = {k: v * f for k, v in self.brand_affinity.items()}
        return out

    def copy(self) -> "UserState":
        """A copy sharing nothing mutable with this state (cheaper than deepcopy: it sits on the request path)."""
        return dataclasses.replace(
            self, recent_items=list(self.recent_items), recent_queries=list(self.recent_queries),
            category_affinity=dict(self.category_affinity), brand_affinity=dict(self.brand_affinity),
            counts=dict(self.counts), recent_item_times=list(self.recent_item_times),
            recent_query_times=list(self.recent_query_times))

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UserState":
        values = dict(data)
        if values.get("price_band") is not None:
            values["price_band"] = tuple(values["price_band"])
        values["price_moments"] = tuple(values.get("price_moments", (0.0, 0.0, 0.0)))
        return cls(**values)


def _upsert_recent(items: List[str], times: List[float], key: str, t: float, limit: int) -> None:
    """Puts `key` seen at time t into a most-recent-first list, in place (one entry per key, its newest time kept;
    among equal times the key seen last comes first)."""
    if key in items:
        i = items.index(key)
        if times[i] > t:
            return
        del items[i], times[i]
    j = 0
    while j < len(times) and times[j] > t:  # usually 0: live events arrive newest last
        j += 1
    items.insert(j, key)
    times.insert(j, t)
    del items[limit:], times[limit:]


def _top(affinity: Dict[str, float], limit: int) -> Dict[str, float]:
    if len(affinity) <= limit:
        return affinity
    return dict(sorted(affinity.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])


def _price_band(moments: Tuple[float, float, float], min_spread: float) -> Optional[Tuple[float, float]]:
    s0, s1, s2 = moments
    if s0 <= 0:
        return None
    mu = s1 / s0
    sigma = math.sqrt(max(s2 / s0 - mu * mu, 0.0))
    spread = max(sigma, min_spread)
    return (math.exp(mu - spread), math.exp(mu + spread))


def apply_events(state: UserState, events: Sequence[Event], items: Mapping[str, Sequence],
                 config: UserStateConfig) -> UserState:
    """`state` with `events` (all of this user) folded in, as a new state; the fold every store uses."""
    out = state.copy()
    h = config.half_life_seconds
    for e in sorted(events, key=lambda ev: ev.timestamp):
        t = float(e.timestamp)
        out.counts[e.event_type] = out.counts.get(e.event_type, 0) + 1
        out.first_seen = t if not out.first_seen else min(out.first_seen, t)
        if t > out.updated_at:
            f = decay_factor(t - out.updated_at, h) if out.updated_at else 0.0
            out.category_affinity = {k: v * f for k, v in out.category_affinity.items()}
            out.brand_affinity = {k: v * f for k, v in out.brand_affinity.items()}
            out.price_moments = tuple(m * f for m in out.price_moments)
            out.updated_at = t
        if e.query:
            _upsert_recent(out.recent_queries, out.recent_query_times, e.query, t, config.recent_queries)
        weight = config.weight(e.event_type)
        if weight <= 0:
            continue
        w = weight * decay_factor(out.updated_at - t, h)
        _upsert_recent(out.recent_items, out.recent_item_times, e.item_id, t, config.recent_items)
        info = items.get(e.item_id)
        category, brand, list_price = (info[0], info[1], info[2]) if info is not None else ("", "", None)
        if category:
            out.category_affinity[category] = out.category_affinity.get(category, 0.0) + w
        if brand:
            out.brand_affinity[brand] = out.brand_affinity.get(brand, 0.0) + w
        price = e.price if e.price is not None else list_price
        if price is not None and price > 0:
            x = math.log(price)
            s0, s1, s2 = out.price_moments
            out.price_moments = (s0 + w, s1 + w * x, s2 + w * x * x)
    out.category_affinity = _top(out.category_affinity, config.max_affinities)
    out.brand_affinity = _top(out.brand_affinity, config.max_affinities)
    out.price_band = _price_band(out.price_moments, config.min_price_spread)
    return out


def group_by_user(events: Iterable[Event]) -> Dict[str, List[Event]]:
    """Events grouped by user_id, each group in arrival order (users in order of first appearance)."""
    groups: Dict[str, List[Event]] = {}
    for e in events:
        groups.setdefault(e.user_id, []).append(e)
    return groups


class UserStateStore(abc.ABC):
    """Where live user states live: `apply` folds validated events in, `get` reads one user's state (an empty state
    for a user never seen). Implementations differ only in storage; the fold is `apply_events`."""

    def __init__(self, item_metadata: Mapping[str, Sequence], config: Optional[UserStateConfig] = None):
        self.item_metadata = item_metadata
        self.config = config or UserStateConfig()

    def apply(self, events: Iterable[Event]) -> None:
        """Folds already-validated events into their users' states; a batch may span many users."""
        groups = group_by_user(events)
        if groups:
            self._apply_groups(groups)

    def get(self, user_id: str, now: Optional[float] = None) -> UserState:
        """The user's state (a copy the caller may keep); with `now`, affinities decayed to that time."""
        state = self._load(user_id) or UserState(user_id)
        return state.decayed(now, self.config.half_life_seconds) if now is not None else state

    def get_many(self, user_ids: Sequence[str], now: Optional[float] = None) -> List[UserState]:
        return [self.get(u, now) for u in user_ids]

    def fold(self, state: UserState, events: Sequence[Event]) -> UserState:
        return apply_events(state, events, self.item_metadata, self.config)

    @abc.abstractmethod
    def _apply_groups(self, groups: Dict[str, List[Event]]) -> None:
        """Folds each user's events into the stored state, atomically per user."""

    @abc.abstractmethod
    def _load(self, user_id: str) -> Optional[UserState]:
        """The stored state, or None."""

    @abc.abstractmethod
    def user_ids(self) -> Iterable[str]:
        """Every user with a stored state."""

    def close(self) -> None:
        """Releases connections (nothing for the in-memory store)."""


class InMemoryUserStateStore(UserStateStore):
    """The embedded store: a dict in this process, guarded by a lock (the service's gRPC threads share it)."""

    def __init__(self, item_metadata: Mapping[str, Sequence], config: Optional[UserStateConfig] = None):
        super().__init__(item_metadata, config)
        self._states: Dict[str, UserState] = {}
        self._lock = threading.Lock()

    def _apply_groups(self, groups: Dict[str, List[Event]]) -> None:
        with self._lock:
            for user_id, events in groups.items():
                self._states[user_id] = self.fold(self._states.get(user_id) or UserState(user_id), events)

    def _load(self, user_id: str) -> Optional[UserState]:
        with self._lock:
            state = self._states.get(user_id)
            return state.copy() if state is not None else None

    def user_ids(self) -> List[str]:
        with self._lock:
            return list(self._states)

    def __len__(self) -> int:
        return len(self._states)
