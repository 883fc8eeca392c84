"""Training examples from the live event log for an online update: the events since the serving version's offset,
joined with the run's catalog and users into one labelled row per impression, split by time into train (older)
and eval (the newest slice).

Late labels: a click can be logged after the impression it answers. An update therefore reads every event up to
the log's end but consumes only the impressions logged before the first event stamped within
`label_delay_seconds` of the newest one; their labels are joined from everything read, and the rest are left for
the next update (which starts at `until_offset`). Clicks whose impression an earlier update consumed are not read
twice: they only label impressions, never form examples.

Logged events carry the canonical event fields (no event attributes such as `device`); features the spec reads
that logged traffic cannot fill take the spec's default and are listed (`filled_features`), since the serving
model sees the same defaults for them in this evaluation but real values in live requests.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfrec.data.examples import impression_examples, take
from tfrec.data.schema import CATALOG_SCHEMA, USERS_SCHEMA, Dataset, EventType, Table
from tfrec.data.splits import time_split
from tfrec.features.spec import FeatureSpec
from tfrec.online.event_log import EventLog
from tfrec.online.event_sources import is_event_log
from tfrec.online.events import events_to_table

__all__ = ["NotEnoughEventsError", "OnlineEvents", "build_online_examples", "fill_features", "load_catalog_and_users",
           "read_new_events", "split_newest", "time_range"]


class NotEnoughEventsError(ValueError):
    """The event log has no (or too few) new events since the serving version's offset to learn from."""


@dataclasses.dataclass
class OnlineEvents:
    """What an update read from the log: the events (as a canonical table, with each row's offset) and the offset
    range (since_offset, until_offset] whose impressions it consumes; rows after until_offset only give labels."""

    events: Table
    offsets: np.ndarray
    since_offset: int
    until_offset: int
    last_offset: int
    unknown_item_events: int  # dropped: their item is not in the run's catalog

    @property
    def held_back(self) -> int:
        """Events read but left for the next update (logged within the label delay of the newest event)."""
        return int(np.sum(self.offsets > self.until_offset))


def read_new_events(log_path: str, since_offset: int, label_delay_seconds: float,
                    known_items: Optional[set] = None) -> OnlineEvents:
    """Events with offset > since_offset (module docstring for which impressions are consumed)."""
    if not os.path.exists(log_path):
        raise FileNotFoundError(f"event log {log_path} not found")
    if not is_event_log(log_path):
        raise ValueError(f"{log_path} is not an event log (an SQLite file written by tfrec's EventLog)")
    with EventLog(log_path) as log:
        last = log.last_offset()  # read up to here, so events appended meanwhile wait for the next update
        logged = [e for batch in log.read_batches(since_offset, last) for e in batch]
    if not logged:
        raise NotEnoughEventsError(f"{log_path} has no events after offset {since_offset} (its last offset is "
                                   f"{last}): nothing to update on")
    unknown = 0
    if known_items is not None:
        kept = [e for e in logged if e.event.item_id in known_items]
        unknown, logged = len(logged) - len(kept), kept
        if not logged:
            raise NotEnoughEventsError(f"all {unknown} events after offset {since_offset} in {log_path} name items "
                                       "missing from the run's catalog")
    offsets = np.array([e.offset for e in logged], dtype=np.int64)
    stamps = np.array([e.event.timestamp for e in logged], dtype=np.float64)
    cut = stamps.max() - float(label_delay_seconds)
    late = np.flatnonzero(stamps > cut) if label_delay_seconds > 0 else np.array([], dtype=np.int64)
    until = last if late.size == 0 else (int(offsets[late[0]]) - 1)
    return OnlineEvents(events_to_table(e.event for e in logged), offsets, int(since_offset), max(until, since_offset),
                        last, unknown)


