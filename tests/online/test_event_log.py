"""The durable event log: exact round trips, offsets, idempotent retries, crash safety under SIGKILL, and the
tf.data view used for training."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfrec.online.event_log import DUPLICATE, EventLog, event_log_dataset
from tfrec.online.events import Event
from tfrec.online.ingest import restore_state
from tfrec.online.user_state import InMemoryUserStateStore, ItemInfo

NOW = 1_700_000_000.0


def make_events(n, start=0, user="u"):
    return [Event(("impression", "click", "add_to_cart", "purchase")[i % 4], f"{user}{i % 3}", f"i{i}",
                  NOW - 1000 + i + 0.5, request_id=f"r{i // 4}", position=i % 10, price=None if i % 5 else 9.99 + i,
                  query="" if i % 2 else f"query {i}", arm="exp:a" if i % 3 else "")
            for i in range(start, start + n)]


def test_append_then_read_is_exact_with_increasing_offsets(tmp_path):
    path = tmp_path / "log" / "events.sqlite"  # the parent directory is created
    events = make_events(25)
    with EventLog(path, clock=lambda: NOW) as log:
        acks = log.append(events)
        assert all(a.accepted and a.is_new for a in acks)
        assert log.last_offset() == 25 and len(log) == 25
    reopened = EventLog(path)  # a new process would see the same
    logged = list(reopened.read())
    assert [le.event for le in logged] == events
    assert [le.offset for le in logged] == list(range(1, 26))
    assert all(le.logged_at == NOW for le in logged)
    assert [le.offset for le in reopened.read(since_offset=20)] == [21, 22, 23, 24, 25]
    assert [le.offset for le in reopened.read(since_offset=3, until=6)] == [4, 5, 6]
    batches = list(reopened.read_batches(batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [le.event.item_id for le in reopened.read_user("u1")] == [f"i{i}" for i in range(1, 25, 3)]
    assert [le.event.item_id for le in reopened.read_user("u1", limit=2)] == ["i19", "i22"]


def test_wal_mode_and_full_sync_are_on(tmp_path):
    log = EventLog(tmp_path / "e.sqlite", clock=lambda: NOW)
    conn = sqlite3.connect(tmp_path / "e.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert EventLog(tmp_path / "n.sqlite", synchronous="NORMAL")._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    with pytest.raises(ValueError, match="synchronous"):
        EventLog(tmp_path / "x.sqlite", synchronous="OFF")


def test_retries_and_in_batch_repeats_are_stored_once(tmp_path):
    log = EventLog(tmp_path / "e.sqlite", clock=lambda: NOW)
    events = make_events(6)
    acks = log.append(events[:4] + [events[1]])  # the same event twice in one batch
    assert [a.reason for a in acks] == ["", "", "", "", DUPLICATE]
    acks = log.append(events)  # a client retrying a batch whose ack it lost
    assert [a.reason for a in acks] == [DUPLICATE] * 4 + ["", ""]
    assert len(log) == 6 and [le.event for le in log.read()] == events
    # An explicit event_id is the identity: same id, other fields -> duplicate; same fields, new id -> new.
    first = Event("click", "u", "i", NOW, event_id="e-1")
    assert log.append([first])[0].is_new
    assert log.append([Event("click", "u", "other", NOW, event_id="e-1")])[0].reason == DUPLICATE
    assert log.append([Event("click", "u", "i", NOW, event_id="e-2")])[0].is_new


def test_invalid_events_are_left_out_of_the_batch_commit(tmp_path):
    log = EventLog(tmp_path / "e.sqlite", clock=lambda: NOW, max_future_seconds=60)
    good, future = make_events(1)[0], Event("click", "u", "i", NOW + 120)
    acks = log.append([good, future])
    assert acks[0].is_new and not acks[1].accepted and acks[1].reason.startswith("timestamp: 120 s in the future")
    assert [le.event for le in log.read()] == [good]


WRITER = textwrap.dedent("""
    import sys
    from tfrec.online.event_log import EventLog
    from tfrec.online.events import Event
    path, first, last, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    log = EventLog(path)
    print("READY", flush=True)
    for b in range(first, last):
        # no event_id: identity is (user, request, type, item, timestamp), as for a client that retries a batch
        batch = [Event("click", f"u{j % 7}", f"b{b}-{j}", 1.7e9 + b + j / 1000, request_id=f"req{b}", position=j)
                 for j in range(size)]
        acks = log.append(batch)
        assert all(a.accepted for a in acks), acks
        print(f"ACK {b} {sum(a.is_new for a in acks)}", flush=True)
