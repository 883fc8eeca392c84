"""Events of an A/B experiment turned into per-arm, per-user sums: the units its statistics treat as independent.

Definitions (every metric is a ratio of two of these sums, see `tfrec.online.ab_report.METRICS`):
- impressions, clicks, add_to_carts, purchases: counts of those events;
- revenue: the sum of the shown `price` of purchase events (a purchase without a price adds 0 and is counted in
  `unpriced_purchases`);
- requests: distinct requests with at least one impression (`request_id`; an event without one is its own request,
  keyed by user and second);
- converted_requests: those of the requests with at least one purchase.

An event's arm is the one recorded in its `arm` field ('<experiment>:<arm>' or the bare arm name); with
`arm_source="auto"` an event recorded without an arm gets the user's assigned arm (the stable hash), with
"assignment" every event does, with "recorded" unrecorded events are dropped. Events outside the experiment's
[start, end) window or of another experiment are dropped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Dict, Literal, Mapping, Optional, Sequence, Union

import numpy as np

from tfrec.data.schema import EVENTS_SCHEMA, Table
from tfrec.online.experiments import Experiment, assign_many, parse_arm_tag

FIELDS = ("impressions", "clicks", "add_to_carts", "purchases", "revenue", "requests", "converted_requests")
_COUNTED = {"impression": "impressions", "click": "clicks", "add_to_cart": "add_to_carts", "purchase": "purchases"}
_REQUIRED = ("event_type", "user_id", "timestamp")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
ArmSource = Literal["auto", "recorded", "assignment"]

__all__ = ["ArmSums", "FIELDS", "arm_sums", "event_columns", "load_events"]


def load_events(path: Union[str, os.PathLike]) -> Table:
    """Events from a CSV / TSV / JSON-lines / Parquet file, a dataset directory (its events file) or an SQLite event
    log (`tfrec.online.event_log.EventLog`); bad rows raise a DataError naming file, row and field."""
    from tfrec.data.readers import read_table

    path = Path(path)
    if path.is_dir():
        from tfrec.data.dataset_io import find_table_files

        found = find_table_files(path).get("events")
        if found is None:
            raise FileNotFoundError(f"{path}: no events file (events.csv, events.jsonl, events.parquet, ...)")
        path = Path(found)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such events file")
    if path.suffix.lower() in SQLITE_SUFFIXES:
        from tfrec.online.event_log import EventLog
        from tfrec.online.events import events_to_table

        with EventLog(path) as log:
            return events_to_table(logged.event for logged in log.read())
    return read_table(path, EVENTS_SCHEMA)


def event_columns(events) -> Dict[str, np.ndarray]:
    """event_type, user_id, request_id, timestamp, price, arm as numpy columns from a canonical events Table, a
    mapping of columns, a pandas DataFrame, or an iterable of `tfrec.online.events.Event`."""
    if isinstance(events, Table):
        get, has, n = events.__getitem__, events.__contains__, len(events)
    elif isinstance(events, Mapping) or hasattr(events, "columns"):
        names = set(events.keys() if isinstance(events, Mapping) else events.columns)
        get, has = (lambda c: np.asarray(events[c])), names.__contains__
        n = len(get(_REQUIRED[0])) if has(_REQUIRED[0]) else 0
    else:
        from tfrec.online.events import events_to_table

        return event_columns(events_to_table(events))
    missing = [c for c in _REQUIRED if not has(c)]
    if missing:
        raise ValueError(f"events: missing column(s) {missing}; an A/B report needs {list(_REQUIRED)}")
    out = {
        "event_type": np.asarray(get("event_type")).astype(str),
        "user_id": np.asarray(get("user_id")).astype(str),
        "timestamp": np.asarray(get("timestamp"), dtype=np.float64),
        "request_id": np.asarray(get("request_id")).astype(str) if has("request_id") else np.full(n, ""),
        "price": np.asarray(get("price"), dtype=np.float64) if has("price") else np.full(n, np.nan),
        "arm": np.asarray(get("arm"), dtype=object) if has("arm") else np.full(n, "", dtype=object),
    }
    for name, col in out.items():
        if len(col) != n:
            raise ValueError(f"events: column {name!r} has {len(col)} rows, event_type has {n}")
    return out


@dataclasses.dataclass
class ArmSums:
    """Per-user sums of one arm: `sums[field]` has shape (users,), or (users, buckets) for `arm_sums(edges=...)`."""

    arm: str
    user_ids: np.ndarray
    sums: Dict[str, np.ndarray]
    unpriced_purchases: int = 0

    @property
    def users(self) -> int:
        return len(self.user_ids)

    def total(self, field: str) -> float:
        return float(self.sums[field].sum())


def _first_per_key(keys: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each key (rows are in time order)."""
    mask = np.zeros(len(keys), dtype=bool)
    if len(keys):
        mask[np.unique(keys, return_index=True)[1]] = True
    return mask


