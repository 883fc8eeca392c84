"""Elasticsearch / OpenSearch candidate channel: the lexical channel for catalogs that outgrow one machine.

`LexicalIndex` keeps a tantivy index inside one process. A catalog of tens of millions of items, or one that many
search servers share and update together, belongs on a search cluster. `ElasticsearchIndex` is the same
`CandidateSource` - same `LexicalConfig` boosts, same `SearchFilters` semantics - over the REST API common to
Elasticsearch 7/8 and OpenSearch 1/2 (index PUT/HEAD/DELETE, `_mapping`, `_bulk`, `_msearch`, `_count`, `_refresh`),
spoken with `urllib`: no new dependency.

Mapping (`index_mapping`): the analyzer `tfrec_text` mirrors the tantivy channel (split on non-alphanumerics, drop
tokens of 40+ characters, lowercase, ASCII-fold, Snowball stemming if `config.stemming`) for the text fields `title`,
`brand`, `category` and `attr_<name>` per attribute column. Keywords serve the exact filters: `item_id` (also `_id`,
so re-adding an item replaces it), `brand_key` (lowercased), `category_path` ('home > decor') and `category_prefixes`
(['home', 'home > decor']: the category filter is one `term`, matching whole levels only); `price` is a float,
absent when unknown, so price filters exclude such items. `_meta.tfrec` records the attribute columns, so another
process can open the index by name; `dynamic: strict` makes a stray field an error, not a guess.

Queries (`search_body`): a `most_fields` `multi_match` with `field^boost` from `config.field_boosts` (tantivy's sum
over fields and terms) in a `bool` whose `filter` clauses apply the filters without scoring. `multi_match` analyses
its text but never parses query syntax, so user input (`AND ( "`, `title:x`) is sent verbatim, unescaped.
"""

from __future__ import annotations

import base64
import json
import math
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from tfrec.data.schema import CATALOG_SCHEMA, Table, is_missing
from tfrec.retrieval.base import (
    Candidate, CandidateSource, SearchFilters, _normalise_category, check_search_args, resolve_filters,
)
from tfrec.retrieval.lexical import LexicalConfig, _attr_field, _text

__all__ = ["DEFAULT_URL", "ElasticError", "ElasticsearchIndex", "document", "filter_clauses", "index_mapping",
           "search_body"]

DEFAULT_URL = "http://127.0.0.1:9200"
_ANALYZER = "tfrec_text"
_TEXT_FIELDS = ("title", "brand", "category")
_SCHEMA_FIELDS = frozenset(CATALOG_SCHEMA.field_names)
_MSEARCH_BATCH = 100  # queries per _msearch request


class ElasticError(RuntimeError):
    """A failed request; `status` is None when the server could not be reached."""

    def __init__(self, message: str, operation="", index="", status: Optional[int] = None, error_type="", reason=""):
        super().__init__(message)
        self.operation, self.index, self.status = operation, index, status
        self.error_type, self.reason = error_type, reason


def _error_parts(error: Any) -> Tuple[str, str]:
    """(type, reason) of an Elasticsearch/OpenSearch error object (with its root/underlying cause) or a string."""
    if not isinstance(error, Mapping):
        return "error", str(error)[:500]
    reason = str(error.get("reason") or "")
    roots = error.get("root_cause") if isinstance(error.get("root_cause"), list) else []
    for cause in [*roots[:1], error.get("caused_by")]:  # 'all shards failed' says little; its cause says why
        if isinstance(cause, Mapping) and cause.get("reason") and cause["reason"] != reason:
            reason = f"{reason} (caused by {cause.get('type')}: {cause['reason']})" if reason else str(cause["reason"])
    return str(error.get("type") or "error"), reason or json.dumps(error)[:500]


def _boost(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


# ------------------------------------------------------------------------------------------- pure mapping functions
def index_mapping(config: LexicalConfig, attributes: Sequence[str] = ()) -> dict:
    """Body of `PUT /<index>`: analysis settings and strict mappings for `attributes` (see the module docstring)."""
    attributes = list(attributes)
    config.field_boosts(attributes)  # rejects boosts naming unknown fields, as LexicalIndex does
    filters = ["tfrec_long", "lowercase", "asciifolding"] + (["tfrec_stem"] if config.stemming else [])
    analysis = {
        "tokenizer": {"tfrec_simple": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}},
        "filter": {"tfrec_long": {"type": "length", "max": 39},
                   "tfrec_stem": {"type": "snowball", "language": config.language.capitalize()}},
        "analyzer": {_ANALYZER: {"type": "custom", "tokenizer": "tfrec_simple", "filter": filters}},
    }
    text = {"type": "text", "analyzer": _ANALYZER}
    keyword = {"type": "keyword"}
    properties = {"item_id": keyword, **{f: text for f in _TEXT_FIELDS},
                  **{_attr_field(a): text for a in attributes},
                  "brand_key": keyword, "category_path": keyword, "category_prefixes": keyword,
                  "price": {"type": "float"}}
    meta = {"tfrec": {"version": 1, "attributes": attributes, "config": config.to_json()}}
    return {"settings": {"analysis": analysis},
            "mappings": {"dynamic": "strict", "_meta": meta, "properties": properties}}


