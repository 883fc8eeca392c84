"""The contract every candidate channel (lexical, two-tower, popularity, ...) meets, so channels can be fused.

A channel answers a batch of queries with one ranked `Candidate` list per query and can be updated item by item, so
a catalog change re-indexes only the changed items instead of rebuilding the channel.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Union

from tfrec.data.schema import Table

__all__ = ["Candidate", "CandidateSource", "SearchFilters", "check_search_args", "resolve_filters"]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One retrieved item: its id, the channel's score (comparable only within that channel) and the channel name."""

    item_id: str
    score: float
    source: str


def _normalise_category(path: str) -> str:
    """'Home >  Decor' and 'home > decor' name the same node; levels are compared whole, never as substrings."""
    return " > ".join(level.strip().lower() for level in str(path).split(">") if level.strip())


@dataclasses.dataclass(frozen=True)
class SearchFilters:
    """Hard constraints applied on top of relevance: a category subtree, a set of brands and a price range.

    `category_prefix` matches whole levels ('Home > Decor' matches 'Home > Decor > Wall Art', not 'Home > Decorations');
    brands and categories compare case-insensitively; price bounds are inclusive and exclude items without a price.
    """

    category_prefix: Optional[str] = None
    brands: Optional[Sequence[str]] = None
    min_price: Optional[float] = None
    max_price: Optional[float] = None

    def __post_init__(self):
        if isinstance(self.brands, str):
            object.__setattr__(self, "brands", (self.brands,))
        elif self.brands is not None:
            object.__setattr__(self, "brands", tuple(self.brands))
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or math.isnan(value)):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")
        if self.category_prefix is not None and not _normalise_category(self.category_prefix):
            raise ValueError(f"category_prefix {self.category_prefix!r} names no category level")

    @property
    def category_key(self) -> Optional[str]:
        return None if self.category_prefix is None else _normalise_category(self.category_prefix)

    @property
    def brand_keys(self) -> Optional[List[str]]:
        return None if self.brands is None else sorted({b.strip().lower() for b in self.brands})

    @property
    def is_empty(self) -> bool:
        return self.category_prefix is None and self.brands is None and self.min_price is None and self.max_price is None


FiltersLike = Union[None, SearchFilters, Mapping[str, Any]]


def resolve_filters(filters: Union[FiltersLike, Sequence[FiltersLike]], n_queries: int) -> List[Optional[SearchFilters]]:
    """One filter (applied to every query) or one per query -> a per-query list; dicts become `SearchFilters`."""

    def one(f: FiltersLike) -> Optional[SearchFilters]:
        if f is None or isinstance(f, SearchFilters):
            return None if f is None or f.is_empty else f
        if isinstance(f, Mapping):
            return one(SearchFilters(**f))
        raise TypeError(f"filters must be SearchFilters, a dict or None, got {type(f).__name__}")

    if isinstance(filters, (list, tuple)):
        if len(filters) != n_queries:
            raise ValueError(f"got {len(filters)} filters for {n_queries} queries")
        return [one(f) for f in filters]
    return [one(filters)] * n_queries


def check_search_args(queries: Sequence[str], k: int, filters) -> List[Optional[SearchFilters]]:
    """Validates a `search` call's arguments (the same for every channel); returns one filter per query."""
    if isinstance(queries, str):
        raise TypeError("search takes a list of queries; wrap a single query in a list")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return resolve_filters(filters, len(queries))


class CandidateSource(abc.ABC):
    """A retrieval channel: ranked candidates for a batch of queries, updatable without a full rebuild."""

    #: name written into every `Candidate.source` this channel returns
    name: str = "source"

    @abc.abstractmethod
    def search(self, queries: Sequence[str], k: int,
               filters: Union[FiltersLike, Sequence[FiltersLike]] = None) -> List[List[Candidate]]:
        """Up to `k` candidates per query, best first; `filters` is one filter for all queries or one per query."""

    @abc.abstractmethod
    def add_items(self, items: Table) -> None:
        """Adds catalog rows; a row whose item_id is already indexed replaces the old version."""

    @abc.abstractmethod
    def remove_items(self, item_ids: Iterable[str]) -> None:
        """Removes items by id; unknown ids are ignored so removal is idempotent."""

