"""Lexical candidate channel: a tantivy (Lucene-style BM25) index over catalog titles, brands, categories and attributes.

Lexical matching is what finds exact tokens - model numbers, brand names, sizes - that embedding models blur, so it
is the channel fused with the two-tower model. Queries are never handed to tantivy's query parser: the text is
tokenized with the same analyzer the index uses and turned into term queries, so no user input (`c++`, `AND`, quotes,
colons, `3/4 in.`) can be a syntax error and no text can smuggle in field or range syntax.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import tantivy

from tfrec.data.schema import CATALOG_SCHEMA, Table, is_missing
from tfrec.retrieval.base import (
    Candidate, CandidateSource, SearchFilters, _normalise_category, check_search_args,
)

__all__ = ["DEFAULT_BOOSTS", "LexicalConfig", "LexicalIndex"]

DEFAULT_BOOSTS = {"title": 1.0, "brand": 2.0, "category": 0.5, "attributes": 0.5}
_TEXT_FIELDS = ("title", "brand", "category")
_META_FILE = "tfrec_lexical.json"
_ANALYZER = "tfrec_text"
# Internal (non-searchable) fields: exact keys for deletion and filtering, and the price for range filters.
_ID, _BRAND_KEY, _CATEGORY_KEY, _PRICE = "item_id", "brand_key", "category_key", "price"


@dataclasses.dataclass(frozen=True)
class LexicalConfig:
    """How the index analyses and weights text.

    `boosts` is merged over `DEFAULT_BOOSTS`; keys are 'title', 'brand', 'category', 'attributes' (the default for
    every attribute column) or an attribute name ('color') to weight that column alone; 0 leaves a field unsearched.
    `attributes=None` indexes every string attribute column of the catalog. Stemming makes 'blankets' find 'blanket'.
    """

    boosts: Dict[str, float] = dataclasses.field(default_factory=dict)
    attributes: Optional[Tuple[str, ...]] = None
    stemming: bool = True
    language: str = "english"
    writer_heap_bytes: int = 64_000_000

    def __post_init__(self):
        for key, value in self.boosts.items():
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise ValueError(f"boost for {key!r} must be a non-negative number, got {value!r}")
        if self.attributes is not None:
            object.__setattr__(self, "attributes", tuple(self.attributes))
        if self.writer_heap_bytes < 15_000_000:
            raise ValueError(f"writer_heap_bytes must be >= 15 MB (tantivy's minimum), got {self.writer_heap_bytes}")

    def field_boosts(self, attributes: Sequence[str]) -> Dict[str, float]:
        """Effective boost of every searchable field: the text fields plus one per attribute column."""
        merged = {**DEFAULT_BOOSTS, **self.boosts}
        unknown = set(merged) - set(DEFAULT_BOOSTS) - set(attributes)
        if unknown:
            raise ValueError(f"boosts name unknown fields {sorted(unknown)}; known: {sorted(DEFAULT_BOOSTS)} and "
                             f"attribute columns {sorted(attributes)}")
        out = {name: float(merged[name]) for name in _TEXT_FIELDS}
        for name in attributes:
            out[_attr_field(name)] = float(merged.get(name, merged["attributes"]))
        return out

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _attr_field(name: str) -> str:
    """Attribute columns get a prefix so an attribute called 'price' or 'item_id' cannot clash with ours."""
    return "attr_" + name


def _analyzer(config: LexicalConfig) -> "tantivy.TextAnalyzer":
    builder = (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
               .filter(tantivy.Filter.remove_long(40))
               .filter(tantivy.Filter.lowercase())
               .filter(tantivy.Filter.ascii_fold()))
    if config.stemming:
        builder = builder.filter(tantivy.Filter.stemmer(config.language))
    return builder.build()


def _text(value) -> str:
    return "" if is_missing(value) else str(value)


class LexicalIndex(CandidateSource):
    """BM25 retrieval over a catalog `Table`, held in RAM or in `path`; see the module docstring for query handling."""

    def __init__(self, catalog: Optional[Table] = None, config: Optional[LexicalConfig] = None,
                 path: Optional[str] = None, name: str = "lexical"):
        self.config = config or LexicalConfig()
        self.name = name
        self.path = None if path is None else os.fspath(path)
        if catalog is not None and catalog.schema is not CATALOG_SCHEMA:
            raise ValueError(f"LexicalIndex indexes a catalog table, got a {catalog.schema.name!r} table")
        if self.config.attributes is not None:
            attrs = list(self.config.attributes)
        else:
            attrs = sorted(catalog.attributes) if catalog is not None else []
        self._open(attrs, create=True)
        if catalog is not None and len(catalog):
            self.add_items(catalog)

    @classmethod
    def open(cls, path: str, name: str = "lexical") -> "LexicalIndex":
        """Reopens an index built earlier in `path` with the configuration and attribute columns it was built with."""
        with open(os.path.join(path, _META_FILE), encoding="utf-8") as f:
            meta = json.load(f)
        config = LexicalConfig(**{**meta["config"], "attributes": tuple(meta["attributes"])})
        self = cls.__new__(cls)
        self.config, self.name, self.path = config, name, os.fspath(path)
        self._open(list(meta["attributes"]), create=False)
        return self

    # ------------------------------------------------------------------------------------------------ building
    def _open(self, attributes: List[str], create: bool) -> None:
        self.attributes = list(attributes)
        self._boosts = self.config.field_boosts(self.attributes)
        builder = tantivy.SchemaBuilder()
        builder.add_text_field(_ID, stored=True, tokenizer_name="raw", index_option="basic")
        for field in self._boosts:
            builder.add_text_field(field, tokenizer_name=_ANALYZER, index_option="freq")
        builder.add_text_field(_BRAND_KEY, tokenizer_name="raw", index_option="basic")
        builder.add_text_field(_CATEGORY_KEY, tokenizer_name="raw", index_option="basic")
        builder.add_float_field(_PRICE, indexed=True, fast=True)
        self._schema = builder.build()
        if self.path is None:
            self._index = tantivy.Index(self._schema)
        else:
            if create:
                os.makedirs(self.path, exist_ok=True)
                with open(os.path.join(self.path, _META_FILE), "w", encoding="utf-8") as f:
                    json.dump({"config": self.config.to_json(), "attributes": self.attributes}, f, indent=1)
            self._index = tantivy.Index(self._schema, path=self.path, reuse=not create)
        self._analyzer = _analyzer(self.config)
        self._index.register_tokenizer(_ANALYZER, self._analyzer)
        self._index.reload()

    def _document(self, row: dict) -> "tantivy.Document":
        doc = tantivy.Document()
        doc.add_text(_ID, row["item_id"])
        for field in _TEXT_FIELDS:
            value = _text(row.get(field))
            if value:
                doc.add_text(field, value)
        for name in self.attributes:
            value = _text(row.get(name))
            if value:
                doc.add_text(_attr_field(name), value)
        brand = _text(row.get("brand")).strip().lower()
        if brand:
            doc.add_text(_BRAND_KEY, brand)
        levels = _normalise_category(_text(row.get("category"))).split(" > ")
        for depth in range(1, len(levels) + 1):
            if levels[0]:
                doc.add_text(_CATEGORY_KEY, " > ".join(levels[:depth]))
        price = row.get("price")
        if price is not None and not is_missing(price) and math.isfinite(float(price)):
            doc.add_float(_PRICE, float(price))
        return doc

    def _writer(self):
        # One thread: catalog-sized batches index in about a second, and the segment layout stays reproducible.
        return self._index.writer(self.config.writer_heap_bytes, num_threads=1)

    def add_items(self, items: Table) -> None:
        """Indexes catalog rows in one commit; an already indexed item_id is replaced (the last row of a batch wins)."""
        if items.schema is not CATALOG_SCHEMA:
            raise ValueError(f"add_items expects a catalog table, got a {items.schema.name!r} table")
        missing = [a for a in self.attributes if a not in items.attributes]
        extra = sorted(set(items.attributes) - set(self.attributes)) if self.config.attributes is None else []
        if extra:
            raise ValueError(f"attribute columns {extra} are not in this index (built with {self.attributes}); "
                             "rebuild it, or list the attributes to index in LexicalConfig.attributes")
        writer = self._writer()
        try:
            for row in items.rows():
                for name in missing:
                    row[name] = ""
                item_id = _text(row["item_id"])
                if not item_id:
                    raise ValueError("catalog rows need a non-empty item_id")
                row["item_id"] = item_id
                writer.delete_documents_by_term(_ID, item_id)
                writer.add_document(self._document(row))
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        finally:
            writer.wait_merging_threads()
        self._index.reload()

    def remove_items(self, item_ids: Iterable[str]) -> None:
        """Deletes items by id in one commit; ids not in the index are ignored."""
        ids = [str(i) for i in item_ids]
        if not ids:
            return
        writer = self._writer()
        try:
            for item_id in ids:
                writer.delete_documents_by_term(_ID, item_id)
            writer.commit()
        finally:
            writer.wait_merging_threads()
        self._index.reload()

    def __len__(self) -> int:
        return self._index.searcher().num_docs

    # ------------------------------------------------------------------------------------------------- queries
    def tokens(self, text: str) -> List[str]:
        """The index terms of `text`, duplicates dropped (a repeated word should not count twice)."""
        return list(dict.fromkeys(self._analyzer.analyze(str(text))))

    def _text_query(self, tokens: Sequence[str]) -> "tantivy.Query":
        clauses = []
        for token in tokens:
            for field, boost in self._boosts.items():
                if boost > 0:
                    q = tantivy.Query.term_query(self._schema, field, token)
                    clauses.append((tantivy.Occur.Should, q if boost == 1.0 else tantivy.Query.boost_query(q, boost)))
        return tantivy.Query.boolean_query(clauses)

    def _filter_queries(self, f: SearchFilters) -> List["tantivy.Query"]:
        out = []
        if f.category_key is not None:
            out.append(tantivy.Query.term_query(self._schema, _CATEGORY_KEY, f.category_key))
        if f.brand_keys is not None:
            out.append(tantivy.Query.term_set_query(self._schema, _BRAND_KEY, f.brand_keys))
        if f.min_price is not None or f.max_price is not None:
            out.append(tantivy.Query.range_query(
                self._schema, _PRICE, tantivy.FieldType.Float,
                None if f.min_price is None else float(f.min_price),
                None if f.max_price is None else float(f.max_price)))
        # Filters restrict the match set without adding to the BM25 score.
        return [tantivy.Query.const_score_query(q, 0.0) for q in out]

    def query(self, text: str, filters: Optional[SearchFilters] = None) -> Optional["tantivy.Query"]:
        """The tantivy query for `text` (None when the text has no searchable token)."""
        tokens = self.tokens(text)
        if not tokens:
            return None
        query = self._text_query(tokens)
        if filters is not None and not filters.is_empty:
            clauses = [(tantivy.Occur.Must, query)]
            clauses += [(tantivy.Occur.Must, q) for q in self._filter_queries(filters)]
            query = tantivy.Query.boolean_query(clauses)
        return query

    def _search_one(self, searcher, text: str, k: int, filters: Optional[SearchFilters]) -> List[Candidate]:
        query = self.query(text, filters)
        if query is None:
            return []
        hits = searcher.search(query, limit=k, count=False).hits
        found = [Candidate(searcher.doc(addr).get_first(_ID), float(score), self.name) for score, addr in hits]
        # tantivy orders equal scores by document address, which changes with merges; item_id does not.
        found.sort(key=lambda c: (-c.score, c.item_id))
        return found

    def search(self, queries: Sequence[str], k: int, filters=None) -> List[List[Candidate]]:
        """Top-`k` candidates per query; an empty or punctuation-only query returns []. Filters: see `SearchFilters`."""
        per_query = check_search_args(queries, k, filters)
        if k == 0 or not queries:
            return [[] for _ in queries]
        searcher = self._index.searcher()  # one searcher = one consistent snapshot for the whole batch
        # Sequential on purpose: a thread pool measured slower on 6k Home Depot queries (the GIL is held).
        return [self._search_one(searcher, q, k, f) for q, f in zip(queries, per_query)]

    def explain(self, text: str, item_id: str) -> str:
        """tantivy's score breakdown of one item for `text` (for tuning boosts)."""
        query = self.query(text)
        if query is None:
            return "query has no searchable token"
        searcher = self._index.searcher()
        hits = searcher.search(tantivy.Query.term_query(self._schema, _ID, str(item_id)), limit=1).hits
        if not hits:
            raise KeyError(f"item {item_id!r} is not in the index")
        return query.explain(searcher, hits[0][1]).to_json()
