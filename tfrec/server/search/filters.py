"""Filters on retrieved candidates: the request's (hard constraints) and the query's (slots the intent model parsed:
category, brand, colour, size, gender, material, price limits), which are dropped again, least reliable first, when
together they would leave nothing — a shopper typing "red nike trail shoes" still gets an answer when the retrieved
candidates hold no red ones.

Text fields match case-insensitively any of the filter's values; a category value matches a path prefix
("Shoes", "Shoes > Running") or a leaf name ("Running Shoes"); price takes a min and/or a max; in_stock needs the
catalog's `in_stock` (yes/no) or `stock` (count) column.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfrec.server.errors import invalid
from tfrec.server.search.catalog import Catalog

TEXT_SLOTS = ("brand", "color", "size", "gender", "material")
# Query-derived filters are given up in this order when together they leave no candidate (least reliable first).
RELAX_ORDER = ("category", "material", "size", "gender", "color", "brand", "price")
MAX_FILTER_VALUES = 100


@dataclasses.dataclass(frozen=True)
class FilterSpec:
    """One validated filter; `source` is "request" or "query" (parsed from the search text)."""

    field: str
    values: Tuple[str, ...] = ()
    min: Optional[float] = None
    max: Optional[float] = None
    source: str = "request"

    def describe(self) -> str:
        if self.field == "price":
            parts = ([f">= {self.min:g}"] if self.min is not None else []) + (
                [f"<= {self.max:g}"] if self.max is not None else [])
            return "price " + " and ".join(parts)
        if self.field == "in_stock":
            return "in stock"
        return f"{self.field} " + " or ".join(repr(v) for v in self.values)


def check_filters(filters: Sequence, catalog: Catalog, path: str = "filters") -> List[FilterSpec]:
    """FilterSpecs from the request's Filter messages, or INVALID_ARGUMENT naming the bad one
    ("filters[1].field: unknown filter field 'colour'; ...")."""
    allowed = catalog.filterable
    out = []
    for i, f in enumerate(filters):
        where = f"{path}[{i}]"
        name = f.field.strip().lower()
        if name not in allowed:
            raise invalid(f"{where}.field: unknown filter field {f.field!r}; filterable fields are {allowed}")
        low = f.min if f.HasField("min") else None
        high = f.max if f.HasField("max") else None
        values = tuple(v.strip() for v in f.values if v.strip())
        if name == "price":
            if values:
                raise invalid(f"{where}.values: price takes min and/or max, not values")
            if low is None and high is None:
                raise invalid(f"{where}: a price filter needs min and/or max")
            for key, bound in (("min", low), ("max", high)):
                if bound is not None and (not math.isfinite(bound) or bound < 0):
                    raise invalid(f"{where}.{key}: price must be a finite number >= 0, got {bound}")
            if low is not None and high is not None and low > high:
                raise invalid(f"{where}: min {low:g} is above max {high:g}")
        else:
            if low is not None or high is not None:
                raise invalid(f"{where}: min/max apply to price only, not {name}")
            if name != "in_stock" and not values:
                raise invalid(f"{where}.values: a {name} filter needs at least one value")
            if name == "in_stock" and values:
                raise invalid(f"{where}.values: in_stock takes no values")
            if len(values) > MAX_FILTER_VALUES:
                raise invalid(f"{where}.values: at most {MAX_FILTER_VALUES} values, got {len(values)}")
        out.append(FilterSpec(name, values, low, high, "request"))
    return out


def slot_filters(slots: Dict[str, object], catalog: Catalog, category: bool = True) -> List[FilterSpec]:
    """Filters from parsed query slots ({name: '' / NaN when absent}), for the fields this catalog can filter."""
    out = []
    if category and slots.get("category"):
        out.append(FilterSpec("category", (str(slots["category"]),), source="query"))
    filterable = set(catalog.filterable)
    for name in TEXT_SLOTS:
        if slots.get(name) and name in filterable:
            out.append(FilterSpec(name, (str(slots[name]),), source="query"))
    low, high = (_finite(slots.get(k)) for k in ("price_min", "price_max"))
    if low is not None and high is not None and low > high:
        low, high = high, low  # "between 80 and 20"
    if low is not None or high is not None:
        out.append(FilterSpec("price", (), low, high, "query"))
    return out


def _finite(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _category_mask(catalog: Catalog, rows: np.ndarray, values: Tuple[str, ...]) -> np.ndarray:
    keep = np.zeros(len(rows), dtype=bool)
    for value in values:
        wanted = [level.strip().lower() for level in value.split(">") if level.strip()]
        if not wanted:
            continue
        keep |= catalog.category_prefix(len(wanted))[rows] == ">".join(wanted)
        if len(wanted) == 1:  # a leaf name anywhere in the tree
            keep |= catalog.category_leaf()[rows] == wanted[0]
    return keep


def filter_mask(spec: FilterSpec, catalog: Catalog, rows: np.ndarray) -> np.ndarray:
    """Which of the catalog `rows` satisfy `spec`."""
    if spec.field == "price":
        price = catalog.column("price", rows).astype(np.float64)
        keep = ~np.isnan(price)
        if spec.min is not None:
            keep &= price >= spec.min
        if spec.max is not None:
            keep &= price <= spec.max
        return keep
    if spec.field == "in_stock":
        return catalog.in_stock[rows].astype(bool)
    if spec.field == "category":
        return _category_mask(catalog, rows, spec.values)
    wanted = [v.lower() for v in spec.values]
    return np.isin(catalog.lower(spec.field)[rows], wanted)


@dataclasses.dataclass
class FilterResult:
    keep: np.ndarray  # over the candidate rows
    applied: List[FilterSpec]
    relaxed: List[FilterSpec]


def apply_filters(request: Sequence[FilterSpec], query: Sequence[FilterSpec], catalog: Catalog,
                  rows: np.ndarray) -> FilterResult:
    """Request filters always hold; query filters hold unless together they leave no candidate, in which case they
    are given up in RELAX_ORDER until some candidate is left (or none remain to give up)."""
    keep = np.ones(len(rows), dtype=bool)
    for spec in request:
        keep &= filter_mask(spec, catalog, rows)
    masks = {spec: filter_mask(spec, catalog, rows) for spec in query}
    active = list(query)
    relaxed: List[FilterSpec] = []

    def combined() -> np.ndarray:
        out = keep.copy()
        for spec in active:
            out &= masks[spec]
        return out

    result = combined()
    for field in RELAX_ORDER:
        if result.any() or not keep.any():
            break
        dropped = [s for s in active if s.field == field]
        if dropped:
            active = [s for s in active if s.field != field]
            relaxed += dropped
            result = combined()
    return FilterResult(result, list(request) + active, relaxed)
