"""A dataset directory: `catalog.<ext>`, `events.<ext>` and optionally `users.<ext>`, read and checked together.

Besides each file's own checks, loading checks referential integrity: every event must name an item of the catalog.
Events may name users that `users.<ext>` does not list (anonymous or attribute-less shoppers are normal).
"""

from __future__ import annotations

import collections
import datetime as dt
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from tfrec.data.errors import BadRowReport, DataError
from tfrec.data.readers import SUPPORTED_SUFFIXES, read_table_with_source
from tfrec.data.schema import CATALOG_SCHEMA, EVENT_TYPES, EVENTS_SCHEMA, USERS_SCHEMA, Dataset, Table
from tfrec.data.writers import write_table

TABLE_SCHEMAS = {"catalog": CATALOG_SCHEMA, "events": EVENTS_SCHEMA, "users": USERS_SCHEMA}
REQUIRED_TABLES = ("catalog", "events")


def find_table_files(directory) -> Dict[str, Optional[Path]]:
    """The file of each table in `directory` (None for an absent users file); DataError if missing or ambiguous."""
    directory = Path(directory)
    if not directory.exists():
        raise DataError(str(directory), "directory not found", detail="dataset directory not found")
    if not directory.is_dir():
        raise DataError(str(directory), "not a directory", detail="expected a dataset directory, got a file")
    found: Dict[str, Optional[Path]] = {}
    for table in TABLE_SCHEMAS:
        candidates = sorted(p for p in directory.glob(f"{table}.*") if not p.name.startswith("."))
        supported = [p for p in candidates if p.name[len(table):].lower() in SUPPORTED_SUFFIXES]
        if len(supported) > 1:
            names = ", ".join(p.name for p in supported)
            raise DataError(str(directory), "ambiguous table files", detail=f"{names} all hold {table}; keep only one")
        if not supported and table in REQUIRED_TABLES:
            others = [p.name for p in candidates]
            hint = f" (found {', '.join(others)}, which is not a supported format)" if others else ""
            detail = f"no {table} file: expected {table}.<ext> with ext one of {', '.join(SUPPORTED_SUFFIXES)}{hint}"
            raise DataError(str(directory), f"missing {table} file", detail=detail)
        found[table] = supported[0] if supported else None
    return found


def load_dataset(directory, skip_bad_rows: bool = False) -> Tuple[Dataset, BadRowReport]:
    """Reads a dataset directory; bad rows (including events of unknown items) raise, or are skipped and reported."""
    files = find_table_files(directory)
    report = BadRowReport()
    tables: Dict[str, Optional[Table]] = {"users": None}
    sources = {}
    for name, path in files.items():
        if path is not None:
            tables[name], sources[name] = read_table_with_source(path, TABLE_SCHEMAS[name], skip_bad_rows, report)
    catalog, events = tables["catalog"], tables["events"]
    catalog_ids = set(catalog["item_id"].tolist())
    unknown = np.flatnonzero([item not in catalog_ids for item in events["item_id"].tolist()])
    if len(unknown):
        catalog_file = files["catalog"].name
        errors = [
            sources["events"].error(
                int(i),
                "unknown item",
                field="item_id",
                value=events["item_id"][i],
                detail=f"unknown item {events['item_id'][i]!r} (not in {catalog_file})",
            )
            for i in unknown
        ]
        if not skip_bad_rows:
            raise errors[0]
        for error in errors:
            report.add(error)
        keep = np.ones(len(events), dtype=bool)
        keep[unknown] = False
        events = events.take(keep)
    return Dataset(catalog=catalog, events=events, users=tables["users"]), report


def write_dataset(dataset: Dataset, directory, format: str = "csv") -> Dict[str, Path]:
    """Writes catalog, events (and users) as `<table>.<format>`; refuses to leave files that would make it ambiguous."""
    suffix = "." + format.lstrip(".").lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(f"unsupported format {format!r}; use one of {', '.join(s[1:] for s in SUPPORTED_SUFFIXES)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tables = {"catalog": dataset.catalog, "events": dataset.events, "users": dataset.users}
    for name, table in tables.items():  # check everything before writing anything
        stale = [p.name for p in directory.glob(f"{name}.*") if p.name[len(name):].lower() in SUPPORTED_SUFFIXES]
        stale = [n for n in stale if table is None or n != name + suffix]
        if stale:
            raise DataError(
                str(directory),
                "conflicting table file",
                detail=f"{', '.join(stale)} already exists and would conflict with the {name} being written; "
                "remove it or write to another directory",
            )
    written = {}
    for name, table in tables.items():
        if table is not None:
            written[name] = write_table(table, directory / f"{name}{suffix}")
    return written


def validate_dataset(directory, skip_bad_rows: bool = True) -> Tuple[BadRowReport, Dict[str, Any]]:
    """Checks a dataset directory for `tfrec data validate`: the bad-row report and a few summary statistics.

    Skip mode is the default here so one run lists every problem instead of stopping at the first.
    """
    dataset, report = load_dataset(directory, skip_bad_rows=skip_bad_rows)
    return report, dataset_stats(dataset)


def dataset_stats(dataset: Dataset) -> Dict[str, Any]:
    """Rows per table, event type counts, event time range (UTC) and distinct users/items in the events."""
    events = dataset.events
    by_type = {t: 0 for t in EVENT_TYPES}
    by_type.update(collections.Counter(events["event_type"].tolist()))
    time_range = None
    if len(events):
        first, last = int(events["timestamp"].min()), int(events["timestamp"].max())
        time_range = {"first": _utc_text(first), "last": _utc_text(last), "first_epoch": first, "last_epoch": last}
    return {
        "rows": {
            "catalog": len(dataset.catalog),
            "events": len(events),
            "users": None if dataset.users is None else len(dataset.users),
        },
        "event_types": by_type,
        "time_range": time_range,
        "distinct_users_in_events": len(set(events["user_id"].tolist())),
        "distinct_items_in_events": len(set(events["item_id"].tolist())),
    }


def _utc_text(seconds: int) -> str:
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # beyond datetime's years 1..9999
        return f"{seconds} (epoch seconds, outside the calendar range)"
