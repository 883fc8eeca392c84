"""The durable event log: an append-only SQLite table in WAL mode, the embedded default store of live events.

Durability contract: `append` validates every event, writes the valid ones of a batch in ONE transaction and returns
only after that transaction commits, so an acknowledged event is on disk; a crash before the commit leaves none of
the batch behind (SQLite's atomic commit), and the client's retry of that batch writes it once. With the default
`synchronous="FULL"` the WAL is fsynced at every commit: acknowledged events survive a process kill AND a power
loss. `synchronous="NORMAL"` (faster: the WAL is fsynced only at checkpoints) still survives a killed process, as
the committed pages are in the OS page cache, but a power loss may drop the last commits.

Idempotency: each row stores its `Event.key` under a UNIQUE constraint and is inserted with `INSERT OR IGNORE`, so a
retried event (or a repeat within a batch) is acknowledged as a duplicate and not stored twice. Offsets are SQLite AUTOINCREMENT row ids: strictly
increasing, never reused, so a reader can resume from the last offset it saw.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, NamedTuple, Optional, Sequence

from tfrec.online.events import MAX_FUTURE_SECONDS, Event, validate_event

__all__ = ["Ack", "DUPLICATE", "EventLog", "LoggedEvent", "SYNCHRONOUS_MODES", "event_log_dataset"]

DUPLICATE = "duplicate: already in the log"  # the reason of an accepted event that an earlier append stored
SYNCHRONOUS_MODES = ("FULL", "NORMAL")
_COLUMNS = ("event_type", "user_id", "item_id", "timestamp", "request_id", "position", "price", "query", "arm",
            "event_id")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    timestamp REAL NOT NULL,
    request_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    price REAL,
    query TEXT NOT NULL,
    arm TEXT NOT NULL,
    event_id TEXT NOT NULL,
    logged_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, seq);
"""
_INSERT = (f"INSERT OR IGNORE INTO events (event_key, {', '.join(_COLUMNS)}, logged_at) "
           f"VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})")
_SELECT = f"SELECT seq, {', '.join(_COLUMNS)}, logged_at FROM events"


class Ack(NamedTuple):
    """The outcome of one appended event: accepted (stored now, or already stored: reason DUPLICATE) or rejected
    with the reason ("field: why")."""

    accepted: bool
    reason: str

    @property
    def is_new(self) -> bool:
        """Accepted and stored by this append (not a retry of a stored event)."""
        return self.accepted and not self.reason


class LoggedEvent(NamedTuple):
    """An event as stored: its offset in the log, the event, and the wall-clock time it was logged."""

    offset: int
    event: Event
    logged_at: float


def _row_values(e: Event) -> tuple:
    """The event's columns as plain Python values (numpy scalars do not bind to SQLite parameters)."""
    return (str(e.event_type), str(e.user_id), str(e.item_id), float(e.timestamp), str(e.request_id),
            int(e.position), None if e.price is None else float(e.price), str(e.query), str(e.arm), str(e.event_id))


def _row_to_logged(row) -> LoggedEvent:
    seq, event_type, user_id, item_id, ts, request_id, position, price, query, arm, event_id, logged_at = row
    event = Event(event_type, user_id, item_id, ts, request_id, position, price, query, arm, event_id)
    return LoggedEvent(seq, event, logged_at)


