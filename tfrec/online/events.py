"""Live shopper events (impressions, clicks, add-to-cart, purchases) and the checks every one passes before it is
logged or applied, so a bad event is rejected whole with a reason naming its field instead of half-applied.

The names are the canonical events schema's (`tfrec.data.schema.EVENTS_SCHEMA`): the same `event_type`, `user_id`,
`item_id`, `timestamp`, `request_id`, `position`, `price` and `query` a training set has, so logged traffic can be
turned back into training data without renaming anything. `arm` is the A/B arm that served the request.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional

import numpy as np

from tfrec.data.schema import EVENTS_SCHEMA, NAN, EventType, Table, is_missing

__all__ = [
    "EVENT_TYPES", "MAX_FUTURE_SECONDS", "MAX_TEXT_LENGTH", "Event", "EventValidationError", "check_event",
    "event_from_dict", "events_from_table", "events_to_table", "validate_event",
]

# The live event types: the canonical schema's minus `rate`, which only offline rating data sets carry.
EVENT_TYPES = tuple(t.value for t in (EventType.IMPRESSION, EventType.CLICK, EventType.ADD_TO_CART, EventType.PURCHASE))
MAX_FUTURE_SECONDS = 300.0  # clock skew tolerated between a client and the service
MAX_TEXT_LENGTH = 1024  # ids and queries longer than this are rejected (a bound on what one event may store)
_TEXT_FIELDS = ("user_id", "item_id", "request_id", "query", "arm", "event_id")


class EventValidationError(ValueError):
    """An event that cannot be accepted; `field` names the offending field, `reason` says why."""

    def __init__(self, field: str, reason: str, index: Optional[int] = None):
        self.field = field
        self.reason = reason
        self.index = index
        where = f"event {index}: " if index is not None else ""
        super().__init__(f"{where}{field}: {reason}")

    def __reduce__(self):
        return (type(self), (self.field, self.reason, self.index))


@dataclasses.dataclass(frozen=True)
class Event:
    """One thing a shopper did with an item shown for a request; `timestamp` is float seconds since the epoch (UTC).

    `event_id` is an optional client-chosen id; without one the event's identity is (user_id, request_id,
    event_type, item_id, timestamp), which is what makes a retried batch land once (`key`).
    """

    event_type: str
    user_id: str
    item_id: str
    timestamp: float
    request_id: str = ""
    position: int = -1
    price: Optional[float] = None
    query: str = ""
    arm: str = ""
    event_id: str = ""

    @property
    def key(self) -> str:
        """The identity the event log deduplicates on."""
        if self.event_id:
            return "id\x1f" + self.event_id
        return "\x1f".join(("ev", self.user_id, self.request_id, self.event_type, self.item_id, repr(float(self.timestamp))))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _text_problem(name: str, value: Any, required: bool) -> Optional[str]:
    if not isinstance(value, str):
        return f"{name}: expected a string, got {type(value).__name__}"
    if required and not value.strip():
        return f"{name}: missing (empty)"
    if len(value) > MAX_TEXT_LENGTH:
        return f"{name}: longer than {MAX_TEXT_LENGTH} characters ({len(value)})"
    return None


def validate_event(event: Event, now: float, max_future_seconds: float = MAX_FUTURE_SECONDS) -> Optional[str]:
    """Why `event` must be rejected ("field: reason"), or None when it is valid at wall-clock time `now`."""
    if not isinstance(event, Event):
        return f"event: expected an Event, got {type(event).__name__}"
    if event.event_type not in EVENT_TYPES:
        return f"event_type: unknown event type {event.event_type!r}; expected one of {', '.join(EVENT_TYPES)}"
    for name in _TEXT_FIELDS:
        problem = _text_problem(name, getattr(event, name), required=name in ("user_id", "item_id"))
        if problem:
            return problem
    ts = event.timestamp
    if isinstance(ts, bool) or not isinstance(ts, numbers.Real) or not math.isfinite(ts) or ts <= 0:
        return f"timestamp: expected positive finite seconds since the epoch, got {ts!r}"
    if ts > now + max_future_seconds:
        return f"timestamp: {ts - now:.0f} s in the future (more than the {max_future_seconds:g} s allowed)"
    pos = event.position
    if isinstance(pos, bool) or not isinstance(pos, numbers.Integral) or pos < -1:
        return f"position: expected an int >= 0 (or -1 for unknown), got {pos!r}"
    price = event.price
    if price is not None and (isinstance(price, bool) or not isinstance(price, numbers.Real)
                              or not math.isfinite(price) or price < 0):
        return f"price: expected a finite number >= 0 (or null for unknown), got {price!r}"
    return None


def check_event(event: Event, now: float, max_future_seconds: float = MAX_FUTURE_SECONDS) -> Event:
    """`event` when valid, else EventValidationError naming the field."""
    reason = validate_event(event, now, max_future_seconds)
    if reason:
        field, _, why = reason.partition(": ")
        raise EventValidationError(field, why)
    return event


_FIELDS = {f.name: f for f in dataclasses.fields(Event)}


def event_from_dict(data: Mapping[str, Any], index: Optional[int] = None) -> Event:
    """An Event from a JSON-like mapping (a JSON line, a gRPC request's fields); unknown or missing keys are
    EventValidationError naming the key. Values are not range-checked here: `validate_event` does that."""
    if not isinstance(data, Mapping):
        raise EventValidationError("event", f"expected a mapping, got {type(data).__name__}", index)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise EventValidationError(unknown[0], f"unknown field; fields are {', '.join(_FIELDS)}", index)
    for name in ("event_type", "user_id", "item_id", "timestamp"):
        if name not in data or data[name] is None:
            raise EventValidationError(name, "missing", index)
    values = dict(data)
    if values.get("price") is not None and isinstance(values["price"], float) and math.isnan(values["price"]):
        values["price"] = None
    for name in ("position",):
        if name in values and isinstance(values[name], float) and values[name].is_integer():
            values[name] = int(values[name])
    return Event(**values)


def events_from_table(events: Table) -> Iterator[Event]:
    """The rows of a canonical events table (a training set, the synthetic shop) as Events, in table order.

    `rate` rows are skipped: ratings are not live events. A NaN price becomes None; an `arm` attribute column, when
    the table has one, fills `arm`.
    """
    cols = {name: events[name] for name in ("event_type", "user_id", "item_id", "timestamp", "request_id",
                                             "position", "price", "query")}
    arms = events["arm"] if "arm" in events else None
    for i in range(len(events)):
        event_type = str(cols["event_type"][i])
        if event_type not in EVENT_TYPES:
            continue
        price = float(cols["price"][i])
        yield Event(
            event_type=event_type,
            user_id=str(cols["user_id"][i]),
            item_id=str(cols["item_id"][i]),
            timestamp=float(cols["timestamp"][i]),
            request_id=str(cols["request_id"][i]),
            position=int(cols["position"][i]),
            price=None if is_missing(price) else price,
            query=str(cols["query"][i]),
            arm="" if arms is None else str(arms[i]),
        )


def events_to_table(events: Iterable[Event]) -> Table:
    """Events as a canonical events table (timestamps floored to int seconds, unknown prices NaN, `arm` as an
    attribute), so logged traffic goes through the same example builders as any training set."""
    events = list(events)
    columns = {
        "user_id": [e.user_id for e in events],
        "item_id": [e.item_id for e in events],
        "event_type": [e.event_type for e in events],
        "timestamp": np.floor([e.timestamp for e in events]).astype(np.int64) if events else [],
        "query": [e.query for e in events],
        "position": [e.position for e in events],
        "price": [NAN if e.price is None else e.price for e in events],
        "request_id": [e.request_id for e in events],
    }
    return Table(EVENTS_SCHEMA, columns, {"arm": [e.arm for e in events]})
