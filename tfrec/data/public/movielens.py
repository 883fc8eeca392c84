"""MovieLens 100K (GroupLens `ml-100k`) as a canonical `Dataset` of movies, `rate` events and users.

Files used: `u.data` (TAB: user, item, rating, unix seconds), `u.item` ('|', LATIN-1: id, title, release date,
video release date, IMDb URL, 19 genre flags), `u.user` ('|': id, age, gender, occupation, zip) and `u.genre`
('|': genre name, flag index). The data is for research use only and may not be redistributed: read it from a
local copy, never ship it.

Mapping: item category is "Movies > <first flagged genre>" (genre order of `u.genre`); item attributes are
`genres` (all flagged genres joined by '|'), `release_date` (ISO `YYYY-MM-DD`, empty when unknown), `year` (the
film's year from the title's trailing "(YYYY)", else the release year, else empty) and `imdb_url`. Titles have
trailing blanks trimmed. Events keep the order of `u.data`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np

from tfrec.data.errors import DataError
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, USERS_SCHEMA, Dataset, EventType, Table

REQUIRED_FILES = ("u.data", "u.item", "u.user", "u.genre")
ENCODING = "latin-1"  # u.item is LATIN-1; the other files are ASCII, which LATIN-1 decodes identically
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}
_TITLE_YEAR = re.compile(r"\((\d{4})\)")
_N_ITEM_FIELDS_BEFORE_GENRES = 5


def load_movielens(path) -> Dataset:
    """Loads the ml-100k folder at `path`; DataError naming the file for a missing file or a malformed line."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(str(folder), "directory not found", detail="MovieLens folder not found")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(
            str(folder),
            "incomplete MovieLens folder",
            detail=f"missing {', '.join(missing)}; an ml-100k folder needs {', '.join(REQUIRED_FILES)}",
        )
    genres = _read_genres(folder / "u.genre")
    catalog = _read_items(folder / "u.item", genres)
    users = _read_users(folder / "u.user")
    events = _read_ratings(folder / "u.data")
    for column, table, file in (("item_id", catalog, "u.item"), ("user_id", users, "u.user")):
        known = set(table[column].tolist())
        for i, value in enumerate(events[column].tolist()):
            if value not in known:
                raise DataError("u.data", f"unknown {column[:-3]}", row=i + 1, field=column, value=value,
                                detail=f"unknown {column[:-3]} {value!r} (not in {file})")
    return Dataset(catalog=catalog, events=events, users=users)


def _records(path: Path, separator: str, n_fields: int) -> Iterator[Tuple[int, int, List[str]]]:
    """(data row, line, fields) for each non-blank line, checking the field count."""
    row = 0
    with open(path, "r", encoding=ENCODING, newline="") as handle:
        for line, text in enumerate(handle, start=1):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            row += 1
            fields = text.split(separator)
            if len(fields) != n_fields:
                raise DataError(path.name, "wrong number of fields", row=row, line=line,
                                detail=f"expected {n_fields} {separator!r}-separated fields, got {len(fields)}")
            yield row, line, fields


def _read_genres(path: Path) -> List[str]:
    by_index: Dict[int, str] = {}
    for row, line, (name, index) in _records(path, "|", 2):
        if not index.isdigit():
            raise DataError(path.name, "not an integer", row=row, line=line, field="index", value=index,
                            detail=f"genre index {index!r} is not an integer")
        by_index[int(index)] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(path.name, "bad genre indices", detail=f"genre indices {sorted(by_index)} are not 0..n-1")
    return [by_index[i] for i in range(len(by_index))]


def _read_items(path: Path, genres: List[str]) -> Table:
    rows = []
    n_fields = _N_ITEM_FIELDS_BEFORE_GENRES + len(genres)
    for row, line, fields in _records(path, "|", n_fields):
        item_id, title, release, _video_release, url = fields[:_N_ITEM_FIELDS_BEFORE_GENRES]
        flags = fields[_N_ITEM_FIELDS_BEFORE_GENRES:]
        if any(flag not in ("0", "1") for flag in flags):
            raise DataError(path.name, "bad genre flag", row=row, line=line, field="genres", value="|".join(flags),
                            detail=f"genre flags must be 0 or 1, got {'|'.join(flags)!r}")
        flagged = [genre for genre, flag in zip(genres, flags) if flag == "1"]
        release_date = _iso_date(release, path.name, row, line)
        title = title.rstrip()
        title_years = _TITLE_YEAR.findall(title)
        rows.append({
            "item_id": item_id,
            "title": title,
            "category": ("Movies > " + flagged[0]) if flagged else "Movies",
            "genres": "|".join(flagged),
            "release_date": release_date,
            "year": title_years[-1] if title_years else release_date[:4],
            "imdb_url": url,
        })
    _check_unique(path.name, [r["item_id"] for r in rows], "item_id")
    return Table.from_rows(CATALOG_SCHEMA, rows)


def _read_users(path: Path) -> Table:
    rows = [
        {"user_id": user_id, "age": age, "gender": gender, "occupation": occupation, "zip": zip_code}
        for _, _, (user_id, age, gender, occupation, zip_code) in _records(path, "|", 5)
    ]
    _check_unique(path.name, [r["user_id"] for r in rows], "user_id")
    return Table.from_rows(USERS_SCHEMA, rows)


def _read_ratings(path: Path) -> Table:
    users, items, ratings, timestamps = [], [], [], []
    for row, line, (user_id, item_id, rating, timestamp) in _records(path, "\t", 4):
        if rating not in ("1", "2", "3", "4", "5"):
            raise DataError(path.name, "bad rating", row=row, line=line, field="rating", value=rating,
                            detail=f"rating must be an integer 1-5, got {rating!r}")
        if not timestamp.isdigit():
            raise DataError(path.name, "not a timestamp", row=row, line=line, field="timestamp", value=timestamp,
                            detail=f"timestamp must be unix seconds, got {timestamp!r}")
        users.append(user_id)
        items.append(item_id)
        ratings.append(float(rating))
        timestamps.append(int(timestamp))
    n = len(users)
    columns = {
        "user_id": np.array(users, dtype=object),
        "item_id": np.array(items, dtype=object),
        "event_type": np.full(n, EventType.RATE.value, dtype=object),
        "timestamp": np.array(timestamps, dtype=np.int64),
        "rating": np.array(ratings, dtype=np.float64),
    }
    return Table(EVENTS_SCHEMA, columns)


def _iso_date(text: str, file: str, row: int, line: int) -> str:
    """'01-Jan-1995' -> '1995-01-01' without the locale-dependent strptime('%b'); '' stays ''."""
    if not text:
        return ""
    parts = text.split("-")
    if len(parts) == 3 and parts[0].isdigit() and parts[1] in _MONTHS and parts[2].isdigit():
        return f"{int(parts[2]):04d}-{_MONTHS[parts[1]]:02d}-{int(parts[0]):02d}"
    raise DataError(file, "bad release date", row=row, line=line, field="release_date", value=text,
                    detail=f"release date {text!r} is not DD-Mon-YYYY")


def _check_unique(file: str, ids: List[str], field: str) -> None:
    first: Dict[str, int] = {}
    for row, value in enumerate(ids, start=1):
        if first.setdefault(value, row) != row:
            raise DataError(file, "duplicate key", row=row, field=field, value=value,
                            detail=f"duplicate {field} {value!r}, already used by row {first[value]}")
