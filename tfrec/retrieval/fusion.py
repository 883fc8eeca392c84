"""Reciprocal-rank fusion (Cormack et al., 2009): merge ranked lists from channels whose scores are not comparable.

BM25 scores and embedding cosines live on different scales, so RRF uses only ranks: an item scores
sum_i w_i / (k + rank_i) over the lists it appears in (rank 1-based). `k` (60 in the paper) damps the head, so an item
ranked well by two channels beats one ranked first by a single channel.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

from tfrec.retrieval.base import Candidate

__all__ = ["fuse_batch", "reciprocal_rank_fusion"]


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
