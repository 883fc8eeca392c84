"""Reciprocal-rank fusion (Cormack et al., 2009): merge ranked lists from channels whose scores are not comparable.

BM25 scores and embedding cosines live on different scales, so RRF uses only ranks: an item scores
sum_i w_i / (k + rank_i) over the lists it appears in (rank 1-based). `k` (60 in the paper) damps the head, so an item
ranked well by two channels beats one ranked first by a single channel.

Learned variants, both fitted on judged queries the channels were not trained on: `fit_fusion_weights` grid-searches
per-channel RRF weights and k; `fit_score_fusion` fits a logistic model over each candidate's ranks and scores in
every channel (it can use what ranks discard, e.g. how close a score is to the query's best).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from tfrec.retrieval.base import Candidate

__all__ = ["FusionWeights", "ScoreFusion", "fit_fusion_weights", "fit_score_fusion", "fuse_batch",
           "reciprocal_rank_fusion", "weighted_reciprocal_rank_fusion"]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Candidate]], k: float = 60.0,
                           weights: Optional[Sequence[float]] = None, limit: Optional[int] = None,
                           source: str = "rrf") -> List[Candidate]:
    """Fuses the ranked lists of ONE query into one list, best first, at most `limit` long (None = all).

    An item listed twice in the same ranking counts once, at its best rank. Ties in fused score are broken by the best
    rank the item reached in any list, then by item_id, so the output never depends on dict or input order.
    """
    if k < 0 or not math.isfinite(k):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"got {len(weights)} weights for {len(rankings)} rankings")
    if any((not math.isfinite(w)) or w < 0 for w in weights):
        raise ValueError(f"weights must be finite and >= 0, got {list(weights)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    scores: Dict[str, float] = {}
    best_rank: Dict[str, int] = {}
    for ranking, weight in zip(rankings, weights):
        seen = set()
        for rank, candidate in enumerate(ranking, start=1):
            item = candidate.item_id
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    order = sorted(scores, key=lambda item: (-scores[item], best_rank[item], item))
    if limit is not None:
        order = order[:limit]
    return [Candidate(item, scores[item], source) for item in order]


def fuse_batch(per_source: Sequence[Sequence[Sequence[Candidate]]], k: float = 60.0,
               weights: Optional[Sequence[float]] = None, limit: Optional[int] = None,
               source: str = "rrf") -> List[List[Candidate]]:
    """Fuses the batched outputs of several `CandidateSource.search` calls: per_source[s][q] is source s, query q."""
    if not per_source:
        return []
    n = len(per_source[0])
    if any(len(batch) != n for batch in per_source):
        raise ValueError(f"sources answered different numbers of queries: {[len(b) for b in per_source]}")
    return [reciprocal_rank_fusion([batch[q] for batch in per_source], k=k, weights=weights, limit=limit,
                                   source=source) for q in range(n)]


# --------------------------------------------------------------------------------------------- learned weights
# Plain RRF trusts every channel equally. When one channel is clearly better (BM25 vs a small trained embedding
# model, say), a per-channel weight and the damping k fitted on held-out judged queries recover most of the gap
# between "fuse blindly" and "use the better channel alone", at the cost of a grid search over a few dozen fusions.

@dataclasses.dataclass(frozen=True)
class FusionWeights:
    """Per-channel RRF weights and k, with the objective they reached on the queries they were fitted on."""

    weights: Dict[str, float]
    k: float = 60.0
    metric: str = "recall@10"
    score: float = float("nan")

    def fuse(self, per_source: Mapping[str, Sequence[Sequence[Candidate]]], limit: Optional[int] = None,
             source: str = "weighted_rrf") -> List[List[Candidate]]:
        return weighted_reciprocal_rank_fusion(per_source, self.weights, k=self.k, limit=limit, source=source)


def weighted_reciprocal_rank_fusion(per_source: Mapping[str, Sequence[Sequence[Candidate]]],
                                    weights: Optional[Mapping[str, float]] = None, k: float = 60.0,
                                    limit: Optional[int] = None, source: str = "weighted_rrf") -> List[List[Candidate]]:
    """`fuse_batch` over named channels: per_source[name][q] is channel `name`'s ranking for query q, and
    weights[name] its weight (every channel 1.0 when `weights` is None, which is plain RRF)."""
    names = list(per_source)
    if weights is None:
        weights = {name: 1.0 for name in names}
    unknown, missing = sorted(set(weights) - set(names)), [n for n in names if n not in weights]
    if unknown or missing:
        raise ValueError(f"weights name channels {sorted(weights)}, the rankings come from {names}")
    return fuse_batch([per_source[n] for n in names], k=k, weights=[float(weights[n]) for n in names], limit=limit,
                      source=source)


def _objective(metric: str):
    from tfrec.training.metrics import mrr, recall_at_k  # numpy only; imported here to keep fusion import-light

    name, _, cut = metric.partition("@")
    if name not in ("recall", "mrr") or not cut.isdigit() or int(cut) < 1:
        raise ValueError(f"metric must be 'recall@K' or 'mrr@K', got {metric!r}")
    fn = recall_at_k if name == "recall" else mrr
    return lambda ranked, relevant: fn(ranked, relevant, int(cut))


def fit_fusion_weights(per_source: Mapping[str, Sequence[Sequence[Candidate]]], relevant: Sequence[Iterable[str]],
                       grid: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), ks: Sequence[float] = (60.0, 20.0, 100.0, 5.0),
                       metric: str = "recall@10", limit: int = 100) -> FusionWeights:
    """Grid search of channel weights and k maximising `metric` over queries with judgments.

    `relevant[q]` is the set of relevant item ids of query q (queries with none are ignored by the metric). Weights
    are searched up to scale (RRF's ranking is unchanged when every weight is multiplied by the same factor): each
    candidate has one channel at weight 1 and the others from `grid`. Equal weights and the first k are tried first
    and ties keep the earlier candidate, so plain RRF wins unless a weighting is strictly better. Fit on queries the
    channels were not trained on: a model's rankings of its own training queries are optimistic.
    """
    names = list(per_source)
    if not names:
        raise ValueError("no channels to fuse")
    if any(not math.isfinite(g) or g < 0 for g in grid) or not ks:
        raise ValueError(f"grid weights must be finite and >= 0 and ks non-empty, got {list(grid)}, {list(ks)}")
    relevant = [set(r) for r in relevant]
    if any(len(per_source[n]) != len(relevant) for n in names):
        raise ValueError(f"rankings and relevant sets cover different numbers of queries: "
                         f"{[len(per_source[n]) for n in names]} vs {len(relevant)}")
    score = _objective(metric)
    candidates = [tuple(1.0 for _ in names)]
    for combo in itertools.product(sorted(set(grid) | {1.0}), repeat=len(names)):
        if max(combo) == 1.0 and combo not in candidates:
            candidates.append(combo)
    best = None
    for k in ks:
        for combo in candidates:
            fused = fuse_batch([per_source[n] for n in names], k=k, weights=combo, limit=limit)
            value = score([[c.item_id for c in row] for row in fused], relevant)
            if best is None or value > best.score:
                best = FusionWeights(dict(zip(names, combo)), float(k), metric, float(value))
    return best


# --------------------------------------------------------------------------------------------- learned scores
# RRF throws the channels' scores away. A channel's score still says something rank does not - a BM25 score far
# below the query's best hit, a cosine close to the top one - so `fit_score_fusion` learns a logistic model over a
# few rank and score features of each candidate in each channel, on judged queries, and ranks by its probability.

_FEATURES_PER_CHANNEL = 5


def _channel_features(ranking: Sequence[Candidate], items: List[str], depth: int) -> np.ndarray:
    """Per item: 1/(10+rank), 1/(60+rank), log(rank) (absent = depth+1), score relative to the list's best and
    worst (0..1; absent = 0) and presence."""
    first: Dict[str, tuple] = {}
    for rank, c in enumerate(ranking, start=1):
        first.setdefault(c.item_id, (rank, c.score))
    scores = [c.score for c in ranking]
    top, bottom = (max(scores), min(scores)) if scores else (1.0, 0.0)
    span = top - bottom if top > bottom else 1.0
    out = np.zeros((len(items), _FEATURES_PER_CHANNEL))
    for row, item in enumerate(items):
        rank, score = first.get(item, (depth + 1, None))
        out[row, :3] = (1.0 / (10 + rank), 1.0 / (60 + rank), math.log(rank))
        if score is not None:
            out[row, 3:] = ((score - bottom) / span, 1.0)
    return out


@dataclasses.dataclass(frozen=True)
class ScoreFusion:
    """A logistic model over every channel's rank/score features; `fuse` ranks the union of the channels' lists."""

    channels: List[str]
    coefficients: List[float]
    mean: List[float]
    scale: List[float]
    depth: int = 100

    def features(self, rankings: Sequence[Sequence[Candidate]]):
        """The union of the rankings' items (first-listed first) and their feature matrix, channel by channel."""
        items = list(dict.fromkeys(c.item_id for ranking in rankings for c in ranking))
        parts = [_channel_features(r, items, self.depth) for r in rankings]
        return items, (np.concatenate(parts, axis=1) if parts else np.zeros((0, 0)))

    def fuse(self, per_source: Mapping[str, Sequence[Sequence[Candidate]]], limit: Optional[int] = None,
             source: str = "score_fusion") -> List[List[Candidate]]:
        if sorted(per_source) != sorted(self.channels):
            raise ValueError(f"the model was fitted on channels {self.channels}, got {list(per_source)}")
        w = np.asarray(self.coefficients)
        out = []
        for q in range(len(per_source[self.channels[0]])):
            items, x = self.features([per_source[n][q] for n in self.channels])
            if not items:
                out.append([])
                continue
            z = ((x - np.asarray(self.mean)) / np.asarray(self.scale)) @ w[1:] + w[0]
            order = sorted(range(len(items)), key=lambda i: (-z[i], items[i]))[: limit if limit is not None else None]
            out.append([Candidate(items[i], float(z[i]), source) for i in order])
        return out


def fit_score_fusion(per_source: Mapping[str, Sequence[Sequence[Candidate]]], relevant: Sequence[Iterable[str]],
                     l2: float = 1.0, iterations: int = 25, depth: int = 100) -> ScoreFusion:
    """Fits `ScoreFusion` (L2-regularised logistic regression, Newton steps) on queries with judgments: every item
    of the union of a query's lists is one example, labelled 1 when it is in `relevant[q]`. Queries with no relevant
    item are skipped. As with `fit_fusion_weights`, fit on queries the channels were not trained on."""
    names = list(per_source)
    relevant = [set(r) for r in relevant]
    if not names or any(len(per_source[n]) != len(relevant) for n in names):
        raise ValueError(f"need rankings for every query from at least one channel: "
                         f"{[len(per_source[n]) for n in names]} rankings vs {len(relevant)} relevant sets")
    probe = ScoreFusion(names, [], [], [], depth)
    xs, ys = [], []
    for q, rel in enumerate(relevant):
        if not rel:
            continue
        items, x = probe.features([per_source[n][q] for n in names])
        xs.append(x)
        ys.append(np.array([i in rel for i in items], dtype=np.float64))
    if not xs or not any(y.any() for y in ys):
        raise ValueError("no query has a relevant item among the channels' candidates: nothing to fit")
    x, y = np.concatenate(xs), np.concatenate(ys)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    design = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[0] = 0.0  # the intercept is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-design @ w))
        gradient = design.T @ (p - y) + penalty * w
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-6:
            break
    return ScoreFusion(names, w.tolist(), mean.tolist(), scale.tolist(), depth)
