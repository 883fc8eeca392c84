"""A Search or Recommend request checked once at the door: every later stage can trust it. Bad values are
INVALID_ARGUMENT naming the request field (k, filters[i].field, mmr_lambda, query, context.timestamp, ...)."""

from __future__ import annotations

import dataclasses
import math
import uuid
from typing import Dict, List, Optional

from tfrec.server.errors import invalid
from tfrec.server.search.catalog import Catalog
from tfrec.server.search.config import SearchConfig
from tfrec.server.search.filters import FilterSpec, check_filters
from tfrec.server.search.inputs import timestamp_of

MAX_QUERY_CHARS = 512
MAX_ID_CHARS = 256
MAX_RECENT_ITEMS = 1000
MAX_CONTEXT_ENTRIES = 64


@dataclasses.dataclass
class ParsedRequest:
    """What the pipeline runs on: kind is "search" or "recommend"; recent_items are most recent first."""

    kind: str
    request_id: str
    user_id: str
    query: str
    context: Dict[str, str]
    k: int
    filters: List[FilterSpec]
    recent_items: List[str]
    relevance_weight: float
    explain: Optional[bool] = None  # the request's `explain` (contributions wanted); None: unset


def parse_request(request, kind: str, config: SearchConfig, catalog: Catalog) -> ParsedRequest:
    """A SearchRequest / RecommendRequest (proto) as a ParsedRequest, or INVALID_ARGUMENT naming the field."""
    query = request.query.strip() if kind == "search" else ""
    if kind == "search" and not query:
        raise invalid("query: empty; a search needs text (use Recommend for requests without a query)")
    if len(query) > MAX_QUERY_CHARS:
        raise invalid(f"query: longer than {MAX_QUERY_CHARS} characters ({len(query)})")
    k = config.default_k
    if request.HasField("k"):
        k = request.k
        if k <= 0:
            raise invalid(f"k: must be >= 1 (leave it unset for the default {config.default_k}), got {k}")
        if k > config.max_k:
            raise invalid(f"k: at most {config.max_k} results per request, got {k}")
    weight = config.mmr.relevance_weight
    if request.HasField("mmr_lambda"):
        weight = request.mmr_lambda
        if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
            raise invalid(f"mmr_lambda: must be in [0, 1] (1: relevance only), got {weight}")
    for name, value in (("user_id", request.user_id), ("request_id", request.request_id)):
        if len(value) > MAX_ID_CHARS:
            raise invalid(f"{name}: longer than {MAX_ID_CHARS} characters")
    if len(request.recent_items) > MAX_RECENT_ITEMS:
        raise invalid(f"recent_items: at most {MAX_RECENT_ITEMS} items, got {len(request.recent_items)}")
    if len(request.context) > MAX_CONTEXT_ENTRIES:
        raise invalid(f"context: at most {MAX_CONTEXT_ENTRIES} entries, got {len(request.context)}")
    context = dict(request.context)
    for key in context:
        if not key.strip() or len(key) > MAX_ID_CHARS:
            raise invalid(f"context: bad key {key[:40]!r} (empty or longer than {MAX_ID_CHARS} characters)")
    timestamp_of(context)  # INVALID_ARGUMENT now rather than mid-pipeline
    return ParsedRequest(
        kind=kind,
        request_id=request.request_id or uuid.uuid4().hex,
        user_id=request.user_id.strip(),
        query=query,
        context=context,
        k=k,
        filters=check_filters(request.filters, catalog),
        recent_items=[i for i in request.recent_items if i],
        relevance_weight=float(weight),
        explain=request.explain if request.HasField("explain") else None,
    )