def arm_sums(events, experiment: Experiment, arm_source: ArmSource = "auto",
             edges: Optional[Sequence[float]] = None, cumulative: bool = True) -> Dict[str, ArmSums]:
    """Per-arm, per-user sums of the experiment's events (module docstring), for every arm (empty arms included).

    With `edges` (increasing epoch seconds) each sum gets a bucket axis: bucket b holds events with
    edges[b] <= t < edges[b + 1] (events outside are dropped), summed over buckets <= b when `cumulative`.
    """
    cols = event_columns(events)
    order = np.argsort(cols["timestamp"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    ts, et = cols["timestamp"], cols["event_type"]
    keep = np.isin(et, list(_COUNTED))
    if experiment.start is not None:
        keep &= ts >= experiment.start
    if experiment.end is not None:
        keep &= ts < experiment.end
    arm = _arms(cols, experiment, arm_source)
    keep &= arm != ""
    if edges is not None:
        edges = np.asarray(edges, dtype=np.float64)
        if len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("edges must be at least 2 strictly increasing timestamps")
        keep &= (ts >= edges[0]) & (ts < edges[-1])
    cols = {k: v[keep] for k, v in cols.items()}
    arm, ts, et = arm[keep].astype(str), cols["timestamp"], cols["event_type"]
    group_key = np.char.add(np.char.add(arm, "\x1f"), cols["user_id"])
    group_names, group = np.unique(group_key, return_inverse=True) if len(arm) else (np.zeros(0, str), np.zeros(0, int))
    group = group.reshape(-1)

    request = np.where(cols["request_id"] != "", cols["request_id"],
                       np.char.add(np.char.add(cols["user_id"], "@"), ts.astype(np.int64).astype(str)))
    request_key = np.char.add(np.char.add(group.astype(str), "\x1f"), request)
    is_imp, is_buy = et == "impression", et == "purchase"
    first_request = is_imp & _first_per_key(np.where(is_imp, request_key, ""))
    shown_requests = np.unique(request_key[is_imp])
    converting = is_buy & np.isin(request_key, shown_requests)
    first_conversion = converting & _first_per_key(np.where(converting, request_key, ""))
    price = np.nan_to_num(cols["price"], nan=0.0)
    weights = {field: (et == etype).astype(np.float64) for etype, field in _COUNTED.items()}
    weights["revenue"] = np.where(is_buy, price, 0.0)
    weights["requests"] = first_request.astype(np.float64)
    weights["converted_requests"] = first_conversion.astype(np.float64)

    n_groups = len(group_names)
    n_buckets = 1 if edges is None else len(edges) - 1
    bucket = np.zeros(len(ts), dtype=np.int64) if edges is None else np.searchsorted(edges, ts, side="right") - 1
    flat = group * n_buckets + bucket
    sums = {}
    for field in FIELDS:
        table = np.bincount(flat, weights=weights[field], minlength=n_groups * n_buckets).reshape(n_groups, n_buckets)
        if edges is not None and cumulative:
            table = np.cumsum(table, axis=1)
        sums[field] = table if edges is not None else table[:, 0]
    group_arm = np.asarray([g.split("\x1f", 1)[0] for g in group_names], dtype=object)
    group_user = np.asarray([g.split("\x1f", 1)[1] for g in group_names], dtype=object)
    unpriced = is_buy & np.isnan(cols["price"])
    out = {}
    for name in experiment.arm_names:
        rows = np.flatnonzero(group_arm == name)
        out[name] = ArmSums(name, group_user[rows], {f: s[rows] for f, s in sums.items()},
                            int(np.sum(unpriced & (arm == name))))
    return out


def _arms(cols: Dict[str, np.ndarray], experiment: Experiment, arm_source: ArmSource) -> np.ndarray:
    """Each event's arm name ('' = not in this experiment), by `arm_source` (module docstring)."""
    if arm_source not in ("auto", "recorded", "assignment"):
        raise ValueError(f"arm_source must be auto, recorded or assignment, got {arm_source!r}")
    n = len(cols["user_id"])
    recorded = parse_arm_tag(experiment, cols["arm"]) if arm_source != "assignment" else np.full(n, "", object)
    if arm_source == "recorded":
        return recorded
    raw = np.asarray(["" if v is None else str(v) for v in cols["arm"]], dtype=object)
    # "auto": only events recorded without any arm are assigned; another experiment's tag stays out
    todo = np.ones(n, bool) if arm_source == "assignment" else (raw == "")
    if todo.any():
        users, inverse = np.unique(cols["user_id"][todo], return_inverse=True)
        recorded = recorded.copy()
        recorded[todo] = assign_many(experiment, users.tolist())[inverse.reshape(-1)]
    return recorded