def load_catalog_and_users(data_config, catalog_dir: Optional[str] = None) -> Tuple[Table, Optional[Table]]:
    """The catalog and users the run trained with (its data source), or those of `catalog_dir` (a dataset
    directory) when the catalog changed since: events are joined with them as in offline training."""
    from tfrec.data.dataset_io import find_table_files
    from tfrec.data.readers import read_table

    path = catalog_dir or (data_config.path if data_config.source == "directory" else None)
    if path is not None:
        files = find_table_files(path)
        users = read_table(files["users"], USERS_SCHEMA) if files["users"] is not None else None
        return read_table(files["catalog"], CATALOG_SCHEMA), users
    from tfrec.data.sources import load_source

    loaded = load_source(data_config)
    return loaded.dataset.catalog, loaded.dataset.users


def fill_features(columns: Dict[str, np.ndarray], spec: FeatureSpec) -> List[str]:
    """Adds a column of the spec's default for every feature the examples lack (in place); returns their names."""
    n = len(next(iter(columns.values())))
    filled = []
    for feature in spec.features:
        if feature.name not in columns:
            dtype = object if feature.dtype == "string" else feature.tf_dtype.as_numpy_dtype
            columns[feature.name] = np.full(n, feature.tf_default, dtype=dtype)
            filled.append(feature.name)
    return filled


def time_range(columns: Dict[str, np.ndarray]) -> Optional[Tuple[int, int]]:
    """(first, last) timestamp of example columns, None when there are no rows."""
    stamps = columns["timestamp"]
    return (int(stamps.min()), int(stamps.max())) if len(stamps) else None


def build_online_examples(read: OnlineEvents, catalog: Table, users: Optional[Table], spec: FeatureSpec,
                          labels: Sequence[str], min_impressions: int,
                          fill_missing: bool = True) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """(columns, filled features): one row per consumed impression with the spec's features, `labels` and ids;
    features logged events cannot fill take the spec's default (module docstring) and are named."""
    is_impression = read.events["event_type"] == EventType.IMPRESSION.value
    consumed = int(np.sum(is_impression & (read.offsets <= read.until_offset)))
    if consumed < min_impressions:
        raise NotEnoughEventsError(
            f"{consumed} new impressions after offset {read.since_offset} (up to offset {read.until_offset}; "
            f"{read.held_back} later events wait for their labels), fewer than the {min_impressions} required "
            "(min_new_impressions)")
    columns = impression_examples(Dataset(catalog=catalog, events=read.events, users=users))
    columns = take(columns, np.flatnonzero(read.offsets[is_impression] <= read.until_offset))
    missing = [n for n in spec.names if n not in columns]
    if missing and not fill_missing:
        raise ValueError(f"logged events give no value for features {missing} (fill_missing_features is false)")
    filled = fill_features(columns, spec)
    absent = [label for label in labels if label not in columns]
    if absent:
        raise ValueError(f"impression examples have no {absent} label; they have click, add_to_cart, purchase")
    return columns, filled


def split_newest(columns: Dict[str, np.ndarray], fraction: float,
                 hours: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(train, eval) row indices: the newest `hours` of requests (by their first impression) or the newest
    `fraction` of rows evaluate; a request is never cut in two."""
    stamps = np.asarray(columns["timestamp"], dtype=np.int64)
    groups = columns.get("request_id")
    if hours is None:
        train, _, evaluate = time_split(stamps, 0.0, fraction, groups)
        return train, evaluate
    cut = stamps.max() - int(math.ceil(hours * 3600))
    newest = stamps > cut
    if groups is not None:
        groups = np.asarray(groups)
        grouped = groups != ""
        if grouped.any():  # a request is as new as its first impression
            codes = np.unique(groups[grouped], return_inverse=True)[1].reshape(-1)
            first = np.full(codes.max() + 1, np.iinfo(np.int64).max)
            np.minimum.at(first, codes, stamps[grouped])
            newest[grouped] = first[codes] > cut
    return np.flatnonzero(~newest), np.flatnonzero(newest)
