"""Full-catalog retrieval evaluation: every held-out item is ranked against every candidate, no sampled negatives.

Sampled-negative protocols (rank the target among 100 random items) inflate numbers and do not compare across
papers, so models here are judged on the full candidate set. A model is given either as a scorer
`score_fn(user_ids, history) -> (n_users, n_items)` (columns in `split.item_ids` order) or as ranked top-k lists.

Metrics, averaged over test pairs (one query per held-out interaction):
- Recall@k (= hit rate with one held-out item), NDCG@k and MRR (full rank, no cut-off). Score ties are resolved in
  expectation over a random tie-break, so a constant scorer gets chance level, not a lucky or unlucky order.
- `top_k_accuracy`: TFRS's "factorized top-k categorical accuracy", which counts a hit when fewer than k candidates
  score *strictly* higher than the target (ties count in the target's favour, as `tf.math.in_top_k` does).
Seen-item exclusion drops a pair's user's training items (other than the target itself) from the ranking.
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence

import numpy as np

from tfrec.data.interactions import InteractionSplit, interaction_counts
from tfrec.training.metrics import recall_at_k
from tfrec.training.rank_metrics import RetrievalReport, format_reports, metrics_from_ranks

__all__ = [
    "RetrievalReport", "ScoreFn", "evaluate_scores", "evaluate_top_k", "format_reports", "popularity_baseline",
    "preferred_item_recall", "recommend",
]

ScoreFn = Callable[[np.ndarray, List[np.ndarray]], Any]
RECALL_KS = (10, 50, 100)
NDCG_KS = (10,)
ACCURACY_KS = (1, 5, 10, 50, 100)
MAX_CELLS = 8_000_000  # scores held at once (rows x candidates): 64 MB of float64


def _check_ks(*groups: Sequence[int]) -> None:
    for ks in groups:
        for k in ks:
            if not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"cut-offs must be positive ints, got {k!r}")


class _Setup:
    """Candidate index, target columns and (optionally) each pair's excluded columns, as a CSR layout."""

    def __init__(self, split: InteractionSplit, exclude_seen: Optional[bool]):
        self.split = split
        self.test = split.test
        if len(self.test) == 0:
            raise ValueError("the split has no test pairs")
        self.items = np.asarray(split.item_ids, dtype=object)
        self.index = {item: i for i, item in enumerate(self.items.tolist())}
        if len(self.index) != len(self.items):
            raise ValueError("candidate item_ids contain duplicates")
        self.target = self._codes(self.test.item_ids)
        if np.any(self.target < 0):
            missing = self.test.item_ids[self.target < 0][0]
            raise ValueError(f"held-out item {missing!r} is not among the candidate item_ids")
        self.exclude = self.test.exclude_seen_default if exclude_seen is None else bool(exclude_seen)
        seen = []
        if self.exclude:  # distinct seen candidates per pair, never the pair's own target
            for codes, target in zip(map(self._codes, self.test.history), self.target.tolist()):
                codes = np.unique(codes[codes >= 0])
                seen.append(codes[codes != target])
        self.offsets = np.concatenate([[0], np.cumsum([len(c) for c in seen])]).astype(np.int64)
        self.seen = np.concatenate(seen).astype(np.int64) if seen else np.zeros(0, np.int64)

    def _codes(self, ids) -> np.ndarray:
        return np.fromiter((self.index.get(i, -1) for i in np.asarray(ids, dtype=object).tolist()),
                           dtype=np.int64, count=len(ids))

    def seen_cells(self, pairs: np.ndarray):
        """(row within `pairs`, candidate column) of every excluded cell; empty when exclusion is off."""
        if not self.exclude:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        lengths = self.offsets[pairs + 1] - self.offsets[pairs]
        rows = np.repeat(np.arange(len(pairs)), lengths)
        if not len(rows):
            return rows, rows
        return rows, np.concatenate([self.seen[self.offsets[p]:self.offsets[p + 1]] for p in pairs])

    def report(self, name, greater, ties, found, recall_ks, ndcg_ks, accuracy_ks) -> RetrievalReport:
        recall, ndcg, mrr, accuracy = metrics_from_ranks(greater, ties, found, recall_ks, ndcg_ks, accuracy_ks)
        return RetrievalReport(name, self.test.protocol, len(self.test), self.test.n_users, len(self.items),
                               self.exclude, recall, ndcg, mrr, accuracy)


