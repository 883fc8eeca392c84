"""The canonical e-commerce schema: catalog items, users and events as typed, column-oriented tables.

Every reader, loader and generator produces these tables, and everything downstream (examples, features, models)
reads only them, so a shop's own data and the built-in synthetic data go through the same code.

Column storage: strings are numpy object arrays of `str`, ints are int64, floats are float64 (NaN = missing),
timestamps are int64 seconds since the Unix epoch (UTC). Columns a table's schema does not name are kept as
string *attributes* (item colour, user segment, event device, ...), never silently dropped.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np


class EventType(str, enum.Enum):
    """What a shopper did with an item; `rate` carries an explicit rating (e.g. MovieLens)."""

    IMPRESSION = "impression"
    CLICK = "click"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    RATE = "rate"


EVENT_TYPES = tuple(t.value for t in EventType)

# Field dtypes understood by readers: how a raw cell is parsed and which numpy dtype holds the column.
DTYPES = ("string", "int", "float", "timestamp", "event_type")
_NUMPY_DTYPE = {"string": object, "int": np.int64, "float": np.float64, "timestamp": np.int64, "event_type": object}


@dataclasses.dataclass(frozen=True)
class Field:
    """One column of a table: its name, dtype, whether a row may omit it, and the value used when it does."""

    name: str
    dtype: str
    required: bool = False
    default: Any = None
    doc: str = ""

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"field {self.name!r}: dtype {self.dtype!r} is not one of {DTYPES}")

    @property
    def numpy_dtype(self):
        return _NUMPY_DTYPE[self.dtype]


@dataclasses.dataclass(frozen=True)
class TableSchema:
    """The fields of one table and its key column (unique per row for catalog and users; none for events)."""

    name: str
    fields: tuple
    key: Optional[str] = None

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}; fields are {self.field_names}")

    @property
    def field_names(self) -> List[str]:
        return [f.name for f in self.fields]

    @property
    def required(self) -> List[str]:
        return [f.name for f in self.fields if f.required]


NAN = float("nan")

CATALOG_SCHEMA = TableSchema(
    "catalog",
    (
        Field("item_id", "string", required=True, doc="unique product id"),
        Field("title", "string", default="", doc="product title as shown to shoppers"),
        Field("category", "string", default="", doc="category path, levels joined by ' > ' (root first)"),
        Field("brand", "string", default=""),
        Field("price", "float", default=NAN, doc="list price; NaN when unknown"),
    ),
    key="item_id",
)

USERS_SCHEMA = TableSchema(
    "users",
    (Field("user_id", "string", required=True, doc="unique shopper id"),),
    key="user_id",
)

EVENTS_SCHEMA = TableSchema(
    "events",
    (
        Field("user_id", "string", required=True),
        Field("item_id", "string", required=True),
        Field("event_type", "event_type", required=True, doc="one of " + ", ".join(EVENT_TYPES)),
        Field("timestamp", "timestamp", required=True, doc="seconds since the Unix epoch, UTC"),
        Field("query", "string", default="", doc="search text of the request; empty for recommendations"),
        Field("position", "int", default=-1, doc="0-based rank the item was shown at; -1 when unknown"),
        Field("price", "float", default=NAN, doc="price shown to the shopper; NaN when unknown"),
        Field("request_id", "string", default="", doc="the request (search/recommendation) the event belongs to"),
        Field("rating", "float", default=NAN, doc="explicit rating for `rate` events"),
    ),
)

SCHEMAS = {s.name: s for s in (CATALOG_SCHEMA, USERS_SCHEMA, EVENTS_SCHEMA)}


class Table:
    """Rows of one schema held as equal-length numpy columns plus free-form string attribute columns."""

    def __init__(self, schema: TableSchema, columns: Mapping[str, Any], attributes: Optional[Mapping[str, Any]] = None):
        self.schema = schema
        self.columns: Dict[str, np.ndarray] = {}
        n = None
        for f in schema.fields:
            if f.name in columns:
                col = np.asarray(columns[f.name], dtype=f.numpy_dtype)
            elif f.required:
                raise ValueError(f"{schema.name}: required column {f.name!r} is missing")
            else:
                col = None
            if col is not None:
                if col.ndim != 1:
                    raise ValueError(f"{schema.name}.{f.name}: expected a 1-D column, got shape {col.shape}")
                if n is not None and len(col) != n:
                    raise ValueError(f"{schema.name}.{f.name}: has {len(col)} rows, other columns have {n}")
                n = len(col)
            self.columns[f.name] = col
        unknown = set(columns) - set(schema.field_names)
        if unknown:
            raise ValueError(f"{schema.name}: unknown columns {sorted(unknown)}; pass them as attributes")
        self.attributes: Dict[str, np.ndarray] = {}
        for name, values in (attributes or {}).items():
            if name in schema.field_names:
                raise ValueError(f"{schema.name}: attribute {name!r} clashes with a schema field")
            col = np.asarray(values, dtype=object)
            if n is not None and len(col) != n:
                raise ValueError(f"{schema.name} attribute {name!r}: has {len(col)} rows, other columns have {n}")
            n = len(col) if n is None else n
            self.attributes[name] = col
        self._len = n or 0
        for f in schema.fields:  # fill optional columns the caller left out with their defaults
            if self.columns[f.name] is None:
                self.columns[f.name] = np.full(self._len, f.default, dtype=f.numpy_dtype)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.columns:
            return self.columns[name]
        if name in self.attributes:
            return self.attributes[name]
        raise KeyError(f"{self.schema.name} has no column {name!r}")

    def __contains__(self, name: str) -> bool:
        return name in self.columns or name in self.attributes

    def __repr__(self) -> str:
        return f"Table({self.schema.name}, rows={len(self)}, attributes={sorted(self.attributes)})"

    @property
    def column_names(self) -> List[str]:
        return self.schema.field_names + sorted(self.attributes)

    def take(self, indices) -> "Table":
        """Rows at `indices` (an int array or boolean mask), as a new table."""
        indices = np.asarray(indices)
        return Table(
            self.schema,
            {k: v[indices] for k, v in self.columns.items()},
            {k: v[indices] for k, v in self.attributes.items()},
        )

    def row(self, i: int) -> Dict[str, Any]:
        """One row as a plain dict (schema fields, then attributes)."""
        out = {k: _python_value(v[i]) for k, v in self.columns.items()}
        out.update({k: v[i] for k, v in self.attributes.items()})
        return out

    def rows(self) -> Iterable[Dict[str, Any]]:
        for i in range(len(self)):
            yield self.row(i)

    def equals(self, other: "Table") -> bool:
        """Exact equality of schema, columns and attributes (NaN equals NaN)."""
        if self.schema != other.schema or len(self) != len(other) or set(self.attributes) != set(other.attributes):
            return False
        for name in self.columns:
            a, b = self.columns[name], other.columns[name]
            if a.dtype == np.float64:
                if not np.array_equal(a, b, equal_nan=True):
                    return False
            elif not np.array_equal(a, b):
                return False
        return all(np.array_equal(self.attributes[k], other.attributes[k]) for k in self.attributes)

    @classmethod
    def from_rows(cls, schema: TableSchema, rows: Sequence[Mapping[str, Any]]) -> "Table":
        """Builds a table from already-typed dict rows; keys outside the schema become attributes."""
        names = schema.field_names
        columns = {f.name: [r.get(f.name, f.default) for r in rows] for f in schema.fields if rows or f.required}
        extra = sorted({k for r in rows for k in r} - set(names))
        attributes = {k: ["" if r.get(k) is None else str(r.get(k)) for r in rows] for k in extra}
        if not rows:
            columns = {f.name: [] for f in schema.fields}
        return cls(schema, columns, attributes)


def _python_value(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


@dataclasses.dataclass
class Dataset:
    """A catalog, its events and (optionally) user attributes: the unit every loader returns."""

    catalog: Table
    events: Table
    users: Optional[Table] = None

    def __post_init__(self):
        for table, schema in ((self.catalog, CATALOG_SCHEMA), (self.events, EVENTS_SCHEMA)):
            if table.schema != schema:
                raise ValueError(f"expected a {schema.name} table, got {table.schema.name}")
        if self.users is not None and self.users.schema != USERS_SCHEMA:
            raise ValueError(f"expected a users table, got {self.users.schema.name}")

    def __repr__(self) -> str:
        users = len(self.users) if self.users is not None else "none"
        return f"Dataset(items={len(self.catalog)}, events={len(self.events)}, users={users})"


def category_levels(path: str) -> List[str]:
    """Splits a category path 'A > B > C' into its levels, ignoring blank levels."""
    return [p.strip() for p in path.split(">") if p.strip()]


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
