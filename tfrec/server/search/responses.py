"""SearchResult (plain Python) → SearchResponse (proto), with item metadata from the catalog."""

from __future__ import annotations

from tfrec.server.protos import search_pb2
from tfrec.server.search.catalog import CORE, IN_STOCK_COLUMNS, Catalog
from tfrec.server.search.filters import FilterSpec
from tfrec.server.search.pipeline import SearchResult


def filter_proto(spec: FilterSpec) -> search_pb2.Filter:
    proto = search_pb2.Filter(field=spec.field, values=list(spec.values))
    if spec.min is not None:
        proto.min = spec.min
    if spec.max is not None:
        proto.max = spec.max
    return proto


def to_proto(result: SearchResult, catalog: Catalog) -> search_pb2.SearchResponse:
    response = search_pb2.SearchResponse(
        request_id=result.request_id, degraded=bool(result.degradations), calibration=result.calibration,
        candidates_retrieved=result.retrieved, candidates_after_filters=result.after_filters)
    for rank, item in enumerate(result.items, 1):
        row = catalog.item(item.row)
        proto = response.items.add(
            item_id=item.item_id, title=str(row["title"]), category=str(row["category"]), brand=str(row["brand"]),
            price=float(row["price"]), rank=rank, score=item.score, probability=item.probability,
            has_probability=item.has_probability, ranker_probability=item.ranker_probability,
            retrieval_rank=item.retrieval_rank, retrieval_score=item.retrieval_score)
        proto.explanation.reasons.extend(item.reasons)
        for group, value in item.contributions.items():
            proto.explanation.contributions.add(group=group, logit_delta=value)
        for name, value in row.items():
            if name not in CORE and name not in IN_STOCK_COLUMNS and str(value):
                proto.attributes[name] = str(value)
    parsed = response.parsed_query
    parsed.understood, parsed.intent, parsed.intent_probability = result.understood, result.intent, \
        result.intent_probability
    parsed.slots.update(result.slots)
    parsed.applied_filters.extend(filter_proto(f) for f in result.applied)
    parsed.relaxed_filters.extend(filter_proto(f) for f in result.relaxed)
    for d in result.degradations:
        response.degradations.add(component=d.component, status=d.status, message=d.message)
    response.model_versions.update(result.model_versions)
    response.timings_ms.update(result.timings_ms)
    return response
