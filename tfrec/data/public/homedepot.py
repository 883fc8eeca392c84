"""Home Depot product search relevance (the Kaggle competition's `train.csv`, as laid out in a local folder).

Files: `products.csv` (`product_uid, product_title`, plus any further product columns such as `brand` or
attributes) is the catalog: every product is a candidate for every query. `judgments.csv` (`id, product_uid,
product_title, search_term, relevance`) holds human relevance judgments, 1.0 (irrelevant) to 3.0 (exact), the
average of several raters' grades. The data is research-only: read it from a local copy, never ship it.

Mapping: catalog `item_id` = product_uid, `title` = product_title, `brand` = a `brand` column when the file has one;
any other product column becomes a string attribute. Judgments become three aligned arrays (query text, item id,
relevance) in file order; `relevant(2.5)` gives the query -> relevant items map the data set's README evaluates with.

`query_split` splits by distinct query text, never by judgment row: a query's judgments all land on one side, so a
model trained on one side is evaluated on queries it has never seen (the honest setting for a search engine,
where tomorrow's queries are mostly new strings).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np

from tfrec.data.errors import DataError
from tfrec.data.schema import CATALOG_SCHEMA, Table

__all__ = ["HomeDepotSearch", "RELEVANT", "load_homedepot", "query_split"]

PRODUCTS, JUDGMENTS = "products.csv", "judgments.csv"
RELEVANT = 2.5  # the README's threshold: relevant = relevance >= 2.5
MIN_RELEVANCE, MAX_RELEVANCE = 1.0, 3.0
_PRODUCT_COLUMNS = ("product_uid", "product_title")
_JUDGMENT_COLUMNS = ("product_uid", "search_term", "relevance")


@dataclasses.dataclass
class HomeDepotSearch:
    """The catalog and the judged (query, item, relevance) triples, aligned arrays in file order."""

    catalog: Table
    query: np.ndarray
    item_id: np.ndarray
    relevance: np.ndarray

    def __len__(self) -> int:
        return len(self.query)

    @property
    def queries(self) -> List[str]:
        """Distinct judged queries in order of first appearance."""
        return list(dict.fromkeys(self.query.tolist()))

    def relevant(self, threshold: float = RELEVANT) -> Dict[str, Set[str]]:
        """Every judged query -> ids judged >= `threshold` (an empty set when none is), in first-appearance order."""
        out: Dict[str, Set[str]] = {q: set() for q in self.queries}
        for q, item, rel in zip(self.query.tolist(), self.item_id.tolist(), self.relevance.tolist()):
            if rel >= threshold:
                out[q].add(item)
        return out

    def subset(self, queries: Sequence[str]) -> "HomeDepotSearch":
        """The judgments of `queries` only (same catalog)."""
        keep = np.isin(self.query, np.asarray(list(queries), dtype=object))
        return HomeDepotSearch(self.catalog, self.query[keep], self.item_id[keep], self.relevance[keep])

    def __repr__(self) -> str:
        return f"HomeDepotSearch(products={len(self.catalog)}, judgments={len(self)}, queries={len(self.queries)})"


def load_homedepot(folder) -> HomeDepotSearch:
    """Loads `products.csv` and `judgments.csv` from `folder`; a DataError names the file and row of any bad row."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(str(folder), "directory not found", detail="Home Depot search folder not found")
    missing = [name for name in (PRODUCTS, JUDGMENTS) if not (folder / name).is_file()]
    if missing:
        raise DataError(str(folder), "incomplete Home Depot folder",
                        detail=f"missing {', '.join(missing)}; the folder needs {PRODUCTS} and {JUDGMENTS}")
    catalog = _read_products(folder / PRODUCTS)
    query, item_id, relevance = _read_judgments(folder / JUDGMENTS, set(catalog["item_id"].tolist()))
    return HomeDepotSearch(catalog, query, item_id, relevance)


