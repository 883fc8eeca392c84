"""Diversity re-ranking by maximal marginal relevance (Carbonell & Goldstein 1998) over categories and brands.

From the `pool` best-scored candidates, items are picked one at a time:

    next = argmax_i  λ · rel_i − (1 − λ) · max_{j picked} sim(i, j)

with rel the scores min-max scaled to [0, 1] over the pool, and

    sim(i, j) = (w_c · shared_depth(i, j) / depth(i, j) + w_b · [brand_i = brand_j]) / (w_c + w_b)

where shared_depth counts the leading category-path levels two items share ("Shoes > Running > Trail" and
"Shoes > Running > Road" share 2 of 3). λ = 1 keeps the score order; smaller λ spreads the list over more categories
and brands. Items whose title was already picked (case-insensitive) are skipped when `dedupe_titles` is on.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np


def _codes(keys: Sequence) -> np.ndarray:
    index: dict = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def similarity(levels: Sequence[Sequence[str]], brands: Sequence[str], category_weight: float = 1.0,
               brand_weight: float = 1.0) -> np.ndarray:
    """[n, n] pairwise similarity (module docstring) of items with category `levels` and `brands`."""
    n = len(levels)
    lengths = np.array([len(lv) for lv in levels], dtype=np.int64)
    shared = np.zeros((n, n))
    for d in range(int(lengths.max()) if n else 0):  # items sharing the path prefix up to level d share d + 1 levels
        prefix = _codes(tuple(lv[: d + 1]) if len(lv) > d else None for lv in levels)
        deep = lengths > d
        shared += (prefix[:, None] == prefix[None, :]) & deep[:, None] & deep[None, :]
    depth = np.maximum(lengths[:, None], lengths[None, :])
    category = np.divide(shared, depth, out=np.zeros((n, n)), where=depth > 0)
    brand_codes = _codes(str(b).lower() for b in brands)
    named = np.array([bool(str(b)) for b in brands], dtype=bool)
    brand = (brand_codes[:, None] == brand_codes[None, :]) & named[:, None] & named[None, :]
    return (category_weight * category + brand_weight * brand) / (category_weight + brand_weight)


def mmr_order(scores: np.ndarray, sim: np.ndarray, k: int, relevance_weight: float,
              titles: Sequence[str] = ()) -> List[int]:
    """Indices (into `scores`) of the k items MMR picks, in pick order; `titles` (optional) drops repeated titles."""
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    scores = np.asarray(scores, np.float64)
    spread = scores.max() - scores.min()
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones(n)
    available = np.ones(n, dtype=bool)
    closest = np.zeros(n)  # max similarity to anything picked so far
    picked: List[int] = []
    seen_titles = set()
    while len(picked) < k and available.any():
        value = relevance_weight * relevance - (1.0 - relevance_weight) * closest
        value[~available] = -np.inf
        best = int(np.argmax(value))  # ties: the better-scored (earlier) item, as candidates arrive sorted
        available[best] = False
        if titles:
            title = str(titles[best]).strip().lower()
            if title in seen_titles:
                continue
            seen_titles.add(title)
        picked.append(best)
        closest = np.maximum(closest, sim[best])
    return picked