def document(row: Mapping[str, Any], attributes: Optional[Sequence[str]] = None) -> dict:
    """The indexed JSON of one catalog row; `attributes=None` takes every non-schema key as an attribute column."""
    item_id = _text(row.get("item_id"))
    if not item_id:
        raise ValueError("catalog rows need a non-empty item_id")
    doc: Dict[str, Any] = {"item_id": item_id}
    names = [k for k in row if k not in _SCHEMA_FIELDS] if attributes is None else attributes
    for field, key in [*((f, f) for f in _TEXT_FIELDS), *((_attr_field(n), n) for n in names)]:
        if _text(row.get(key)):
            doc[field] = _text(row.get(key))
    brand = _text(row.get("brand")).strip().lower()
    if brand:
        doc["brand_key"] = brand
    path = _normalise_category(_text(row.get("category")))
    if path:
        levels = path.split(" > ")
        doc["category_path"] = path
        doc["category_prefixes"] = [" > ".join(levels[:depth]) for depth in range(1, len(levels) + 1)]
    price = row.get("price")
    if price is not None and not is_missing(price) and math.isfinite(float(price)):
        doc["price"] = float(price)
    return doc


def filter_clauses(filters: Union[None, SearchFilters, Mapping[str, Any]]) -> List[dict]:
    """The non-scoring `bool.filter` clauses of one `SearchFilters` (or dict, or None)."""
    f = resolve_filters(filters, 1)[0]
    if f is None:
        return []
    out: List[dict] = []
    if f.category_key is not None:
        out.append({"term": {"category_prefixes": f.category_key}})
    if f.brand_keys is not None:
        out.append({"terms": {"brand_key": f.brand_keys}})
    bounds = {op: float(v) for op, v in (("gte", f.min_price), ("lte", f.max_price)) if v is not None}
    if bounds:
        out.append({"range": {"price": bounds}})
    return out


def search_body(text: str, k: int, filters: Union[None, SearchFilters, Mapping[str, Any]] = None,
                config: Optional[LexicalConfig] = None, attributes: Sequence[str] = ()) -> Optional[dict]:
    """The `_search` body for one query, or None when nothing can match (blank text without filters, or no field
    with a positive boost). Blank text with filters matches everything within the filters, with score 0."""
    config = config or LexicalConfig()
    clauses = filter_clauses(filters)
    text = "" if text is None else str(text)
    if not text.strip():
        if not clauses:
            return None
        query: dict = {"bool": {"filter": clauses}}
    else:
        fields = [f"{name}^{_boost(b)}" for name, b in config.field_boosts(list(attributes)).items() if b > 0]
        if not fields:  # an empty field list would mean "every field" to the server
            return None
        match = {"multi_match": {"query": text, "fields": fields, "type": "most_fields", "operator": "or"}}
        query = {"bool": {"must": [match], "filter": clauses}} if clauses else match
    # Ties are broken by item_id on the server, so the top k does not depend on shard or segment layout.
    return {"size": int(k), "query": query, "_source": False, "track_scores": True,
            "sort": [{"_score": {"order": "desc"}}, {"item_id": {"order": "asc"}}]}