""")


def _writer(path, first, last, size):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(first), str(last), str(size)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def test_sigkilled_writer_loses_no_acknowledged_event_and_a_retry_duplicates_nothing(tmp_path):
    path, size = tmp_path / "events.sqlite", 50
    writer = _writer(path, 0, 5000, size)  # far more than it can write before the kill
    acked = []
    assert writer.stdout.readline().strip() == "READY"
    for line in writer.stdout:  # kill it mid-stream, while it is writing the next batches
        acked.append(int(line.split()[1]))
        if len(acked) == 30:
            writer.send_signal(signal.SIGKILL)
            break
    writer.wait(timeout=60)
    assert writer.returncode == -signal.SIGKILL
    assert acked == list(range(30))

    log = EventLog(path)
    per_batch = {}
    for le in log.read():
        b = int(le.event.item_id[1:].split("-")[0])
        per_batch[b] = per_batch.get(b, 0) + 1
    for b in acked:
        assert per_batch.get(b) == size, f"acknowledged batch {b} lost events after the kill"
    # Batches the client saw no ack for were in flight: each is all there or absent (atomic commit), never partial.
    assert all(n == size for n in per_batch.values())
    landed = max(per_batch)
    assert sorted(per_batch) == list(range(landed + 1))

    # Restart: the client retries everything it has no ack for, from the first unacknowledged batch on.
    end = landed + 5
    restarted = _writer(path, acked[-1] + 1, end, size)
    lines = restarted.stdout.read().split("\n")
    assert restarted.wait(timeout=120) == 0, lines
    new_counts = {int(l.split()[1]): int(l.split()[2]) for l in lines if l.startswith("ACK")}
    assert sorted(new_counts) == list(range(acked[-1] + 1, end))
    for b, n in new_counts.items():  # batches that landed before the kill are pure duplicates now
        assert n == (0 if b <= landed else size), (b, n, landed)
    items = [le.event.item_id for le in log.read()]
    assert len(items) == len(set(items)) == end * size
    offsets = [le.offset for le in log.read()]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_restore_state_rebuilds_the_same_state_as_live_ingestion(tmp_path):
    items = {f"i{i}": ItemInfo(f"C{i % 4}", f"B{i % 3}", 10.0 + i) for i in range(40)}
    log = EventLog(tmp_path / "e.sqlite", clock=lambda: NOW)
    live = InMemoryUserStateStore(items)
    events = make_events(40)
    for i in range(0, 40, 7):
        log.append(events[i:i + 7])
        live.apply(events[i:i + 7])
    rebuilt = InMemoryUserStateStore(items)
    assert restore_state(log, rebuilt, batch_size=9) == 40
    for u in live.user_ids():
        assert rebuilt.get(u) == live.get(u)
    partial = InMemoryUserStateStore(items)
    assert restore_state(log, partial, until=20) == 20
    assert restore_state(log, partial, since_offset=20) == 40
    assert all(partial.get(u) == live.get(u) for u in live.user_ids())


def test_event_log_dataset_yields_canonical_columns(tmp_path):
    log = EventLog(tmp_path / "e.sqlite", clock=lambda: NOW)
    events = make_events(12)
    log.append(events)
    rows = list(event_log_dataset(log, since_offset=2).as_numpy_iterator())
    assert [r["offset"] for r in rows] == list(range(3, 13))
    first, e = rows[0], events[2]
    assert first["user_id"].decode() == e.user_id and first["event_type"].decode() == e.event_type
    assert first["timestamp"] == int(np.floor(e.timestamp)) and first["position"] == e.position
    assert np.isnan(first["price"]) == (e.price is None) and first["arm"].decode() == e.arm
    batched = list(event_log_dataset(str(tmp_path / "e.sqlite"), batch_size=5, event_types=["click"]))
    assert [len(b["item_id"]) for b in batched] == [3]
    assert [x.decode() for x in batched[0]["event_type"].numpy()] == ["click"] * 3
    log.append(make_events(4, start=12))  # read lazily: the next pass sees new events
    assert sum(1 for _ in event_log_dataset(log)) == 16
