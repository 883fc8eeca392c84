"""Event validation and ingestion: each kind of bad event is rejected with a reason naming its field, and a rejected
event reaches neither the event log nor the user state, while the valid events of the same batch do."""

import math

import numpy as np
import pytest

from tfrec.data.schema import EVENTS_SCHEMA, Table
from tfrec.online.event_log import DUPLICATE, EventLog
from tfrec.online.events import (
    EVENT_TYPES, Event, EventValidationError, check_event, event_from_dict, events_from_table, events_to_table,
    validate_event,
)
from tfrec.online.ingest import EventIngestor
from tfrec.online.user_state import InMemoryUserStateStore, ItemInfo

NOW = 1_700_000_000.0
ITEMS = {"i1": ItemInfo("Shoes > Running", "Swift", 80.0), "i2": ItemInfo("Books > Fiction", "Lantern", 12.0)}


def ev(**kw) -> Event:
    base = dict(event_type="click", user_id="u1", item_id="i1", timestamp=NOW - 5, request_id="r1", position=2,
                price=79.0, query="running shoes")
    base.update(kw)
    return Event(**base)


BAD_EVENTS = [
    (ev(event_type="like"), "event_type: unknown event type 'like'"),
    (ev(event_type="rate"), "event_type: unknown event type 'rate'"),  # offline ratings are not live events
    (ev(user_id=""), "user_id: missing"),
    (ev(user_id="   "), "user_id: missing"),
    (ev(item_id=""), "item_id: missing"),
    (ev(user_id=None), "user_id: expected a string, got NoneType"),
    (ev(timestamp=NOW + 3600), "timestamp: 3600 s in the future"),
    (ev(timestamp=float("nan")), "timestamp: expected positive finite"),
    (ev(timestamp=-1.0), "timestamp: expected positive finite"),
    (ev(timestamp="yesterday"), "timestamp: expected positive finite"),
    (ev(position=-2), "position: expected an int >= 0"),
    (ev(position=1.5), "position: expected an int >= 0"),
    (ev(price=-3.0), "price: expected a finite number >= 0"),
    (ev(price=float("inf")), "price: expected a finite number >= 0"),
    (ev(query="x" * 2000), "query: longer than 1024 characters"),
]


@pytest.mark.parametrize("event, reason", BAD_EVENTS, ids=[r.split(":")[0] + str(i) for i, (_, r) in enumerate(BAD_EVENTS)])
def test_each_bad_event_kind_is_rejected_with_a_reason_naming_the_field(event, reason):
    got = validate_event(event, NOW)
    assert got is not None and got.startswith(reason), got
    with pytest.raises(EventValidationError) as info:
        check_event(event, NOW)
    assert info.value.field == reason.split(":")[0]


def test_valid_events_pass_including_small_clock_skew_and_unknowns():
    assert EVENT_TYPES == ("impression", "click", "add_to_cart", "purchase")
    for t in EVENT_TYPES:
        assert validate_event(ev(event_type=t), NOW) is None
    assert validate_event(ev(timestamp=NOW + 60), NOW) is None  # within the default 300 s skew
    assert validate_event(ev(timestamp=NOW + 60), NOW, max_future_seconds=10).startswith("timestamp:")
    assert validate_event(ev(position=-1, price=None, request_id="", query=""), NOW) is None
    assert validate_event(ev(position=np.int64(3), timestamp=np.float64(NOW)), NOW) is None


def test_event_from_dict_names_unknown_and_missing_fields():
    e = event_from_dict({"event_type": "purchase", "user_id": "u", "item_id": "i", "timestamp": NOW, "price": 9.5,
                         "position": 4.0})
    assert e == Event("purchase", "u", "i", NOW, price=9.5, position=4)
    with pytest.raises(EventValidationError, match=r"event 7: itemid: unknown field"):
        event_from_dict({"event_type": "click", "user_id": "u", "itemid": "i", "timestamp": NOW}, index=7)
    with pytest.raises(EventValidationError, match=r"^timestamp: missing"):
        event_from_dict({"event_type": "click", "user_id": "u", "item_id": "i"})
    assert event_from_dict({"event_type": "click", "user_id": "u", "item_id": "i", "timestamp": 1.0,
                            "price": float("nan")}).price is None


