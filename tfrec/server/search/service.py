"""The gRPC servicer of tfrec.search.v1.SearchService. No request ever raises out of a handler; failures are statuses:
- a bad request → INVALID_ARGUMENT naming the field (k, filters[i].field, mmr_lambda, query, context.timestamp, ...);
- the retrieval model unreachable → UNAVAILABLE (there are no candidates to answer with);
- LogEvents without an event sink → FAILED_PRECONDITION;
- anything unexpected → INTERNAL (logged with its traceback).
The ranker or intent model being unreachable is not an error: the response says what was done instead.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

import grpc

from tfrec.server.errors import ServingError
from tfrec.server.protos import search_pb2, search_pb2_grpc
from tfrec.server.search.config import SearchConfig
from tfrec.server.search.models import ModelUnavailable
from tfrec.server.search.pipeline import SearchPipeline
from tfrec.server.search.request import parse_request
from tfrec.server.search.responses import to_proto

log = logging.getLogger(__name__)
MAX_EVENTS_PER_CALL = 10_000


def event_dict(event: search_pb2.Event) -> dict:
    """A LogEvents event as the canonical events-schema mapping (price None when not sent)."""
    return {"event_type": event.event_type, "user_id": event.user_id, "item_id": event.item_id,
            "timestamp": event.timestamp, "request_id": event.request_id, "position": event.position,
            "price": event.price if event.HasField("price") else None, "query": event.query, "arm": event.arm,
            "event_id": event.event_id}


def _default_event_factory():
    from tfrec.online.events import event_from_dict

    return event_from_dict


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    """Search and Recommend through `pipeline`; LogEvents into `event_sink` (`append(events) -> [(accepted,
    reason)]`), each event built by `event_factory(mapping, index)` (default: tfrec.online.events.event_from_dict)."""

    def __init__(self, pipeline: SearchPipeline, event_sink=None, event_factory: Optional[Callable] = None):
        self.pipeline = pipeline
        self.config: SearchConfig = pipeline.config
        self.event_sink = event_sink
        self.event_factory = event_factory

    def _deadline(self, context) -> float:
        budget = self.config.deadline_ms / 1000.0
        remaining = context.time_remaining() if context is not None else None
        if remaining is not None:
            budget = min(budget, remaining)
        return time.monotonic() + budget

    def _answer(self, request, kind: str, context) -> search_pb2.SearchResponse:
        try:
            parsed = parse_request(request, kind, self.config, self.pipeline.catalog)
            result = self.pipeline.run(parsed, self._deadline(context))
            return to_proto(result, self.pipeline.catalog)
        except ServingError as exc:
            context.set_code(exc.code)
            context.set_details(exc.message)
        except ModelUnavailable as exc:
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details(f"retrieval model {exc.model!r} unavailable ({exc.status}: {exc.message}): "
                                "no candidates to answer with")
        except Exception as exc:  # noqa: BLE001 - a request never takes the server down
            log.exception("%s failed", kind)
            context.set_code(grpc.StatusCode.INTERNAL)
            context.set_details(f"{kind} failed: {type(exc).__name__}: {exc}")
        return search_pb2.SearchResponse()

    def Search(self, request, context):
        return self._answer(request, "search", context)

    def Recommend(self, request, context):
        return self._answer(request, "recommend", context)

    def LogEvents(self, request, context):
        if self.event_sink is None:
            context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
            context.set_details("LogEvents: this search server has no event sink configured")
            return search_pb2.LogEventsResponse()
        if len(request.events) > MAX_EVENTS_PER_CALL:
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details(f"events: at most {MAX_EVENTS_PER_CALL} per call, got {len(request.events)}")
            return search_pb2.LogEventsResponse()
        try:
            return self._log(request)
        except Exception as exc:  # noqa: BLE001
            log.exception("LogEvents failed")
            context.set_code(grpc.StatusCode.INTERNAL)
            context.set_details(f"LogEvents: the event sink failed: {type(exc).__name__}: {exc}")
            return search_pb2.LogEventsResponse()

    def _log(self, request) -> search_pb2.LogEventsResponse:
        factory = self.event_factory or _default_event_factory()
        outcomes = [None] * len(request.events)
        events, positions = [], []
        for i, event in enumerate(request.events):
            try:
                events.append(factory(event_dict(event), i))
                positions.append(i)
            except ValueError as exc:
                outcomes[i] = (False, str(exc))
        acks = list(self.event_sink.append(events)) if events else []
        if len(acks) != len(events):
            raise RuntimeError(f"the sink acknowledged {len(acks)} of {len(events)} events")
        for i, ack in zip(positions, acks):
            outcomes[i] = (bool(ack[0]), str(ack[1]))
        response = search_pb2.LogEventsResponse()
        for accepted, reason in outcomes:
            response.results.add(accepted=accepted, reason=reason)
        response.accepted = sum(1 for ok, _ in outcomes if ok)
        response.rejected = len(outcomes) - response.accepted
        return response
