"""User profiles built from behaviour: top categories and brands with weights, price band, activity, and predicted
interests, for one user on request or for every user in the event log as a batch job.

Weights are shares of the user's time-decayed affinity (they sum to 1 over all the user's categories / brands).
Predicted interests are the categories the user has NOT engaged with yet that shoppers with similar tastes engage
with: with x_u the affinity shares of user u, categories a and b are similar by the cosine over all users

    sim(a, b) = sum_u x_ua x_ub / (||x_.a|| ||x_.b||)

and a new category c scores sum_a x_a sim(a, c) for the user's shares x. This is item-to-item collaborative filtering
at the category level: it needs no model, only the log, and the tests check it predicts the categories a user
engages with later better than category popularity does.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from tfrec.online.config import UserStateConfig
from tfrec.online.event_log import EventLog
from tfrec.online.events import EVENT_TYPES, Event
from tfrec.online.ingest import restore_state
from tfrec.online.user_state import InMemoryUserStateStore, UserState, apply_events

__all__ = ["CategoryCooccurrence", "UserProfile", "build_all_profiles", "build_profile", "fold_states", "load_profiles"]

Weighted = List[Tuple[str, float]]


@dataclasses.dataclass
class UserProfile:
    """What a shopper is like, from what they did: the answer of `tfrec profile USER` and the profile API."""

    user_id: str
    top_categories: Weighted
    top_brands: Weighted
    price_band: Optional[Tuple[float, float]]
    activity: Dict[str, Any]
    predicted_interests: Weighted
    recent_items: List[str] = dataclasses.field(default_factory=list)
    recent_queries: List[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UserProfile":
        values = dict(data)
        for name in ("top_categories", "top_brands", "predicted_interests"):
            values[name] = [(str(k), float(v)) for k, v in values.get(name, [])]
        if values.get("price_band") is not None:
            values["price_band"] = tuple(values["price_band"])
        return cls(**values)


def _shares(affinity: Mapping[str, float]) -> Dict[str, float]:
    total = sum(v for v in affinity.values() if v > 0)
    return {k: v / total for k, v in affinity.items() if v > 0} if total > 0 else {}


def _top(weights: Mapping[str, float], k: int) -> Weighted:
    return [(name, round(w, 6)) for name, w in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


class CategoryCooccurrence:
    """Cosine similarity between categories over users' affinity shares (see the module docstring)."""

    def __init__(self, categories: Sequence[str], similarity: np.ndarray, popularity: np.ndarray):
        self.categories = list(categories)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.similarity = similarity
        self.popularity = popularity  # summed shares per category: the no-personalisation baseline

    @classmethod
    def from_states(cls, states: Iterable[UserState]) -> "CategoryCooccurrence":
        rows = [_shares(s.category_affinity) for s in states]
        categories = sorted({c for r in rows for c in r})
        index = {c: i for i, c in enumerate(categories)}
        n = len(categories)
        gram = np.zeros((n, n))
        popularity = np.zeros(n)
        for r in rows:
            if not r:
                continue
            idx = np.fromiter((index[c] for c in r), dtype=np.int64, count=len(r))
            x = np.fromiter(r.values(), dtype=np.float64, count=len(r))
            gram[np.ix_(idx, idx)] += np.outer(x, x)
            popularity[idx] += x
        norm = np.sqrt(np.diag(gram))
        with np.errstate(divide="ignore", invalid="ignore"):
            similarity = np.where(np.outer(norm, norm) > 0, gram / np.outer(norm, norm), 0.0)
        return cls(categories, similarity, popularity)

    def predict(self, affinity: Mapping[str, float], k: int) -> Weighted:
        """The k best categories the user has not engaged with, scored by similarity to their shares; users with
        no known category get the most popular ones."""
        shares = _shares(affinity)
        known = [(self.index[c], w) for c, w in shares.items() if c in self.index]
        if known:
            idx, w = np.array([i for i, _ in known]), np.array([w for _, w in known])
            scores = w @ self.similarity[idx]
        else:
            total = self.popularity.sum()
            scores = self.popularity / total if total > 0 else np.zeros(len(self.categories))
        candidates = {c: float(scores[i]) for c, i in self.index.items() if c not in shares and scores[i] > 0}
        return _top(candidates, k)