def test_events_table_round_trip_keeps_every_field():
    events = [ev(), ev(event_type="impression", item_id="i2", price=None, position=0, query="", arm="exp:b")]
    table = events_to_table(events)
    assert table.schema is EVENTS_SCHEMA and len(table) == 2 and list(table["arm"]) == ["", "exp:b"]
    assert math.isnan(table["price"][1]) and table["timestamp"].dtype == np.int64
    assert list(events_from_table(table)) == events  # whole-second timestamps: the round trip is exact
    fractional = events_to_table([ev(timestamp=NOW - 0.25)])
    assert next(events_from_table(fractional)).timestamp == math.floor(NOW - 0.25)
    rated = Table(EVENTS_SCHEMA, {"user_id": ["u"], "item_id": ["i"], "event_type": ["rate"], "timestamp": [1]})
    assert list(events_from_table(rated)) == []  # ratings are not live events


class FlakyStore(InMemoryUserStateStore):
    """Fails the first `failures` applies, as a Redis outage would."""

    def __init__(self, failures):
        super().__init__(ITEMS)
        self.failures = failures

    def _apply_groups(self, groups):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("state store down")
        super()._apply_groups(groups)


def test_ingest_applies_valid_events_and_nothing_of_rejected_ones(tmp_path):
    log = EventLog(tmp_path / "events.sqlite", clock=lambda: NOW)
    store = InMemoryUserStateStore(ITEMS)
    ingestor = EventIngestor(log, store)
    batch = [
        ev(user_id="good", item_id="i1"),
        ev(user_id="bad", item_id="i2", event_type="purchase", timestamp=NOW + 86_400),  # far future
        ev(user_id="bad", item_id="i2", event_type="wishlist"),  # unknown type
        ev(user_id="good", item_id="i2", event_type="add_to_cart", timestamp=NOW - 1),
    ]
    acks = ingestor.ingest(batch)
    assert [a.accepted for a in acks] == [True, False, False, True]
    assert acks[1].reason.startswith("timestamp:") and acks[2].reason.startswith("event_type:")
    assert [le.event.user_id for le in log.read()] == ["good", "good"]
    assert store.get("bad").is_empty and "bad" not in store.user_ids()
    good = store.get("good")
    assert good.recent_items == ["i2", "i1"] and good.counts == {"click": 1, "add_to_cart": 1}

    # A retry of the same batch is acknowledged again but neither logged nor applied twice.
    again = ingestor.ingest(batch)
    assert [a.accepted for a in again] == [True, False, False, True] and again[0].reason == DUPLICATE
    assert len(log) == 2 and store.get("good").counts == {"click": 1, "add_to_cart": 1}


def test_ingest_records_rejects_malformed_records_and_keeps_the_rest(tmp_path):
    ingestor = EventIngestor(EventLog(tmp_path / "e.sqlite", clock=lambda: NOW), InMemoryUserStateStore(ITEMS))
    acks = ingestor.ingest_records([
        {"event_type": "click", "user_id": "u", "item_id": "i1", "timestamp": NOW},
        {"event_type": "click", "user_id": "u", "timestamp": NOW},
        {"event_type": "click", "user_id": "u", "item_id": "i2", "timestamp": NOW, "colour": "red"},
        "not a mapping",
    ])
    assert acks[0].accepted and acks[0].is_new
    assert acks[1] == (False, "item_id: missing")
    assert not acks[2].accepted and acks[2].reason.startswith("colour: unknown field")
    assert not acks[3].accepted and acks[3].reason.startswith("event: expected a mapping")
    assert len(ingestor.event_log) == 1


def test_state_failure_after_the_log_commit_is_retried_not_lost(tmp_path):
    store = FlakyStore(failures=1)
    ingestor = EventIngestor(EventLog(tmp_path / "e.sqlite", clock=lambda: NOW), store)
    assert ingestor.ingest([ev(item_id="i1")])[0].is_new  # durable, so acknowledged, though the state failed
    assert ingestor.pending == 1 and store.get("u1").is_empty
    ingestor.ingest([ev(item_id="i2", timestamp=NOW - 2)])
    assert ingestor.pending == 0
    assert store.get("u1").recent_items == ["i2", "i1"] and store.get("u1").counts == {"click": 2}
