"""The user-state store on Redis, for several service replicas sharing one view of every shopper.

Each user is one key (`<prefix><user_id>`) holding the state as JSON. `apply` is an optimistic transaction: WATCH the
batch's keys, read them, fold the events in Python with the same `apply_events` the in-memory store uses, and
MULTI/SET/EXEC; if another writer touched one of the keys in between, Redis aborts the EXEC and the batch is
re-read and re-folded, so concurrent replicas never lose an update. One batch is one transaction, so on Redis Cluster
the keys of a batch must share a slot (use a `{tag}` in the prefix) or batches must hold one user.
"""

from __future__ import annotations

import json
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

from tfrec.online.config import UserStateConfig
from tfrec.online.events import Event
from tfrec.online.user_state import UserState, UserStateStore

__all__ = ["RedisUserStateStore", "StateConflictError"]


class StateConflictError(RuntimeError):
    """A batch kept colliding with other writers and was not applied after every retry."""


def _redis_module():
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - redis is in install_requires
        raise ImportError("RedisUserStateStore needs the `redis` package: pip install redis") from exc
    return redis


class RedisUserStateStore(UserStateStore):
    """User states in Redis. `client_or_url` is a `redis.Redis` client or a URL such as redis://127.0.0.1:6379/0."""

    def __init__(
        self,
        client_or_url,
        item_metadata: Mapping[str, Sequence],
        config: Optional[UserStateConfig] = None,
        key_prefix: Optional[str] = None,
        ttl_seconds: Optional[int] = None,
        max_retries: int = 100,
    ):
        super().__init__(item_metadata, config)
        redis = _redis_module()
        self._watch_error = redis.WatchError
        if isinstance(client_or_url, str):
            self.client = redis.Redis.from_url(client_or_url)
            self._owns_client = True
        else:
            self.client = client_or_url
            self._owns_client = False
        self.key_prefix = self.config.redis_key_prefix if key_prefix is None else key_prefix
        self.ttl_seconds = self.config.redis_ttl_seconds if ttl_seconds is None else ttl_seconds
        self.max_retries = int(max_retries)
        self.conflicts = 0  # transactions retried because another writer touched a key first

    def key(self, user_id: str) -> str:
        return self.key_prefix + user_id

    @property
    def _pattern(self) -> str:
        """The SCAN pattern of this store's keys (glob characters of the prefix escaped)."""
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.key_prefix) + "*"

    @staticmethod
    def _decode(raw) -> Optional[UserState]:
        return None if raw is None else UserState.from_dict(json.loads(raw))

    @staticmethod
    def _encode(state: UserState) -> str:
        return json.dumps(state.to_dict(), separators=(",", ":"))

    def _apply_groups(self, groups: Dict[str, List[Event]]) -> None:
        users = list(groups)
        keys = [self.key(u) for u in users]
        with self.client.pipeline(transaction=True) as pipe:
            for _ in range(self.max_retries):
                try:
                    pipe.watch(*keys)
                    stored = pipe.mget(keys)  # immediate-mode read while watching
                    states = [self.fold(self._decode(raw) or UserState(u), groups[u]) for u, raw in zip(users, stored)]
                    pipe.multi()
                    for key, state in zip(keys, states):
                        pipe.set(key, self._encode(state), ex=self.ttl_seconds)
                    pipe.execute()
                    return
                except self._watch_error:
                    self.conflicts += 1
                    continue  # another writer changed one of the keys: re-read and re-fold
        raise StateConflictError(f"user-state batch for {len(users)} users still conflicted after "
                                 f"{self.max_retries} retries")

    def _load(self, user_id: str) -> Optional[UserState]:
        return self._decode(self.client.get(self.key(user_id)))

    def get_many(self, user_ids: Sequence[str], now: Optional[float] = None) -> List[UserState]:
        """One MGET round trip for many users."""
        raws = self.client.mget([self.key(u) for u in user_ids]) if user_ids else []
        states = [self._decode(raw) or UserState(u) for u, raw in zip(user_ids, raws)]
        if now is None:
            return states
        return [s.decayed(now, self.config.half_life_seconds) for s in states]

    def user_ids(self) -> Iterator[str]:
        n = len(self.key_prefix)
        for key in self.client.scan_iter(match=self._pattern, count=1000):
            key = key.decode("utf-8") if isinstance(key, bytes) else key
            yield key[n:]

    def delete_all(self) -> int:
        """Removes every state under this store's prefix (tests, re-building from the event log)."""
        keys = list(self.client.scan_iter(match=self._pattern, count=1000))
        return int(self.client.delete(*keys)) if keys else 0

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