def _score_block(score_fn: ScoreFn, users: np.ndarray, history: List[np.ndarray], n_items: int) -> np.ndarray:
    scores = np.asarray(score_fn(users, history))
    if scores.shape != (len(users), n_items):
        raise ValueError(f"score_fn returned shape {scores.shape}, expected {(len(users), n_items)} "
                         "(one row per user, one column per candidate in split.item_ids order)")
    if np.isnan(scores).any():
        raise ValueError("score_fn returned NaN scores")
    return scores


def evaluate_scores(split: InteractionSplit, score_fn: ScoreFn, *, exclude_seen: Optional[bool] = None,
                    name: str = "", recall_ks: Sequence[int] = RECALL_KS, ndcg_ks: Sequence[int] = NDCG_KS,
                    accuracy_ks: Sequence[int] = ACCURACY_KS, max_cells: int = MAX_CELLS) -> RetrievalReport:
    """Ranks every test pair's target against all candidates by `score_fn` and reports the metrics.

    Pairs are processed user-sorted in blocks of at most `max_cells / n_items` rows, so memory stays bounded on
    large catalogs; `score_fn` gets each block's distinct users with their training histories (a user whose pairs
    straddle two blocks is scored twice). `exclude_seen=None` uses the split's default (on for leave-last-out).
    """
    _check_ks(recall_ks, ndcg_ks, accuracy_ks)
    setup = _Setup(split, exclude_seen)
    n_items = len(setup.items)
    rows_per_block = max(1, int(max_cells) // n_items)
    order = np.argsort(setup.test.user_ids.astype(str), kind="stable")
    greater = np.empty(len(order), dtype=np.int64)
    ties = np.empty(len(order), dtype=np.int64)
    for start in range(0, len(order), rows_per_block):
        pairs = order[start:start + rows_per_block]
        users, first, local = np.unique(setup.test.user_ids[pairs].astype(str), return_index=True,
                                        return_inverse=True)
        scores = _score_block(score_fn, setup.test.user_ids[pairs][first],
                              [setup.test.history[p] for p in pairs[first]], n_items)
        if len(users) < len(pairs):  # several pairs per user: one score row per pair
            scores = scores[local.ravel()]
        target = scores[np.arange(len(pairs)), setup.target[pairs]][:, None]
        greater[pairs] = np.count_nonzero(scores > target, axis=1)
        ties[pairs] = np.count_nonzero(scores == target, axis=1) - 1  # the target ties with itself
        rows, cols = setup.seen_cells(pairs)
        if len(rows):  # take the seen items back out of the counts (sparse: cheaper than a dense mask)
            seen_scores, seen_target = scores[rows, cols], target[rows, 0]
            n = len(pairs)
            greater[pairs] -= np.bincount(rows, weights=seen_scores > seen_target, minlength=n).astype(np.int64)
            ties[pairs] -= np.bincount(rows, weights=seen_scores == seen_target, minlength=n).astype(np.int64)
    return setup.report(name, greater, ties, np.ones(len(order), dtype=bool), recall_ks, ndcg_ks, accuracy_ks)


def evaluate_top_k(split: InteractionSplit, top_k: Mapping[Any, Sequence[Any]], *,
                   exclude_seen: Optional[bool] = None, name: str = "", recall_ks: Sequence[int] = RECALL_KS,
                   ndcg_ks: Sequence[int] = NDCG_KS, accuracy_ks: Sequence[int] = ACCURACY_KS) -> RetrievalReport:
    """Metrics from ranked lists (`user_id -> item ids, best first`), e.g. from an ANN index or an external system.

    Each list needs at least max(k) items; with exclusion the user's seen items are removed before cutting, so
    pass max(k) + len(history) items to avoid counting a list that ran short as a miss. Repeated ids count once.
    A target absent from the list is a miss at every cut-off and contributes 0 to MRR (truncated at list length).
    """
    _check_ks(recall_ks, ndcg_ks, accuracy_ks)
    setup = _Setup(split, exclude_seen)
    need = max([*recall_ks, *ndcg_ks, *accuracy_ks])
    n = len(setup.test)
    greater, found = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    for p, (user, target) in enumerate(zip(setup.test.user_ids.tolist(), setup.test.item_ids.tolist())):
        if user not in top_k:
            raise ValueError(f"no top-k list for test user {user!r}")
        ranked = list(dict.fromkeys(np.asarray(top_k[user], dtype=object).tolist()))
        if len(ranked) < need:
            raise ValueError(f"the list for user {user!r} has {len(ranked)} distinct items; metrics need {need}")
        if setup.exclude:
            seen = set(setup.test.history[p].tolist()) - {target}
            ranked = [i for i in ranked if i not in seen]
        if target in ranked:
            greater[p], found[p] = ranked.index(target), True
    return setup.report(name, greater, np.zeros(n, dtype=np.int64), found, recall_ks, ndcg_ks, accuracy_ks)


# ------------------------------------------------------------------------------------------- serving and baselines
def recommend(score_fn: ScoreFn, user_ids, history: Sequence[Sequence[Any]], item_ids, k: int = 100,
              exclude_seen: bool = True, max_cells: int = MAX_CELLS) -> np.ndarray:
    """Each user's top-k candidate ids by `score_fn` (ties by candidate order), optionally without seen items.

    Returns an (n_users, k) object array; k is capped at the candidate count.
    """
    users = np.asarray(user_ids, dtype=object)
    items = np.asarray(item_ids, dtype=object)
    if len(users) != len(history):
        raise ValueError(f"lengths differ: user_ids={len(users)}, history={len(history)}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    k = min(int(k), len(items))
    index = {item: i for i, item in enumerate(items.tolist())}
    out = np.empty((len(users), k), dtype=object)
    step = max(1, int(max_cells) // len(items))
    for s in range(0, len(users), step):
        block_history = [np.asarray(h, dtype=object) for h in history[s:s + step]]
        scores = _score_block(score_fn, users[s:s + step], block_history, len(items)).astype(np.float64)
        if exclude_seen:
            for row, h in enumerate(block_history):
                cols = [index[i] for i in h.tolist() if i in index]
                scores[row, cols] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < len(items) else \
            np.tile(np.arange(len(items)), (len(scores), 1))
        best = np.take_along_axis(scores, part, axis=1)
        ranked = np.take_along_axis(part, np.lexsort((part, -best), axis=1), axis=1)
        out[s:s + step] = items[ranked]
    return out


class PopularityScorer:
    """Scores every candidate by its training interaction count, the same for every user: the baseline to beat."""

    def __init__(self, counts: np.ndarray):
        self.counts = np.asarray(counts, dtype=np.float64)

    def __call__(self, user_ids, history) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(user_ids), len(self.counts)))


def popularity_baseline(split: InteractionSplit) -> PopularityScorer:
    """Most-popular scorer from the split's training events, aligned with `split.item_ids`."""
    return PopularityScorer(interaction_counts(split.train, split.item_ids))


def preferred_item_recall(ground_truth, user_ids, ranked_ids, k: int = 10, n_preferred: Optional[int] = None) -> float:
    """Recall@k of the synthetic generator's true favourites: |top-k ∩ user's n_preferred best items| / n_preferred.

    Measures whether a retriever found what shoppers actually like, not just what they happened to click in the
    sample. `n_preferred` defaults to k; `ranked_ids` is (n_users, >= k), e.g. from `recommend`.
    """
    ranked = np.asarray(ranked_ids, dtype=object)
    if ranked.ndim != 2 or len(ranked) != len(user_ids):
        raise ValueError(f"ranked_ids must be (n_users={len(user_ids)}, >= k), got shape {ranked.shape}")
    if ranked.shape[1] < k:
        raise ValueError(f"ranked_ids has {ranked.shape[1]} columns, fewer than k={k}")
    preferred = ground_truth.preferred_items(np.asarray(user_ids, dtype=object), n_preferred or k)
    return recall_at_k([list(r) for r in ranked], [set(p.tolist()) for p in preferred], k)
