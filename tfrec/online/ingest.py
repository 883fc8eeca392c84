"""Event ingestion: validate -> durable log append -> user-state update, the path behind the service's LogEvents.

Nothing is half-applied: an event the log rejects (bad type, missing id, timestamp far in the future, ...) touches
neither the log nor the state; an accepted event is on disk before it is acknowledged; a retried event (already in
the log) is acknowledged again but not folded into the state twice. If the state store fails after the log commit
(Redis unreachable), the events stay queued in the ingestor and are applied before the next batch, so the state
catches up with the log instead of silently missing them; `restore_state` rebuilds a store from the log at start-up.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable, List, Mapping, Optional, Sequence

from tfrec.online.config import UserStateConfig
from tfrec.online.event_log import Ack, EventLog
from tfrec.online.events import Event, EventValidationError, event_from_dict
from tfrec.online.user_state import InMemoryUserStateStore, UserStateStore

__all__ = ["EventIngestor", "make_user_state_store", "restore_state"]

log = logging.getLogger(__name__)


class EventIngestor:
    """Takes batches of live events and returns one Ack per event: (accepted, reason)."""

    def __init__(self, event_log: EventLog, state_store: UserStateStore):
        self.event_log = event_log
        self.state_store = state_store
        self._pending: List[Event] = []
        self._lock = threading.Lock()

    def ingest(self, events: Sequence[Event]) -> List[Ack]:
        """Logs the valid events of the batch durably, then folds the newly logged ones into the user state."""
        events = list(events)
        acks = self.event_log.append(events)
        self._apply([e for e, ack in zip(events, acks) if ack.is_new])
        return acks

    def ingest_records(self, records: Iterable[Mapping]) -> List[Ack]:
        """As `ingest`, from JSON-like mappings; a record that is not an event (unknown or missing field) is
        rejected with its reason like any invalid event, and the rest of the batch still goes through."""
        acks: List[Optional[Ack]] = []
        events, positions = [], []
        for i, record in enumerate(records):
            try:
                events.append(event_from_dict(record))
                positions.append(i)
                acks.append(None)
            except (EventValidationError, TypeError) as exc:
                reason = f"{exc.field}: {exc.reason}" if isinstance(exc, EventValidationError) else f"event: {exc}"
                acks.append(Ack(False, reason))
        for i, ack in zip(positions, self.ingest(events)):
            acks[i] = ack
        return acks  # type: ignore[return-value]

    def _apply(self, new: List[Event]) -> None:
        with self._lock:
            batch, self._pending = self._pending + new, []
            if not batch:
                return
            try:
                self.state_store.apply(batch)
            except Exception:  # noqa: BLE001 - the events are durable; keep them for the next attempt
                self._pending = batch
                log.exception("user-state update failed; %d logged events queued for the next batch", len(batch))

    @property
    def pending(self) -> int:
        """Logged events whose state update has not succeeded yet."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Retries the queued state updates now; returns how many are still pending."""
        self._apply([])
        return self.pending


def restore_state(event_log: EventLog, store: UserStateStore, since_offset: int = 0,
                  until: Optional[int] = None, batch_size: int = 10_000, progress: bool = False) -> int:
    """Folds the log's events after `since_offset` into `store` (e.g. an in-memory store after a restart) and
    returns the last offset applied (since_offset when there was nothing new)."""
    last = since_offset
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = max(event_log.last_offset() - since_offset, 0)
        bar = tqdm(total=total, unit="event", desc="user state from the event log")
    for batch in event_log.read_batches(since_offset, until, batch_size):
        store.apply(logged.event for logged in batch)
        if bar is not None:
            bar.update(batch[-1].offset - last)
        last = batch[-1].offset
    if bar is not None:
        bar.close()
    return last


def make_user_state_store(config: UserStateConfig, item_metadata) -> UserStateStore:
    """The store `config.backend` names: in-process, or Redis at `config.redis_url`."""
    if config.backend == "redis":
        from tfrec.online.redis_state import RedisUserStateStore

        return RedisUserStateStore(config.redis_url, item_metadata, config)
    return InMemoryUserStateStore(item_metadata, config)