class EventLog:
    """An append-only, crash-safe log of validated events in one SQLite file (safe across threads and processes)."""

    def __init__(
        self,
        path,
        synchronous: str = "FULL",
        max_future_seconds: float = MAX_FUTURE_SECONDS,
        clock: Callable[[], float] = time.time,
        busy_timeout_seconds: float = 30.0,
    ):
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous: expected one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self.max_future_seconds = float(max_future_seconds)
        self.clock = clock
        self._busy_timeout = float(busy_timeout_seconds)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = self._connect()
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OSError(f"{self.path}: cannot switch SQLite to WAL mode (got {mode!r}); is it on a network disk?")
        self._conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(os.fspath(self.path), timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise OSError(f"{self.path}: cannot open the event log: {exc}") from exc
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    # ------------------------------------------------------------------------------------------------- writing
    def append(self, events: Sequence[Event]) -> List[Ack]:
        """Validates and durably stores a batch; one Ack per event, in order, returned after the commit.

        Valid events are committed together; invalid ones are left out with their reason (the rest still land).
        If the commit itself fails (disk full, I/O error) nothing of the batch is stored and the error is raised,
        so no event is ever acknowledged without being on disk.
        """
        events = list(events)
        now = self.clock()
        reasons = [validate_event(e, now, self.max_future_seconds) for e in events]
        acks: List[Optional[Ack]] = [None if r is None else Ack(False, r) for r in reasons]
        valid = [i for i, r in enumerate(reasons) if r is None]
        if valid:
            with self._lock:
                conn = self._conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for i in valid:
                        e = events[i]
                        stored = conn.execute(_INSERT, (e.key, *_row_values(e), now)).rowcount == 1
                        acks[i] = Ack(True, "" if stored else DUPLICATE)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        return acks  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------------- reading
    def read_batches(self, since_offset: int = 0, until: Optional[int] = None,
                     batch_size: int = 10_000) -> Iterator[List[LoggedEvent]]:
        """Stored events with since_offset < offset <= until (all newer ones when until is None), oldest first, in
        lists of at most `batch_size`. A fresh connection per call: reading never blocks the writer (WAL)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        conn = self._connect()
        try:
            last = int(since_offset)
            while True:
                bound = "" if until is None else f" AND seq <= {int(until)}"
                rows = conn.execute(f"{_SELECT} WHERE seq > ?{bound} ORDER BY seq LIMIT ?", (last, batch_size))
                batch = [_row_to_logged(r) for r in rows.fetchall()]
                if not batch:
                    return
                yield batch
                last = batch[-1].offset
        finally:
            conn.close()

    def read(self, since_offset: int = 0, until: Optional[int] = None) -> Iterator[LoggedEvent]:
        """Stored events after `since_offset` (up to offset `until` inclusive), oldest first."""
        for batch in self.read_batches(since_offset, until):
            yield from batch

    def read_user(self, user_id: str, limit: Optional[int] = None) -> List[LoggedEvent]:
        """One user's stored events, oldest first (the newest `limit` when given); served by an index."""
        conn = self._connect()
        try:
            if limit is None:
                rows = conn.execute(f"{_SELECT} WHERE user_id = ? ORDER BY seq", (user_id,)).fetchall()
            else:
                rows = conn.execute(f"{_SELECT} WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
                                    (user_id, int(limit))).fetchall()[::-1]
        finally:
            conn.close()
        return [_row_to_logged(r) for r in rows]

    def last_offset(self) -> int:
        """The offset of the newest stored event; 0 for an empty log."""
        with self._lock:
            value = self._conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        return int(value or 0)

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventLog({os.fspath(self.path)!r}, synchronous={self.synchronous})"


def event_log_dataset(log, since_offset: int = 0, until: Optional[int] = None, batch_size: Optional[int] = None,
                      event_types: Optional[Iterable[str]] = None):
    """A tf.data.Dataset over the log's events for training: dicts of the canonical events columns (`timestamp`
    int64 seconds, `price` NaN when unknown) plus `arm` and `offset`; batched when `batch_size` is given.

    `log` is an EventLog or the path of one. The log is read lazily each time the dataset is iterated, so events
    appended in between are seen by the next epoch (up to `until`).
    """
    import math

    import tensorflow as tf

    log = log if isinstance(log, EventLog) else EventLog(log)
    wanted = None if event_types is None else set(event_types)

    def rows():
        for logged in log.read(since_offset, until):
            e = logged.event
            if wanted is not None and e.event_type not in wanted:
                continue
            yield {
                "offset": logged.offset, "user_id": e.user_id, "item_id": e.item_id, "event_type": e.event_type,
                "timestamp": int(math.floor(e.timestamp)), "query": e.query, "position": e.position,
                "price": math.nan if e.price is None else e.price, "request_id": e.request_id, "arm": e.arm,
            }

    string, int64, f64 = tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.float64)
    signature = {"offset": int64, "user_id": string, "item_id": string, "event_type": string, "timestamp": int64,
                 "query": string, "position": int64, "price": f64, "request_id": string, "arm": string}
    ds = tf.data.Dataset.from_generator(rows, output_signature=signature)
    return ds.batch(batch_size) if batch_size else ds