def query_split(queries: Sequence[str], test_fraction: float, seed: int = 0) -> Tuple[List[str], List[str]]:
    """(train, test) lists of distinct queries, round(test_fraction * n) of them on the test side.

    Duplicates count once; the result depends only on the set of queries and the seed (not on their order), and each
    side is sorted.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    distinct = sorted(set(queries))
    order = np.random.default_rng(seed).permutation(len(distinct))
    n_test = int(round(test_fraction * len(distinct)))
    test = set(order[:n_test].tolist())
    return ([q for i, q in enumerate(distinct) if i not in test], [q for i, q in enumerate(distinct) if i in test])


def _rows(path: Path, required: Sequence[str]):
    """(header, data row number, physical line, dict) for each CSV record, checking the header and field count."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(path.name, "empty file", detail=f"no header; expected columns {', '.join(required)}")
            header = [h.strip() for h in header]
            absent = [c for c in required if c not in header]
            if absent:
                raise DataError(path.name, "missing column", field=absent[0],
                                detail=f"missing column(s) {', '.join(absent)}; the header is {', '.join(header)}")
            line = reader.line_num
            row = 0
            try:
                for fields in reader:
                    start, line = line + 1, reader.line_num
                    if not fields:
                        continue
                    row += 1
                    if len(fields) != len(header):
                        raise DataError(path.name, "wrong number of fields", row=row, line=start,
                                        detail=f"expected {len(header)} comma-separated fields, got {len(fields)}")
                    yield header, row, start, dict(zip(header, fields))
            except csv.Error as exc:
                raise DataError(path.name, "malformed CSV", row=row + 1, line=reader.line_num,
                                detail=f"malformed CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(path.name, "not UTF-8", detail=f"the file is not valid UTF-8 ({exc.reason})") from None


def _read_products(path: Path) -> Table:
    ids, titles, brands, extra = [], [], [], {}
    first: Dict[str, int] = {}
    has_brand = False
    for header, row, line, record in _rows(path, _PRODUCT_COLUMNS):
        uid = record["product_uid"].strip()
        if not uid:
            raise DataError(path.name, "empty product_uid", row=row, line=line, field="product_uid",
                            detail="product_uid is empty")
        if first.setdefault(uid, row) != row:
            raise DataError(path.name, "duplicate key", row=row, line=line, field="product_uid", value=uid,
                            detail=f"duplicate product_uid {uid!r}, already used by row {first[uid]}")
        ids.append(uid)
        titles.append(record["product_title"])
        has_brand = "brand" in record
        brands.append(record.get("brand", ""))
        for name in header:
            if name not in _PRODUCT_COLUMNS and name != "brand":
                extra.setdefault(name, []).append(record[name])
    if not ids:
        raise DataError(path.name, "empty file", detail="no products; expected one product per row")
    columns = {"item_id": ids, "title": titles}
    if has_brand:
        columns["brand"] = brands
    return Table(CATALOG_SCHEMA, columns, extra)


def _read_judgments(path: Path, known: Set[str]):
    queries, items, relevance = [], [], []
    for _, row, line, record in _rows(path, _JUDGMENT_COLUMNS):
        uid, query, text = record["product_uid"].strip(), record["search_term"], record["relevance"].strip()
        if uid not in known:
            raise DataError(path.name, "unknown product", row=row, line=line, field="product_uid", value=uid,
                            detail=f"unknown product_uid {uid!r} (not in {PRODUCTS})")
        if not query.strip():
            raise DataError(path.name, "empty query", row=row, line=line, field="search_term",
                            detail="search_term is empty")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not MIN_RELEVANCE <= value <= MAX_RELEVANCE:  # NaN fails too
            raise DataError(path.name, "bad relevance", row=row, line=line, field="relevance", value=text,
                            detail=f"relevance must be a number from {MIN_RELEVANCE} to {MAX_RELEVANCE}, got {text!r}")
        queries.append(query)
        items.append(uid)
        relevance.append(value)
    if not queries:
        raise DataError(path.name, "empty file", detail="no judgments; expected one (query, product) pair per row")
    return (np.array(queries, dtype=object), np.array(items, dtype=object), np.array(relevance, dtype=np.float64))