def _activity(state: UserState) -> Dict[str, Any]:
    counts = {t: int(state.counts.get(t, 0)) for t in EVENT_TYPES}
    imp, click, purchase = counts["impression"], counts["click"], counts["purchase"]
    return {
        "events": sum(counts.values()),
        **counts,
        "first_seen": state.first_seen or None,
        "last_seen": state.updated_at or None,
        "click_rate": round(click / imp, 6) if imp else None,
        "purchase_per_click": round(purchase / click, 6) if click else None,
    }


def build_profile(
    source: Union[UserState, Sequence[Event]],
    item_metadata: Optional[Mapping[str, Sequence]] = None,
    cooccurrence: Optional[CategoryCooccurrence] = None,
    state_config: Optional[UserStateConfig] = None,
    top_k: int = 5,
    predicted: int = 5,
) -> UserProfile:
    """The profile of one user from their state, or from their events (folded with `item_metadata`)."""
    if isinstance(source, UserState):
        state = source
    else:
        events = list(source)
        users = {e.user_id for e in events}
        if len(users) != 1:
            raise ValueError(f"build_profile needs the events of exactly one user, got {len(users)} users")
        if item_metadata is None:
            raise ValueError("build_profile from events needs item_metadata (item_id -> category, brand, price)")
        state = apply_events(UserState(users.pop()), events, item_metadata, state_config or UserStateConfig())
    interests = cooccurrence.predict(state.category_affinity, predicted) if cooccurrence is not None else []
    return UserProfile(
        user_id=state.user_id,
        top_categories=_top(_shares(state.category_affinity), top_k),
        top_brands=_top(_shares(state.brand_affinity), top_k),
        price_band=None if state.price_band is None else tuple(round(p, 2) for p in state.price_band),
        activity=_activity(state),
        predicted_interests=interests,
        recent_items=list(state.recent_items[:top_k]),
        recent_queries=list(state.recent_queries[:top_k]),
    )


def fold_states(events: Union[EventLog, Iterable[Event]], item_metadata: Mapping[str, Sequence],
                state_config: Optional[UserStateConfig] = None, progress: bool = False) -> InMemoryUserStateStore:
    """Every user's state from an event log (read in offset order) or from an iterable of events."""
    store = InMemoryUserStateStore(item_metadata, state_config)
    if isinstance(events, EventLog):
        restore_state(events, store, progress=progress)
    else:
        store.apply(events)
    return store


def build_all_profiles(
    events: Union[EventLog, Iterable[Event]],
    item_metadata: Mapping[str, Sequence],
    output,
    state_config: Optional[UserStateConfig] = None,
    top_k: int = 5,
    predicted: int = 5,
    progress: bool = True,
) -> int:
    """Writes every user's profile as JSON lines (sorted by user_id) to `output`; returns the number written.

    The file is written beside its final name and renamed into place, so readers never see half a file.
    """
    from tqdm.auto import tqdm

    store = fold_states(events, item_metadata, state_config, progress=progress)
    users = sorted(store.user_ids())
    states = [store.get(u) for u in users]
    cooccurrence = CategoryCooccurrence.from_states(states)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for state in tqdm(states, unit="user", desc="profiles", disable=not progress):
            profile = build_profile(state, cooccurrence=cooccurrence, top_k=top_k, predicted=predicted)
            f.write(json.dumps(profile.to_dict(), ensure_ascii=False) + "\n")
    os.replace(tmp, output)
    return len(states)


def load_profiles(path) -> Dict[str, UserProfile]:
    """user_id -> profile from a file `build_all_profiles` wrote; a bad line is a ValueError naming file and line."""
    profiles = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                profile = UserProfile.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}: line {line_no}: not a user profile: {exc}") from None
            profiles[profile.user_id] = profile
    return profiles
