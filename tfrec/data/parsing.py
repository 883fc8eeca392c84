"""Turning raw cells (CSV text, JSON values, Parquet values) into typed columns, and the schema's row rules.

Parsing is column by column with plain Python conversions (no per-cell regexes), so a million-row file parses in
seconds. A bad cell never stops a column: it is reported as a `BadCell` and replaced by a placeholder, and the
reader decides whether the row raises or is skipped.

Timestamp rule: a number (or an all-numeric string) is an epoch time whose unit follows from its magnitude:
below 1e11 it is seconds (up to the year 5138), below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.
So millisecond times before 1973-03-03 would be misread as seconds; write those as ISO 8601 text. Fractions of a
second are floored. Text is ISO 8601 (`2026-01-05`, `2026-01-05T10:30:00`, `...+02:00`, `...Z`); a time without an
offset is UTC, an offset is honoured.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from tfrec.data.schema import EVENT_TYPES, EventType, Field, TableSchema

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ONE_SECOND = dt.timedelta(seconds=1)
EPOCH_MILLISECONDS_FROM = 10**11  # epoch numbers this large (in magnitude) are milliseconds, not seconds
# (upper bound of |value|, units per second) for epoch numbers, smallest unit last
_EPOCH_UNITS = ((EPOCH_MILLISECONDS_FROM, 1), (10**14, 1_000), (10**17, 1_000_000), (math.inf, 1_000_000_000))
_EVENT_TYPE_BY_LOWER = {t: t for t in EVENT_TYPES}
_PLACEHOLDER = {"string": "", "int": 0, "float": math.nan, "timestamp": 0, "event_type": ""}

MISSING_REQUIRED = "missing required value"
TIMESTAMP_HINT = "(ISO 8601 or epoch seconds)"


class _Missing:
    """Sentinel a cell parser returns for an empty/null cell; the column decides between default and error."""


MISSING = _Missing()


class CellError(Exception):
    """One unparsable cell: a value-free `reason` for counting and a `detail` sentence quoting the value."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class BadCell:
    """A problem found at 0-based row `index`; `field` None means the row as a whole."""

    index: int
    field: Any
    reason: str
    detail: str
    value: Any = None


def parse_string(value) -> Any:
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value if value else MISSING
    if isinstance(value, bool):
        raise CellError("not text", f"expected text, got the boolean {json.dumps(value)}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return MISSING if math.isnan(value) else repr(value)
    raise CellError("not text", f"expected text, got {_describe(value)}")


def parse_int(value) -> Any:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        raise CellError("not an integer", f"expected an integer, got the boolean {json.dumps(value)}")
    if isinstance(value, (int, np.integer)):
        return _check_int64(int(value), value, "integer")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return MISSING
        try:
            return _check_int64(int(text), value, "integer")
        except ValueError:
            pass
        try:
            number = float(text)  # "3.0" is an integer written by a float-minded exporter
        except ValueError:
            number = math.inf
        if math.isnan(number):
            return MISSING
        if not number.is_integer():
            raise CellError("not an integer", f"cannot parse {value!r} as an integer")
        return _check_int64(int(number), value, "integer")
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):  # pandas writes a missing int as NaN
            return MISSING
        if value.is_integer():
            return _check_int64(int(value), value, "integer")
        raise CellError("not an integer", f"expected an integer, got {value!r}")
    raise CellError("not an integer", f"expected an integer, got {_describe(value)}")


def parse_float(value) -> Any:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        raise CellError("not a number", f"expected a number, got the boolean {json.dumps(value)}")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return MISSING
        try:
            number = float(text)
        except ValueError:
            raise CellError("not a number", f"cannot parse {value!r} as a number") from None
    elif isinstance(value, (int, float, np.integer, np.floating)):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer beyond the float range
            number = math.inf
    else:
        raise CellError("not a number", f"expected a number, got {_describe(value)}")
    if math.isinf(number):
        raise CellError("not a finite number", f"{value!r} is not a finite number")
    return number


