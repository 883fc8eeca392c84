"""The gRPC servicer of tfrec.search.v1.SearchService. No request ever raises out of a handler; failures are statuses:
- a bad request → INVALID_ARGUMENT naming the field (k, filters[i].field, mmr_lambda, query, context.timestamp, ...);
- the retrieval model unreachable → UNAVAILABLE (there are no candidates to answer with);
- LogEvents without an event sink → FAILED_PRECONDITION;
- anything unexpected → INTERNAL (logged with its traceback).
The ranker or intent model being unreachable is not an error: the response says what was done instead.
With an A/B router, each request runs with its user's arm (recorded in `experiment_arm`) and every logged event
without an `arm` gets its request's or user's; every call is counted in `metrics` (tfrec.server.search.metrics).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional, Tuple

import grpc

from tfrec.online.events import EVENT_TYPES
from tfrec.server.errors import ServingError
from tfrec.server.protos import search_pb2, search_pb2_grpc
from tfrec.server.search.arms import ArmRouter
from tfrec.server.search.config import SearchConfig
from tfrec.server.search.metrics import SearchMetrics
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
    reason)]`), each event built by `event_factory(mapping, index)` (default: tfrec.online.events.event_from_dict).
    `router` assigns A/B arms (None: no experiment); `metrics` counts calls (default: a private registry)."""

    def __init__(self, pipeline: SearchPipeline, event_sink=None, event_factory: Optional[Callable] = None,
                 router: Optional[ArmRouter] = None, metrics: Optional[SearchMetrics] = None):
        self.pipeline = pipeline
        self.config: SearchConfig = pipeline.config
        self.event_sink = event_sink
        self.event_factory = event_factory
        self.router = router
        self.metrics = metrics if metrics is not None else SearchMetrics()

    @staticmethod
    def _fail(context, code: grpc.StatusCode, details: str) -> str:
        context.set_code(code)
        context.set_details(details)
        return code.name

    def _deadline(self, context) -> float:
        budget = self.config.deadline_ms / 1000.0
        remaining = context.time_remaining() if context is not None else None
        if remaining is not None:
            budget = min(budget, remaining)
        return time.monotonic() + budget

    def _answer(self, request, kind: str, context) -> search_pb2.SearchResponse:
        start, method = time.perf_counter(), kind.capitalize()
        try:
            arm = self.router.route(request.user_id.strip()) if self.router is not None else None
            parsed = parse_request(request, kind, arm.config if arm is not None else self.config,
                                   self.pipeline.catalog)
            result = self.pipeline.run(parsed, self._deadline(context), arm)
            response = to_proto(result, self.pipeline.catalog)
            if arm is not None:
                response.experiment_arm = arm.tag
                model, version = self.router.served(parsed.request_id, arm, result.model_versions)
                self.metrics.ab.observe_request(arm.tag, model, version)
            self.metrics.request(method, "OK", time.perf_counter() - start, (d.component for d in result.degradations))
            return response
        except ServingError as exc:
            code = self._fail(context, exc.code, exc.message)
        except ModelUnavailable as exc:
            code = self._fail(context, grpc.StatusCode.UNAVAILABLE, f"retrieval model {exc.model!r} unavailable "
                              f"({exc.status}: {exc.message}): no candidates to answer with")
        except Exception as exc:  # noqa: BLE001 - a request never takes the server down
            log.exception("%s failed", kind)
            code = self._fail(context, grpc.StatusCode.INTERNAL, f"{kind} failed: {type(exc).__name__}: {exc}")
        self.metrics.request(method, code, time.perf_counter() - start)
        return search_pb2.SearchResponse()

    def Search(self, request, context):
        return self._answer(request, "search", context)

    def Recommend(self, request, context):
        return self._answer(request, "recommend", context)

    def LogEvents(self, request, context):
        start = time.perf_counter()
        response = search_pb2.LogEventsResponse()
        if self.event_sink is None:
            code = self._fail(context, grpc.StatusCode.FAILED_PRECONDITION,
                              "LogEvents: this search server has no event sink configured")
        elif len(request.events) > MAX_EVENTS_PER_CALL:
            code = self._fail(context, grpc.StatusCode.INVALID_ARGUMENT,
                              f"events: at most {MAX_EVENTS_PER_CALL} per call, got {len(request.events)}")
        else:
            try:
                response, code = self._log(request), "OK"
            except Exception as exc:  # noqa: BLE001
                log.exception("LogEvents failed")
                code = self._fail(context, grpc.StatusCode.INTERNAL,
                                  f"LogEvents: the event sink failed: {type(exc).__name__}: {exc}")
        self.metrics.request("LogEvents", code, time.perf_counter() - start)
        return response

    def _with_arm(self, event: search_pb2.Event) -> Tuple[dict, Tuple[str, str, str]]:
        """The event's mapping with `arm` filled in (when the client left it empty) and its (arm, model, version)."""
        mapping = event_dict(event)
        served = self.router.event_arm(mapping) if self.router is not None else ("", "", "")
        if mapping["arm"]:
            served = (mapping["arm"], served[1], served[2]) if mapping["arm"] == served[0] else (mapping["arm"], "", "")
        else:
            mapping["arm"] = served[0]
        return mapping, served

    def _log(self, request) -> search_pb2.LogEventsResponse:
        factory = self.event_factory or _default_event_factory()
        outcomes = [None] * len(request.events)
        events, positions, served = [], [], []
        for i, event in enumerate(request.events):
            try:
                mapping, arm = self._with_arm(event)
                events.append(factory(mapping, i))
                positions.append(i)
                served.append(arm)
            except ValueError as exc:
                outcomes[i] = (False, str(exc))
        acks = list(self.event_sink.append(events)) if events else []
        if len(acks) != len(events):
            raise RuntimeError(f"the sink acknowledged {len(acks)} of {len(events)} events")
        for i, event, ack, (arm, model, version) in zip(positions, events, acks, served):
            outcomes[i] = (bool(ack[0]), str(ack[1]))
            if ack[0] and not ack[1] and arm:  # newly logged (not a retried duplicate) and in an arm
                self.metrics.ab.observe(event, model, version)
        for i, event in enumerate(request.events):
            self.metrics.event(event.event_type if event.event_type in EVENT_TYPES else "other", outcomes[i][0])
        response = search_pb2.LogEventsResponse()
        for accepted, reason in outcomes:
            response.results.add(accepted=accepted, reason=reason)
        response.accepted = sum(1 for ok, _ in outcomes if ok)
        response.rejected = len(outcomes) - response.accepted
        return response
