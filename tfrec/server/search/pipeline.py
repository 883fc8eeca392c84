"""The Search / Recommend pipeline: query understanding ∥ retrieval → filters → ranking → calibration (+ affinity
boost) → MMR diversity → explanations, each model called over gRPC through the model server.

Per request, an A/B arm (`arms.ArmPlan`) may replace the config (pipeline settings) and add model version labels;
the user-state store, when injected, supplies recent items and queries, category/brand affinities and a price band.

Degraded paths (each recorded in the result's `degradations`, the request still answered):
- intent model down or slow: slots from the text itself (`text_slots`), retrieval on the query text as always;
- ranker down or slow: candidates keep retrieval order and score, `has_probability` is false;
- calibration fitted on another ranker version, user-state store failing, explanation call failing: noted.
Retrieval down is the one failure with no answer: ModelUnavailable, which the service returns as UNAVAILABLE.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent import futures
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from tfrec.server.search.calibration import Calibration, head_logit
from tfrec.server.search.catalog import Catalog
from tfrec.server.search.config import SearchConfig
from tfrec.server.search.diversity import mmr_order, similarity
from tfrec.server.search.explain import (ReasonContext, affinity, contributions_from, occlusion_inputs, reasons,
                                         top_contributions)
from tfrec.server.search.filters import FilterSpec, apply_filters, slot_filters
from tfrec.server.search.inputs import model_inputs, request_values
from tfrec.server.search.models import ModelCaller, ModelUnavailable
from tfrec.server.search.request import ParsedRequest
from tfrec.server.search.text_slots import TextSlots

DEADLINE_RESERVE_S = 0.005  # kept back from a deadline for building and sending the response
SLOT_NAMES = ("category", "brand", "color", "size", "gender", "material", "price_min", "price_max")


@dataclasses.dataclass
class RankedItem:
    row: int
    item_id: str
    score: float
    probability: float
    has_probability: bool
    ranker_probability: float
    retrieval_rank: int
    retrieval_score: float
    reasons: List[str] = dataclasses.field(default_factory=list)
    contributions: Dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Degradation:
    component: str
    status: str
    message: str


@dataclasses.dataclass
class SearchResult:
    """Everything a response carries, as plain Python (`responses.to_proto` converts it)."""

    request_id: str
    items: List[RankedItem] = dataclasses.field(default_factory=list)
    understood: bool = False
    intent: str = ""
    intent_probability: float = 0.0
    slots: Dict[str, str] = dataclasses.field(default_factory=dict)
    applied: List[FilterSpec] = dataclasses.field(default_factory=list)
    relaxed: List[FilterSpec] = dataclasses.field(default_factory=list)
    degradations: List[Degradation] = dataclasses.field(default_factory=list)
    model_versions: Dict[str, int] = dataclasses.field(default_factory=dict)
    timings_ms: Dict[str, float] = dataclasses.field(default_factory=dict)
    retrieved: int = 0
    after_filters: int = 0
    calibration: str = ""

    def degrade(self, component: str, status: str, message: str) -> None:
        self.degradations.append(Degradation(component, status, message))


@dataclasses.dataclass
class _UserView:
    recent_items: List[str]
    category_affinity: Dict[str, float]
    brand_affinity: Dict[str, float]
    recent_queries: List[str] = dataclasses.field(default_factory=list)
    price_band: Optional[Tuple[float, float]] = None


def _stopwatch(timings: Dict[str, float], stage: str, start: float) -> float:
    now = time.perf_counter()
    timings[stage] = round((now - start) * 1000.0, 3)
    return now


class SearchPipeline:
    """Runs ParsedRequests against the configured models; thread-safe (the gRPC server calls it concurrently)."""

    def __init__(self, config: SearchConfig, catalog: Catalog, callers: Mapping[str, ModelCaller],
                 calibration: Optional[Calibration] = None, user_state=None):
        self.config, self.catalog, self.callers = config, catalog, dict(callers)
        self.calibration = calibration or Calibration()
        self.user_state = user_state
        self.text_slots = TextSlots(catalog)
        self._executor = futures.ThreadPoolExecutor(max_workers=config.server.max_workers,
                                                    thread_name_prefix="tfrec-search-intent")

    def close(self) -> None:
        self._executor.shutdown(wait=False)

    @staticmethod
    def _timeout(caller: ModelCaller, deadline: float) -> float:
        return min(caller.endpoint.timeout_ms / 1000.0, deadline - time.monotonic() - DEADLINE_RESERVE_S)

    # ------------------------------------------------------------------------------------------------ stages
    def _user_view(self, request: ParsedRequest, result: SearchResult) -> _UserView:
        view = _UserView(list(request.recent_items), {}, {})
        if self.user_state is None or not request.user_id:
            return view
        try:
            state = self.user_state.get(request.user_id, now=time.time())  # affinities decayed to now
        except Exception as exc:  # noqa: BLE001 - an injected store must not take searches down
            result.degrade("user_state", "UNAVAILABLE", f"user state unavailable ({exc}): no personalisation")
            return view
        if state is None:
            return view
        if not view.recent_items:
            view.recent_items = [str(i) for i in (getattr(state, "recent_items", None) or [])]
        view.category_affinity = dict(getattr(state, "category_affinity", None) or {})
        view.brand_affinity = dict(getattr(state, "brand_affinity", None) or {})
        view.recent_queries = [str(q) for q in (getattr(state, "recent_queries", None) or [])]
        band = getattr(state, "price_band", None)
        view.price_band = (float(band[0]), float(band[1])) if band else None
        return view

    def _understand(self, query: str, deadline: float, label: Optional[str]
                    ) -> Tuple[Optional[dict], Optional[ModelUnavailable], float]:
        """(parsed outputs or None, the failure or None, the call's own milliseconds)."""
        start = time.perf_counter()
        caller = self.callers["intent"]
        try:
            outputs, version = caller.predict({"query": [query.encode("utf-8")]}, self._timeout(caller, deadline),
                                              label)
        except ModelUnavailable as exc:
            return None, exc, (time.perf_counter() - start) * 1000.0
        parsed = {name: _plain(outputs[name].reshape(-1)[0]) for name in outputs}
        parsed["version"] = version
        return parsed, None, (time.perf_counter() - start) * 1000.0

    def _retrieve(self, values: dict, deadline: float, result: SearchResult, run: "_Run"
                  ) -> Tuple[np.ndarray, np.ndarray]:
        caller = self.callers["retrieval"]
        inputs, _ = model_inputs(caller.input_dtypes(run.label("retrieval")), values)
        outputs, version = caller.predict(inputs, self._timeout(caller, deadline), run.label("retrieval"))
        result.model_versions[caller.name] = version
        ids = outputs["item_ids"].reshape(-1)[: run.config.candidates]
        scores = outputs["scores"].reshape(-1)[: run.config.candidates].astype(np.float64)
        ids = np.array([i if isinstance(i, bytes) else str(i).encode("utf-8") for i in ids.tolist()], dtype="S")
        _, first = np.unique(ids, return_index=True)  # no item twice, keeping its best-ranked copy
        first = np.sort(first)
        rows, known = self.catalog.rows(ids[first])
        if not known.all():
            result.degrade("catalog", "NOT_FOUND", f"{int((~known).sum())} retrieved items are not in the catalog "
                           f"{self.catalog.source} (the retrieval model indexes another catalog?); they were dropped")
        keep = first[known]
        return rows[known], np.stack([keep + 1, scores[keep]], axis=1)  # retrieval rank (1-based) and score

    def _rank(self, values: dict, rows: np.ndarray, deadline: float, result: SearchResult, label: Optional[str]):
        """(logits or None, the ranker's inputs for `rows`, its dtypes) — None when the ranker is off or failed."""
        caller = self.callers.get("ranker")
        if caller is None:
            return None, None, None
        try:
            dtypes = caller.input_dtypes(label)
            inputs, _ = model_inputs(dtypes, values, self.catalog, rows)
            outputs, version = self._rank_calls(caller, inputs, len(rows), self._timeout(caller, deadline), label)
            logits = head_logit(outputs, self.config.models.ranker_head)
        except ModelUnavailable as exc:
            result.degrade("ranker", exc.status, f"ranker {caller.name!r} unavailable ({exc.message}): "
                           "retrieval order")
            return None, None, None
        except KeyError as exc:
            result.degrade("ranker", "FAILED_PRECONDITION", f"{exc.args[0]}: retrieval order")
            return None, None, None
        result.model_versions[caller.name] = version
        cal = self.calibration
        if cal.method != "none" and (cal.model != caller.name or cal.version != version):
            result.degrade("calibration", "FAILED_PRECONDITION", f"calibration was fitted on {cal.model} "
                           f"v{cal.version}, the answer came from {caller.name} v{version}: probabilities may be off")
        return logits, inputs, dtypes

    def _rank_calls(self, caller: ModelCaller, inputs: dict, n: int, timeout_s: float, label: Optional[str]):
        """The ranker's outputs for all `n` rows, from `models.ranker_parallel_calls` concurrent calls over row
        slices (one call for few rows). Every slice must come from the same version (a hot swap between them would
        mix two models' scores): otherwise ModelUnavailable(ABORTED)."""
        models = self.config.models
        calls = max(1, min(models.ranker_parallel_calls, n // models.ranker_min_rows_per_call))
        if calls == 1:
            return caller.predict(inputs, timeout_s, label)
        bounds = np.linspace(0, n, calls + 1).astype(int)
        pending = [self._executor.submit(caller.predict, {name: values[a:b] for name, values in inputs.items()},
                                         timeout_s, label) for a, b in zip(bounds[:-1], bounds[1:])]
        answers = [p.result() for p in pending]
        versions = sorted({version for _, version in answers})
        if len(versions) > 1:
            raise ModelUnavailable(caller.name, "ABORTED", f"its {calls} calls for this request were answered by "
                                   f"versions {versions} (a new version was swapped in between them)")
        outputs = {name: np.concatenate([out[name] for out, _ in answers], axis=0) for name in answers[0][0]}
        return outputs, versions[0]

    def _explain(self, inputs, dtypes, logits: np.ndarray, deadline: float, result: SearchResult,
                 label: Optional[str]):
        """[k, groups] contributions for the rows of `inputs`, or None."""
        caller = self.callers["ranker"]
        groups, occluded = occlusion_inputs(inputs, dtypes, self.config.explain.groups)
        if not groups:
            return None, []
        try:
            outputs, _ = caller.predict(occluded, self._timeout(caller, deadline), label)
        except ModelUnavailable as exc:
            result.degrade("explanation", exc.status, f"contributions unavailable ({exc.message}): reasons only")
            return None, []
        return contributions_from(logits, head_logit(outputs, self.config.models.ranker_head), len(groups)), groups

    # ------------------------------------------------------------------------------------------------- run
    def run(self, request: ParsedRequest, deadline: float, arm=None) -> SearchResult:
        """Answers one request; `deadline` is a time.monotonic() value; `arm` (an arms.ArmPlan) swaps in its config
        and version labels. Raises ModelUnavailable only when retrieval cannot be reached (nothing to answer with)."""
        begin = start = time.perf_counter()
        run = _Run(arm.config if arm is not None else self.config, arm.labels if arm is not None else {})
        personal = run.config.personalisation
        result = SearchResult(request.request_id, calibration=self.calibration.describe())
        timings = result.timings_ms
        user = self._user_view(request, result)
        values = request_values(request.user_id, request.query, request.context, user.recent_items,
                                personal.history_length, self.catalog.user_attributes.get(request.user_id, {}))
        start = _stopwatch(timings, "prepare", start)
        pending = None
        if request.query and "intent" in self.callers:
            pending = self._executor.submit(self._understand, request.query, deadline, run.label("intent"))
        rows, retrieval = self._retrieve(values, deadline, result, run)
        start = _stopwatch(timings, "retrieve", start)
        result.retrieved = len(rows)
        query_filters = self._query_filters(request, pending, result, run.config.query_category_filter)
        start = time.perf_counter()

        # Filters first, then the ranker scores only what can be shown: on 2 busy cores ranking every candidate
        # while the intent model runs costs more CPU than the overlap saves (benchmarks/search_load.py).
        if request.kind == "recommend" and personal.exclude_recent_from_recommend:
            recent = set(user.recent_items)
            fresh = np.array([self.catalog.item_ids[r] not in recent for r in rows.tolist()], dtype=bool)
            rows, retrieval = rows[fresh], retrieval[fresh]
        filtered = apply_filters(request.filters, query_filters, self.catalog, rows)
        rows, retrieval = rows[filtered.keep], retrieval[filtered.keep]
        result.applied, result.relaxed, result.after_filters = filtered.applied, filtered.relaxed, len(rows)
        start = _stopwatch(timings, "filter", start)

        logits, inputs, dtypes = (self._rank(values, rows, deadline, result, run.label("ranker")) if len(rows)
                                  else (None, None, None))
        start = _stopwatch(timings, "rank", start)
        ranked = logits is not None
        if ranked:
            calibrated = self.calibration.logit(logits)
            probability = 1.0 / (1.0 + np.exp(-calibrated))
            raw = 1.0 / (1.0 + np.exp(-logits))
        else:
            calibrated = retrieval[:, 1] if len(rows) else np.zeros(0)
            probability = raw = np.zeros(len(rows))
        calibrated = calibrated + self._personal_boost(rows, user, personal)
        start = _stopwatch(timings, "calibrate", start)

        picks = self._diversify(calibrated, rows, request, run.config.mmr)
        start = _stopwatch(timings, "diversify", start)

        contributions, groups = None, []
        if ranked and len(picks) and run.config.explain.wants_contributions(request.explain):
            pick_inputs = {n: ([v[i] for i in picks] if isinstance(v, list) else v[picks]) for n, v in inputs.items()}
            contributions, groups = self._explain(pick_inputs, dtypes, logits[picks], deadline, result,
                                                  run.label("ranker"))
        context = ReasonContext(request.query, result.intent, [f for f in result.applied if f.source == "query"],
                                user.category_affinity, user.brand_affinity, self._recent(user.recent_items),
                                ranked, result.retrieved,
                                user.price_band if personal.price_band_boost > 0 else None, user.recent_queries)
        for n, i in enumerate(picks):
            row = int(rows[i])
            contrib = top_contributions(contributions[n], groups) if contributions is not None else {}
            result.items.append(RankedItem(
                row, str(self.catalog.item_ids[row]), float(calibrated[i]), float(probability[i]), ranked,
                float(raw[i]), int(retrieval[i, 0]), float(retrieval[i, 1]),
                reasons(self.catalog.item(row), context, int(retrieval[i, 0]), contrib,
                        run.config.explain.max_reasons),
                contrib))
        _stopwatch(timings, "explain", start)
        _stopwatch(timings, "total", begin)
        return result

    def _query_filters(self, request: ParsedRequest, pending, result: SearchResult, by_category: bool
                       ) -> List[FilterSpec]:
        if not request.query:
            return []
        parsed, failure = None, None
        if pending is not None:
            parsed, failure, took_ms = pending.result()
            result.timings_ms["understand"] = round(took_ms, 3)  # its own call, which ran beside retrieval
        if parsed is None:
            if failure is not None:
                result.degrade("intent", failure.status, f"intent model unavailable ({failure.message}): searching "
                               "on text tokens (slots from catalog words and price rules)")
            slots = self.text_slots.parse(request.query)
        else:
            result.understood = True
            result.intent, result.intent_probability = str(parsed["intent"]), float(parsed["intent_probability"])
            result.model_versions[self.callers["intent"].name] = parsed["version"]
            slots = {name: parsed.get(name, "") for name in SLOT_NAMES}
        result.slots = {k: (f"{v:g}" if isinstance(v, float) else str(v)) for k, v in slots.items()
                        if v not in ("", None) and not (isinstance(v, float) and np.isnan(v))}
        return slot_filters(slots, self.catalog, category=by_category)

    def _personal_boost(self, rows: np.ndarray, user: _UserView, personal) -> np.ndarray:
        """Logit-scale boost per candidate: affinity_boost · (category + brand affinity), plus price_band_boost when
        the price lies in the shopper's band (tfrec.online.user_state: exp(mean ± spread) of engaged log-prices)."""
        boost = np.zeros(len(rows))
        if personal.affinity_boost and (user.category_affinity or user.brand_affinity):
            boost += personal.affinity_boost * np.array([affinity(
                str(self.catalog.columns["category"][r]), str(self.catalog.columns["brand"][r]),
                user.category_affinity, user.brand_affinity) for r in rows.tolist()])
        if personal.price_band_boost and user.price_band is not None and len(rows):
            price = self.catalog.columns["price"][rows].astype(np.float64)
            low, high = user.price_band
            boost += personal.price_band_boost * ((price >= low) & (price <= high))
        return boost

    def _diversify(self, scores: np.ndarray, rows: np.ndarray, request: ParsedRequest, mmr) -> List[int]:
        pool = np.argsort(-scores, kind="stable")[: max(mmr.pool, request.k)]
        levels = self.catalog.category_levels()
        sim = similarity([levels[r] for r in rows[pool].tolist()], self.catalog.lower("brand")[rows[pool]].tolist(),
                         mmr.category_weight, mmr.brand_weight)
        titles = self.catalog.lower("title")[rows[pool]].tolist() if mmr.dedupe_titles else ()
        return [int(pool[i]) for i in mmr_order(scores[pool], sim, request.k, request.relevance_weight, titles)]

    def _recent(self, recent_items: List[str]) -> List[Tuple[str, str]]:
        rows, known = self.catalog.rows(recent_items[:5])
        return [(str(self.catalog.columns["category"][r]), str(self.catalog.columns["title"][r])) for r in rows[known]]


@dataclasses.dataclass
class _Run:
    """One request's config (the service's, or its A/B arm's) and model version labels by role."""

    config: SearchConfig
    labels: Mapping[str, str]

    def label(self, role: str) -> Optional[str]:
        return self.labels.get(role)


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value