def parse_timestamp(value) -> Any:
    """Seconds since the epoch (UTC) from an epoch number, ISO 8601 text or a datetime; see the module doc."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        raise CellError("not a timestamp", f"expected a timestamp, got the boolean {json.dumps(value)}")
    if isinstance(value, (int, np.integer)):
        return _epoch_to_seconds(int(value), value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return MISSING if math.isnan(value) else _bad_timestamp(value)
        return _epoch_to_seconds(float(value), value)
    if isinstance(value, dt.datetime):
        return _datetime_to_seconds(value)
    if isinstance(value, dt.date):
        return _datetime_to_seconds(dt.datetime(value.year, value.month, value.day))
    if not isinstance(value, str):
        raise CellError("not a timestamp", f"expected a timestamp, got {_describe(value)}")
    text = value.strip()
    if not text:
        return MISSING
    try:
        return _epoch_to_seconds(int(text), value)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return _epoch_to_seconds(number, value) if math.isfinite(number) else _bad_timestamp(value)
    if text[-1] in "Zz":  # Python 3.10's fromisoformat does not know the Z suffix
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return _bad_timestamp(value)
    return _datetime_to_seconds(parsed)


def parse_event_type(value) -> Any:
    if value is None:
        return MISSING
    if isinstance(value, EventType):
        return value.value
    if not isinstance(value, str):
        raise CellError("unknown event type", f"expected an event type, got {_describe(value)}")
    text = value.strip()
    if not text:
        return MISSING
    canonical = _EVENT_TYPE_BY_LOWER.get(text.lower())
    if canonical is None:
        raise CellError("unknown event type", f"unknown event type {value!r}; valid types are {', '.join(EVENT_TYPES)}")
    return canonical


CELL_PARSERS: Dict[str, Callable[[Any], Any]] = {
    "string": parse_string,
    "int": parse_int,
    "float": parse_float,
    "timestamp": parse_timestamp,
    "event_type": parse_event_type,
}


def parse_column(field: Field, values: Sequence) -> Tuple[np.ndarray, List[BadCell]]:
    """Typed column for `field` from raw cells; empty cells take the default (an error if the field is required)."""
    clean = _parse_clean_column(field, values)
    if clean is not None:
        return clean, []
    parse = CELL_PARSERS[field.dtype]
    placeholder = _PLACEHOLDER[field.dtype]
    default = field.default if field.default is not None else placeholder
    required, dtype = field.required, field.dtype
    out: List[Any] = []
    bad: List[BadCell] = []
    append = out.append
    cache: Dict[Any, Any] = {} if dtype == "event_type" else None  # few distinct values, many rows
    for i, raw in enumerate(values):
        try:
            if cache is not None and isinstance(raw, str):
                value = cache.get(raw)
                if value is None:
                    value = cache[raw] = parse(raw)
            else:
                value = parse(raw)
        except CellError as err:
            bad.append(BadCell(i, field.name, err.reason, err.detail, raw))
            append(placeholder)
            continue
        if value is MISSING or (required and _is_blank(value, dtype)):
            if required:
                bad.append(BadCell(i, field.name, MISSING_REQUIRED, MISSING_REQUIRED, raw))
                value = placeholder
            else:
                value = default
        append(value)
    return np.array(out, dtype=field.numpy_dtype), bad


def _parse_clean_column(field: Field, values: Sequence):
    """Bulk conversion for a column without a single bad cell, or None to fall back to cell-by-cell parsing.

    Uses the same Python conversions (`float`, `int`, the event type lookup) as the cell parsers, only mapped over
    the whole column at C speed, so both paths agree on every value the fast one accepts.
    """
    dtype, required = field.dtype, field.required
    if not required and dtype != "event_type":
        fill = field.default
        values = [fill if v is None or v == "" else v for v in values]
    types = set(map(type, values))
    try:
        if dtype == "string":
            if types - {str} or (required and ("" in values or any(map(str.isspace, values)))):
                return None
            return np.array(values, dtype=object)
        if dtype == "float":
            if types - {str, int, float}:
                return None
            column = np.array(list(map(float, values)), dtype=np.float64)
            if np.isinf(column).any() or (required and np.isnan(column).any()):
                return None
            return column
        if dtype in ("int", "timestamp"):
            if types - {str, int}:
                return None
            column = np.array(list(map(int, values)), dtype=np.int64)
            return column if dtype == "int" else _epoch_column_to_seconds(column)
        if dtype == "event_type":
            if types - {str}:
                return None
            canonical = {v: parse_event_type(v) for v in set(values)}
            if MISSING in canonical.values():
                return None
            return np.array(list(map(canonical.__getitem__, values)), dtype=object)
    except (ValueError, TypeError, OverflowError, CellError):
        return None
    return None


def _epoch_column_to_seconds(column: np.ndarray) -> np.ndarray:
    """The magnitude rule of `parse_timestamp`, vectorised over an int64 column of epoch numbers."""
    seconds = np.empty_like(column)
    remaining = np.ones(len(column), dtype=bool)
    for bound, per_second in _EPOCH_UNITS:
        in_unit = remaining.copy()
        if math.isfinite(bound):
            in_unit &= (column > -bound) & (column < bound)
        seconds[in_unit] = column[in_unit] // per_second
        remaining &= ~in_unit
    return seconds


def check_row_rules(schema: TableSchema, columns: Dict[str, np.ndarray]) -> List[BadCell]:
    """Business rules over parsed columns: prices are not negative, positions are -1 or more, `rate` has a rating."""
    bad: List[BadCell] = []
    if "price" in columns:
        price = columns["price"]
        for i in np.flatnonzero(price < 0):
            value = float(price[i])
            bad.append(BadCell(int(i), "price", "negative price", f"negative price {value!r}", value))
    if "position" in columns:
        position = columns["position"]
        for i in np.flatnonzero(position < -1):
            value = int(position[i])
            detail = f"position {value} is below -1 (use -1 when the position is unknown)"
            bad.append(BadCell(int(i), "position", "position below -1", detail, value))
    if "event_type" in columns and "rating" in columns:
        unrated = (columns["event_type"] == EventType.RATE.value) & np.isnan(columns["rating"])
        for i in np.flatnonzero(unrated):
            detail = "a 'rate' event needs a rating, this row has none"
            bad.append(BadCell(int(i), "rating", "rate event without a rating", detail, None))
    return bad


def attribute_text(value) -> str:
    """An attribute cell as text: strings verbatim, null/NaN as empty, booleans and nested values as JSON."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _is_blank(value, dtype: str) -> bool:
    """A present but empty-in-substance value, which a required field rejects: whitespace text or NaN."""
    if dtype == "string":
        return not value.strip()
    return dtype == "float" and value != value


def _epoch_to_seconds(number, original) -> int:
    magnitude = abs(number)
    for bound, per_second in _EPOCH_UNITS:
        if magnitude < bound:
            seconds = number // per_second if isinstance(number, int) else math.floor(number / per_second)
            return _check_int64(int(seconds), original, "timestamp")
    raise AssertionError("unreachable: the last epoch unit bound is infinite")


def _datetime_to_seconds(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return (value - _EPOCH) // _ONE_SECOND


def _bad_timestamp(value):
    raise CellError("not a timestamp", f"cannot parse {value!r} as a timestamp {TIMESTAMP_HINT}")


def _check_int64(number: int, original, kind: str) -> int:
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise CellError(f"{kind} out of range", f"{original!r} is outside the 64-bit integer range")
    return number


def _describe(value) -> str:
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, (list, tuple)):
        return "a JSON list"
    return f"{type(value).__name__} {value!r}"
