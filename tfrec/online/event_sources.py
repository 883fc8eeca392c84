"""Where events and item metadata come from for offline jobs (profiles, drift): the SQLite event log the service
writes, or canonical data files (a dataset directory, or one events / catalog file in any supported format)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Union

from tfrec.data.dataset_io import find_table_files
from tfrec.data.readers import read_table
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA
from tfrec.online.event_log import EventLog
from tfrec.online.events import Event, events_from_table
from tfrec.online.user_state import ItemInfo, item_metadata_from_catalog

__all__ = ["is_event_log", "read_events", "read_item_metadata"]

_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_event_log(path) -> bool:
    """Whether `path` is an SQLite file (an event log) rather than a data file or directory."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


def read_events(path) -> Union[EventLog, List[Event]]:
    """The event log at `path`, or the events of a dataset directory / events file as a list of Events."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"events not found: {path}")
    if is_event_log(path):
        return EventLog(path)
    file = find_table_files(path)["events"] if path.is_dir() else path
    return list(events_from_table(read_table(file, EVENTS_SCHEMA)))


def read_item_metadata(path) -> Dict[str, ItemInfo]:
    """item_id -> (category, brand, price) from a dataset directory's catalog or a catalog file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"catalog not found: {path}")
    file = find_table_files(path)["catalog"] if path.is_dir() else path
    return item_metadata_from_catalog(read_table(file, CATALOG_SCHEMA))
