"""The catalog (and user attributes) the search service answers from: item metadata for responses and filters, and
the item/user columns the ranker reads, loaded from the same dataset files the models were trained on.

String columns are also kept UTF-8 encoded, so building a ranker request for hundreds of candidates is a numpy
take and a list extend, not a per-value encode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from tfrec.data.dataset_io import find_table_files
from tfrec.data.readers import read_table
from tfrec.data.schema import CATALOG_SCHEMA, USERS_SCHEMA, Table, category_levels

CORE = ("item_id", "title", "category", "brand", "price")
IN_STOCK_COLUMNS = ("in_stock", "stock")  # a yes/no column, or a count (> 0 is in stock)
_TRUE = {"1", "true", "yes", "y", "t", "in stock", "in_stock"}


def _encoded(values: np.ndarray) -> np.ndarray:
    return np.array([str(v).encode("utf-8") for v in values.tolist()], dtype=object)


class Catalog:
    """Items by id with their columns, user attributes by id, and per-column helpers for filters and requests."""

    def __init__(self, items: Table, users: Optional[Table] = None, source: str = "<memory>"):
        self.source = source
        self.item_ids = items["item_id"].astype(object)
        self.columns: Dict[str, np.ndarray] = {name: items[name] for name in CORE}
        self.columns.update(items.attributes)
        # Ids sorted as fixed-width UTF-8 bytes (what models answer with): a request's few hundred ids are found
        # with one searchsorted.
        ids = _as_bytes(self.item_ids.tolist())
        self._id_order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._id_order]
        repeated = self._sorted_ids[1:] == self._sorted_ids[:-1]
        if repeated.any():
            raise ValueError(f"{source}: item ids are not unique "
                             f"({self._sorted_ids[1:][repeated][0].decode('utf-8')!r} appears more than once)")
        self.attribute_names = sorted(items.attributes)
        self.in_stock = self._stock(items)
        self.user_attributes: Dict[str, Dict[str, str]] = {}
        if users is not None:
            names = sorted(users.attributes)
            for i, user in enumerate(users["user_id"].tolist()):
                self.user_attributes[user] = {n: str(users.attributes[n][i]) for n in names}
        self._encoded: Dict[str, np.ndarray] = {}
        self._lower: Dict[str, np.ndarray] = {}
        self._levels: Optional[List[List[str]]] = None
        self._prefixes: Dict[int, np.ndarray] = {}
        self._leaf: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.item_ids)

    @staticmethod
    def _stock(items: Table) -> Optional[np.ndarray]:
        for name in IN_STOCK_COLUMNS:
            if name in items.attributes:
                values = items.attributes[name].astype(str)
                as_number = np.array([_number(v) for v in values.tolist()])
                return np.where(np.isnan(as_number), np.isin(np.char.lower(values), list(_TRUE)), as_number > 0)
        return None

    @property
    def filterable(self) -> List[str]:
        """Fields a request may filter on."""
        return ["price", "category", "brand"] + (["in_stock"] if self.in_stock is not None else []) + [
            n for n in self.attribute_names if n not in IN_STOCK_COLUMNS]

    def has_column(self, name: str) -> bool:
        return name in self.columns

    def column(self, name: str, rows: np.ndarray) -> np.ndarray:
        return self.columns[name][rows]

    def encoded(self, name: str, rows: np.ndarray) -> List[bytes]:
        """A string column's values at `rows`, UTF-8 encoded (cached per column)."""
        if name not in self._encoded:
            self._encoded[name] = _encoded(self.columns[name])
        return self._encoded[name][rows].tolist()

    def lower(self, name: str) -> np.ndarray:
        """A string column lower-cased and stripped (cached), for case-insensitive matching."""
        if name not in self._lower:
            self._lower[name] = np.array([str(v).strip().lower() for v in self.columns[name].tolist()], dtype=object)
        return self._lower[name]

    def category_levels(self) -> List[List[str]]:
        """Each item's category path split into lower-cased levels (cached)."""
        if self._levels is None:
            self._levels = [[level.lower() for level in category_levels(str(c))]
                            for c in self.columns["category"].tolist()]
        return self._levels

    def category_prefix(self, depth: int) -> np.ndarray:
        """Each item's first `depth` lower-cased category levels joined by ">" ('' when its path is shallower;
        cached per depth), so a category filter is one comparison over the candidates."""
        if depth not in self._prefixes:
            self._prefixes[depth] = np.array([">".join(levels[:depth]) if len(levels) >= depth else ""
                                              for levels in self.category_levels()], dtype=object)
        return self._prefixes[depth]

    def category_leaf(self) -> np.ndarray:
        """Each item's lower-cased last category level ('' without a category; cached)."""
        if self._leaf is None:
            self._leaf = np.array([levels[-1] if levels else "" for levels in self.category_levels()], dtype=object)
        return self._leaf

    def rows(self, item_ids) -> Tuple[np.ndarray, np.ndarray]:
        """(rows, known): the catalog row of each id (-1 for ids not in the catalog) and which ids are known. Ids are
        strings, or a bytes array (dtype "S", UTF-8) as a model's string output decodes to."""
        is_bytes = isinstance(item_ids, np.ndarray) and item_ids.dtype.kind == "S"
        if len(item_ids) == 0 or len(self._sorted_ids) == 0:
            return np.full(len(item_ids), -1, dtype=np.int64), np.zeros(len(item_ids), dtype=bool)
        wanted = item_ids if is_bytes else _as_bytes(item_ids)
        at = np.minimum(np.searchsorted(self._sorted_ids, wanted), len(self._sorted_ids) - 1)
        known = self._sorted_ids[at] == wanted
        return np.where(known, self._id_order[at], -1).astype(np.int64), known

    def item(self, row: int) -> Dict[str, object]:
        """One item's columns as plain values."""
        return {name: values[row] for name, values in self.columns.items()}


def _as_bytes(ids) -> np.ndarray:
    """Ids as a fixed-width UTF-8 bytes array."""
    return np.array([str(i).encode("utf-8") for i in ids], dtype="S")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def load_catalog(path: str, users: Optional[str] = None) -> Catalog:
    """A dataset directory (its catalog and, when present, users file) or a catalog file (with an optional users
    file); read with tfrec's readers, so a bad row is an error naming the file, row and field."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"catalog {path}: no such file or directory")
    if os.path.isdir(path):
        files = find_table_files(path)
        catalog_file, users_file = files["catalog"], files["users"]
    else:
        catalog_file, users_file = Path(path), None
    if users is not None:
        if not os.path.isfile(users):
            raise FileNotFoundError(f"users {users}: no such file")
        users_file = Path(users)
    items = read_table(catalog_file, CATALOG_SCHEMA)
    user_table = read_table(users_file, USERS_SCHEMA) if users_file is not None else None
    return Catalog(items, user_table, source=str(catalog_file))
