"""Implicit "user item" sequence files (e.g. BERT4Rec's Amazon Beauty `beauty.txt`) as a canonical `Dataset`.

Format: one interaction per line, `user_id item_id` separated by white space, in chronological order per user.
There are no times, ratings or item text, so:
- every line becomes a `purchase` event (the source counts a review as an interaction);
- timestamps are synthesised: line k (0-based, blank lines not counted) gets `start_timestamp + k` seconds, which
  keeps each user's order and the file order but carries no real time. The file is grouped by user, so a global
  time split would split users, not time: evaluate such data leave-last-out per user instead;
- the catalog holds the item ids seen, with empty titles and categories (ordered numerically when all ids are
  integers, else as text); there is no users table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfrec.data.errors import DataError
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, Dataset, EventType, Table


def load_amazon_sequences(path, start_timestamp: int = 0) -> Dataset:
    """Loads a "user item" per line file, or the single `.txt` data file inside the folder `path`."""
    file = _data_file(Path(path))
    users, items = [], []
    row = 0
    with open(file, "r", encoding="utf-8", newline="") as handle:
        try:
            for line, text in enumerate(handle, start=1):
                parts = text.split()
                if not parts:
                    continue
                row += 1
                if len(parts) != 2:
                    raise DataError(file.name, "wrong number of fields", row=row, line=line, value=text.strip(),
                                    detail=f"expected 'user_id item_id', got {len(parts)} fields: {text.strip()!r}")
                users.append(parts[0])
                items.append(parts[1])
        except UnicodeDecodeError as exc:
            raise DataError(file.name, "not UTF-8", detail=f"the file is not valid UTF-8 ({exc.reason})") from None
    if not users:
        raise DataError(file.name, "empty file", detail="no interactions found; expected 'user_id item_id' lines")
    n = len(users)
    events = Table(
        EVENTS_SCHEMA,
        {
            "user_id": np.array(users, dtype=object),
            "item_id": np.array(items, dtype=object),
            "event_type": np.full(n, EventType.PURCHASE.value, dtype=object),
            "timestamp": np.arange(start_timestamp, start_timestamp + n, dtype=np.int64),
        },
    )
    distinct = set(items)
    ordered = sorted(distinct, key=int) if all(i.isascii() and i.isdigit() for i in distinct) else sorted(distinct)
    catalog = Table(CATALOG_SCHEMA, {"item_id": np.array(ordered, dtype=object)})
    return Dataset(catalog=catalog, events=events, users=None)


def _data_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.exists():
        raise DataError(str(path), "file not found", detail="sequence file or folder not found")
    candidates = sorted(p for p in path.glob("*.txt") if p.is_file())
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise DataError(str(path), "ambiguous sequence file",
                        detail=f"expected exactly one .txt data file in the folder, found {found}; pass the file")
    return candidates[0]
