"""Reciprocal-rank fusion (Cormack et al., 2009): merge ranked lists from channels whose scores are not comparable.

BM25 scores and embedding cosines live on different scales, so RRF uses only ranks: an item scores
sum_i w_i / (k + rank_i) over the lists it appears in (rank 1-based). `k` (60 in the paper) damps the head, so an item
ranked well by two channels beats one ranked first by a single channel. `fit_fusion_weights` picks the weights and k
on held-out judged queries (see the section "learned weights" below).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from tfrec.retrieval.base import Candidate

__all__ = ["FusionWeights", "fit_fusion_weights", "fuse_batch", "reciprocal_rank_fusion",
           "weighted_reciprocal_rank_fusion"]


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
