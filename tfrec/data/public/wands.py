"""WANDS (Wayfair ANnotation Dataset) queries: real product-search queries with their product class.

File: `query.csv` from the WANDS repository, TAB-separated despite its name, with a header `query_id, query,
query_class` and CSV quoting (a quote inside a field is doubled, within a quoted field). The published copy has 480
queries and 189 distinct class values, one of them empty: 6 queries have no class (they are kept, with class '',
and left out of `labelled()` and the split), so 188 real classes. MIT licence; read it from a local copy.

Mapping to query understanding: query -> `query`, query_class -> intent (`category` of LABELLED_QUERIES_SCHEMA,
which `to_table` returns; the query id is kept as the `query_id` attribute).

`wands_split` holds out a test share stratified by class where possible: a class with one query stays in train.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from tfrec.data.errors import DataError
from tfrec.data.query_labels import LABELLED_QUERIES_SCHEMA
from tfrec.data.schema import Table

__all__ = ["QUERY_FILE", "WandsQueries", "load_wands", "wands_split"]

QUERY_FILE = "query.csv"
_COLUMNS = ("query_id", "query", "query_class")


@dataclasses.dataclass
class WandsQueries:
    """Aligned arrays in file order: int64 query ids, query texts and their class ('' = unlabelled)."""

    query_id: np.ndarray
    query: np.ndarray
    query_class: np.ndarray

    def __len__(self) -> int:
        return len(self.query)

    @property
    def classes(self) -> List[str]:
        """Distinct non-empty classes, sorted."""
        return sorted(set(self.query_class.tolist()) - {""})

    def take(self, indices) -> "WandsQueries":
        indices = np.asarray(indices)
        return WandsQueries(self.query_id[indices], self.query[indices], self.query_class[indices])

    def labelled(self) -> "WandsQueries":
        """The queries that have a class."""
        return self.take(self.query_class != "")

    def to_table(self) -> Table:
        """A LABELLED_QUERIES_SCHEMA table (query, category = class; no slots) with a `query_id` attribute."""
        return Table(LABELLED_QUERIES_SCHEMA, {"query": self.query, "category": self.query_class},
                     {"query_id": self.query_id.astype(str).astype(object)})

    def __repr__(self) -> str:
        return f"WandsQueries(queries={len(self)}, classes={len(self.classes)})"


def load_wands(path) -> WandsQueries:
    """Reads WANDS `query.csv` (give the file or its folder); a DataError names the file and row of a bad row."""
    path = Path(path)
    if path.is_dir():
        path = path / QUERY_FILE
    if not path.is_file():
        raise DataError(str(path), "file not found", detail=f"WANDS query file not found: {path}")
    ids, queries, classes = [], [], []
    first: Dict[int, int] = {}
    for row, line, record in _records(path):
        text = record["query_id"].strip()
        try:
            qid = int(text)
        except ValueError:
            raise DataError(path.name, "not an integer", row=row, line=line, field="query_id", value=text,
                            detail=f"query_id must be an integer, got {text!r}") from None
        if first.setdefault(qid, row) != row:
            raise DataError(path.name, "duplicate key", row=row, line=line, field="query_id", value=qid,
                            detail=f"duplicate query_id {qid}, already used by row {first[qid]}")
        if not record["query"].strip():
            raise DataError(path.name, "empty query", row=row, line=line, field="query", detail="query is empty")
        ids.append(qid)
        queries.append(record["query"])
        classes.append(record["query_class"].strip())
    if not ids:
        raise DataError(path.name, "empty file", detail="no queries; expected one query per row")
    return WandsQueries(np.array(ids, dtype=np.int64), np.array(queries, dtype=object),
                        np.array(classes, dtype=object))


def _records(path: Path):
    """(data row number, physical line, dict) per record, checking the header and the field count."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            header = [h.strip() for h in next(reader, [])]
            absent = [c for c in _COLUMNS if c not in header]
            if absent:
                raise DataError(path.name, "missing column", field=absent[0],
                                detail=f"missing column(s) {', '.join(absent)}; the header is {header}")
            line, row = reader.line_num, 0
            try:
                for fields in reader:
                    start, line = line + 1, reader.line_num
                    if not fields:
                        continue
                    row += 1
                    if len(fields) != len(header):
                        raise DataError(path.name, "wrong number of fields", row=row, line=start,
                                        detail=f"expected {len(header)} tab-separated fields, got {len(fields)}")
                    yield row, start, dict(zip(header, fields))
            except csv.Error as exc:
                raise DataError(path.name, "malformed CSV", row=row + 1, line=reader.line_num,
                                detail=f"malformed line: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(path.name, "not UTF-8", detail=f"the file is not valid UTF-8 ({exc.reason})") from None


def wands_split(data: WandsQueries, seed: int = 0, test_fraction: float = 0.25) -> Tuple[WandsQueries, WandsQueries]:
    """(train, test) of the labelled queries, reproducible by seed and independent of row order.

    The test side gets round(test_fraction x labelled queries) queries, spread over the classes with two or more
    queries in proportion to their size (largest remainders, seeded ties), never a class's last query; classes
    with a single query stay in train. Each side is in query_id order.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    data = data.take(np.argsort(data.query_id, kind="stable")).labelled()
    rng = np.random.default_rng(seed)
    names, inverse, counts = np.unique(data.query_class.astype(str), return_inverse=True, return_counts=True)
    eligible = counts >= 2
    cap = np.where(eligible, counts - 1, 0)
    target = min(int(round(test_fraction * len(data))), int(cap.sum()))
    quota = np.where(eligible, target * counts / max(int(counts[eligible].sum()), 1), 0.0)
    n_test = np.minimum(np.floor(quota).astype(np.int64), cap)
    tiebreak = rng.random(len(names))
    while n_test.sum() < target:  # hand out the rest by largest remainder among classes with room
        room = n_test < cap
        order = np.lexsort((tiebreak, -(quota - n_test)))
        order = order[room[order]]
        n_test[order[: target - int(n_test.sum())]] += 1
    test = np.zeros(len(data), dtype=bool)
    for c in np.flatnonzero(n_test):
        members = np.flatnonzero(inverse == c)
        test[rng.permutation(members)[: n_test[c]]] = True
    return data.take(~test), data.take(test)