# ------------------------------------------------------------------------------------------------------ the channel
class ElasticsearchIndex(CandidateSource):
    """BM25 retrieval over a catalog held in an Elasticsearch 7/8 or OpenSearch 1/2 index.

    `attributes` (or `config.attributes`) names the attribute columns to index; when neither is given they are read
    from the index's `_meta`, written by `create()`. Auth is `username`/`password` (basic) or `api_key` (the encoded
    key, or an (id, key) pair). With `refresh_on_write` every add/remove ends with `_refresh`, so the change is
    searchable at once; bulk loaders can turn it off and call `refresh()` themselves.
    """

    name = "elastic"

    def __init__(self, index: str, url: str = DEFAULT_URL, config: Optional[LexicalConfig] = None, *,
                 attributes: Optional[Sequence[str]] = None, username: Optional[str] = None,
                 password: Optional[str] = None, api_key: Union[None, str, Tuple[str, str]] = None,
                 timeout: float = 30.0, ssl_context: Optional[ssl.SSLContext] = None,
                 settings: Optional[Mapping[str, Any]] = None, refresh_on_write: bool = True,
                 batch_size: int = 1000, name: str = "elastic"):
        if not index or index != index.lower() or batch_size < 1:
            raise ValueError(f"need a non-empty lowercase index name and batch_size >= 1; got {index!r}, {batch_size}")
        self.index, self.url, self.name = index, url.rstrip("/"), name
        self.config = config or LexicalConfig()
        self.timeout, self.settings = timeout, dict(settings or {})
        self.refresh_on_write, self.batch_size = refresh_on_write, batch_size
        attributes = self.config.attributes if attributes is None else attributes
        self._attributes = None if attributes is None else list(attributes)
        if self._attributes is not None:
            self.config.field_boosts(self._attributes)
        self._headers = {"Accept": "application/json"}
        if api_key is not None and username is not None:
            raise ValueError("give either username/password or api_key, not both")
        if api_key is not None:
            if not isinstance(api_key, str):
                api_key = base64.b64encode(":".join(api_key).encode()).decode()
            self._headers["Authorization"] = "ApiKey " + api_key
        elif username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = "Basic " + token
        # No proxy from the environment (like the official clients); TLS per `ssl_context`.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                   urllib.request.HTTPSHandler(context=ssl_context))

    def __repr__(self) -> str:
        return f"ElasticsearchIndex(index={self.index!r}, url={self.url!r})"

    # -------------------------------------------------------------------------------------------------- HTTP
    def _path(self, *parts: str) -> str:
        return "/".join(["", urllib.parse.quote(self.index, safe=""), *parts])

    def _request(self, op: str, method: str, path: str, body: Any = None, *, ndjson: bool = False,
                 missing_ok: bool = False) -> Any:
        """One HTTP call; returns the parsed JSON (None for a tolerated 404), raises `ElasticError` otherwise."""
        headers, data = dict(self._headers), None
        if body is not None:
            if ndjson:
                data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in body).encode()
                headers["Content-Type"] = "application/x-ndjson"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        where = f"{op} on index {self.index!r} at {self.url}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            if missing_ok and e.code == 404:
                return None
            raw = b""
            try:
                raw = e.read()
                error = json.loads(raw).get("error", raw.decode("utf-8", "replace"))
            except Exception:  # not JSON (a proxy's HTML page, an empty body)
                error = raw.decode("utf-8", "replace") or e.reason
            etype, reason = _error_parts(error)
            raise ElasticError(f"{where} failed: HTTP {e.code} {etype}: {reason}", op, self.index, e.code,
                               etype, reason) from None
        except (urllib.error.URLError, OSError) as e:  # refused, unknown host, TLS, timeout
            reason = str(getattr(e, "reason", e))
            raise ElasticError(f"{where} failed: cannot reach Elasticsearch/OpenSearch at {self.url}: {reason}",
                               op, self.index, None, "connection_error", reason) from e
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ElasticError(f"{where}: the server's answer is not JSON: {raw[:200]!r}", op, self.index) from None

    # ---------------------------------------------------------------------------------------------- lifecycle
    def exists(self) -> bool:
        return self._request("exists", "HEAD", self._path(), missing_ok=True) is not None

    def create(self, recreate: bool = False) -> None:
        """Creates the index with `index_mapping`; an existing index is an error unless `recreate` drops it first."""
        attributes = [] if self._attributes is None else self._attributes
        body = index_mapping(self.config, attributes)
        body["settings"].update(self.settings)
        if recreate:
            self.delete_index()
        try:
            self._request("create", "PUT", self._path(), body)
        except ElasticError as e:
            if e.status == 400 and "already_exists" in e.error_type:
                raise ElasticError(f"create: index {self.index!r} already exists at {self.url}; pass recreate=True "
                                   "to drop and rebuild it", "create", self.index, 400, e.error_type,
                                   e.reason) from None
            raise
        self._attributes = list(attributes)

    def delete_index(self) -> None:
        """Drops the index with all its documents; a missing index is fine."""
        self._request("delete_index", "DELETE", self._path(), missing_ok=True)

    def refresh(self) -> None:
        """Makes every write so far visible to search."""
        self._request("refresh", "POST", self._path("_refresh"))

    @property
    def attributes(self) -> List[str]:
        """Indexed attribute columns: as given, else read from the index's `_meta` (written by `create`)."""
        if self._attributes is None:
            mappings = self._request("read_mapping", "GET", self._path("_mapping"))
            meta = next(iter(mappings.values()), {}).get("mappings", {}).get("_meta", {}).get("tfrec")
            if meta is None:
                raise ElasticError(f"read_mapping: index {self.index!r} at {self.url} has no _meta.tfrec (it was not "
                                   "made by ElasticsearchIndex.create); pass attributes= explicitly",
                                   "read_mapping", self.index)
            self.config.field_boosts(meta["attributes"])
            self._attributes = list(meta["attributes"])
        return self._attributes

    def __len__(self) -> int:
        return int(self._request("count", "GET", self._path("_count"))["count"])

    # ------------------------------------------------------------------------------------------------ writing
    def _bulk(self, op: str, actions: List[List[dict]]) -> None:
        """Sends bulk actions in batches; any failed item raises (earlier batches stay applied)."""
        for start in range(0, len(actions), self.batch_size):
            chunk = actions[start:start + self.batch_size]
            response = self._request(op, "POST", self._path("_bulk"), [line for a in chunk for line in a],
                                     ndjson=True)
            items = response.get("items", [])
            failures = []
            for item in items:
                kind, result = next(iter(item.items()))
                if kind == "delete" and result.get("status") == 404:
                    continue  # deleting an unknown id is not an error
                if "error" in result or not 200 <= int(result.get("status", 500)) < 300:
                    etype, reason = _error_parts(result.get("error", "no reason given"))
                    failures.append(f"{result.get('_id')!r}: HTTP {result.get('status')} {etype}: {reason}")
            if failures or len(items) != len(chunk):
                detail = "; ".join(failures[:3]) or f"the server answered {len(items)} items"
                raise ElasticError(f"{op} on index {self.index!r} at {self.url}: {len(failures)} of {len(chunk)} bulk "
                                   f"actions failed (the others were applied): {detail}", op, self.index, 400,
                                   "bulk_item_error", detail)
        if self.refresh_on_write and actions:
            self.refresh()

    def add_items(self, items: Table) -> None:
        """Indexes catalog rows with `_bulk`; `_id` = item_id, so an indexed item is replaced (last row wins)."""
        if items.schema is not CATALOG_SCHEMA:
            raise ValueError(f"add_items expects a catalog table, got a {items.schema.name!r} table")
        attributes = self.attributes
        extra = sorted(set(items.attributes) - set(attributes)) if self.config.attributes is None else []
        if extra:
            raise ValueError(f"attribute columns {extra} are not in index {self.index!r} (built with {attributes}); "
                             "recreate it, or list the attributes to index in LexicalConfig.attributes")
        docs = [document(row, attributes) for row in items.rows()]  # validate every row before sending any
        self._bulk("add_items", [[{"index": {"_id": d["item_id"]}}, d] for d in docs])

    def remove_items(self, item_ids) -> None:
        """Deletes items by id with `_bulk`; ids not in the index are ignored."""
        ids = [str(i) for i in item_ids]
        self._bulk("remove_items", [[{"delete": {"_id": i}}] for i in ids])

    # ------------------------------------------------------------------------------------------------ queries
    def search(self, queries: Sequence[str], k: int, filters=None) -> List[List[Candidate]]:
        """Top-`k` candidates per query through `_msearch`; see `search_body` for blank queries and filters."""
        per_query = check_search_args(queries, k, filters)
        results: List[List[Candidate]] = [[] for _ in queries]
        if k == 0 or not queries:
            return results
        attributes = self.attributes
        bodies = [search_body(q, k, f, self.config, attributes) for q, f in zip(queries, per_query)]
        todo = [i for i, body in enumerate(bodies) if body is not None]
        for start in range(0, len(todo), _MSEARCH_BATCH):
            chunk = todo[start:start + _MSEARCH_BATCH]
            lines = [line for i in chunk for line in ({}, bodies[i])]
            responses = self._request("search", "POST", self._path("_msearch"), lines, ndjson=True).get("responses")
            if not isinstance(responses, list) or len(responses) != len(chunk):
                raise ElasticError(f"search on index {self.index!r} at {self.url}: _msearch answered "
                                   f"{len(responses or [])} responses for {len(chunk)} queries", "search", self.index)
            for i, response in zip(chunk, responses):
                if "error" in response:
                    etype, reason = _error_parts(response["error"])
                    status = response.get("status")
                    raise ElasticError(f"search on index {self.index!r} at {self.url} failed for query "
                                       f"{queries[i]!r}: HTTP {status} {etype}: {reason}", "search", self.index,
                                       status, etype, reason)
                found = [Candidate(str(hit["_id"]), float(hit.get("_score") or 0.0), self.name)
                         for hit in response["hits"]["hits"]]
                found.sort(key=lambda c: (-c.score, c.item_id))
                results[i] = found
        return results
