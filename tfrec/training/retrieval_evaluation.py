"""Full-catalog evaluation of a two-tower model on held-out examples, and the per-epoch validation recall callback.

Each held-out example is one query (its own request features: user, recent items, search text, context) whose
target item is ranked against every catalog item by q·c. A popularity scorer (training-positive counts) is ranked
the same way, so the two reports are directly comparable. Validation recall@k is logged every epoch as
`val_recall@k`, which is what checkpoints and early stopping should follow: the in-batch softmax loss depends on
batch composition and is a weak proxy for full-catalog recall.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec.training.rank_metrics import RetrievalReport, metrics_from_ranks, target_ranks

Columns = Mapping[str, np.ndarray]
MAX_CELLS = 8_000_000


class CatalogIndexer:
    """Maps item ids to candidate columns; fails clearly on targets outside the catalog."""

    def __init__(self, item_ids: np.ndarray):
        self.item_ids = np.asarray(item_ids).astype(str).astype(object)
        self.index = {item: i for i, item in enumerate(self.item_ids.tolist())}
        if len(self.index) != len(self.item_ids):
            raise ValueError("the catalog has duplicate item ids")

    def codes(self, ids, strict: bool = True) -> np.ndarray:
        codes = np.fromiter((self.index.get(i, -1) for i in np.asarray(ids).astype(str).tolist()), np.int64, len(ids))
        if strict and (codes < 0).any():
            raise ValueError(f"item {np.asarray(ids)[codes < 0][0]!r} is not in the catalog")
        return codes


def seen_items(train_users: np.ndarray, train_items: np.ndarray, users: np.ndarray, indexer: CatalogIndexer) -> List[np.ndarray]:
    """Each of `users`' training items as catalog columns (for seen-item exclusion)."""
    by_user: Dict[str, set] = {}
    for user, code in zip(train_users.astype(str).tolist(), indexer.codes(train_items, strict=False).tolist()):
        if code >= 0:
            by_user.setdefault(user, set()).add(code)
    return [np.fromiter(sorted(by_user.get(u, ())), np.int64) for u in users.astype(str).tolist()]


def rank_report(
    score_rows,
    targets: np.ndarray,
    n_items: int,
    *,
    name: str,
    protocol: str,
    users: np.ndarray,
    exclude: Optional[Sequence[np.ndarray]] = None,
    recall_ks: Sequence[int] = (10, 50, 100),
    ndcg_ks: Sequence[int] = (10,),
    accuracy_ks: Sequence[int] = (1, 10, 50, 100),
) -> RetrievalReport:
    """Ranks each row's target column among all `n_items` columns; `score_rows(start, stop)` gives a score block."""
    n = len(targets)
    if n == 0:
        raise ValueError("no held-out examples to evaluate")
    greater, ties = np.empty(n, np.int64), np.empty(n, np.int64)
    step = max(1, MAX_CELLS // max(n_items, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        scores = np.asarray(score_rows(start, stop))
        if scores.shape != (stop - start, n_items):
            raise ValueError(f"score block has shape {scores.shape}, expected {(stop - start, n_items)}")
        block_exclude = None if exclude is None else exclude[start:stop]
        greater[start:stop], ties[start:stop] = target_ranks(scores, targets[start:stop], block_exclude)
    recall, ndcg, mrr, accuracy = metrics_from_ranks(greater, ties, np.ones(n, bool), recall_ks, ndcg_ks, accuracy_ks)
    return RetrievalReport(name, protocol, n, len(np.unique(users.astype(str))), n_items, exclude is not None,
                           recall, ndcg, mrr, accuracy)


def model_report(query_tower, queries: Columns, candidate_vectors: np.ndarray, targets: np.ndarray, **kwargs) -> RetrievalReport:
    """`rank_report` of a query tower's embeddings of `queries` against precomputed candidate vectors."""
    q = query_tower.embed(queries)
    return rank_report(lambda a, b: q[a:b] @ candidate_vectors.T, targets, len(candidate_vectors), **kwargs)


def popularity_report(train_items: np.ndarray, indexer: CatalogIndexer, targets: np.ndarray, **kwargs) -> RetrievalReport:
    """`rank_report` of the most-popular scorer (training-positive counts per catalog item)."""
    codes = indexer.codes(train_items, strict=False)
    counts = np.bincount(codes[codes >= 0], minlength=len(indexer.item_ids)).astype(np.float64)
    return rank_report(lambda a, b: np.broadcast_to(counts, (b - a, len(counts))), targets, len(counts), **kwargs)


def list_report(ranked_ids: np.ndarray, target_ids: np.ndarray, *, name: str, protocol: str, users: np.ndarray,
                n_items: int, recall_ks: Sequence[int] = (10, 50, 100)) -> RetrievalReport:
    """Metrics from served top-k lists (e.g. an exported retrieval model's `item_ids`): a target outside its list is
    a miss at every cut-off, so cut-offs above the list length are not reported."""
    ranked = np.asarray(ranked_ids).astype(str)
    targets = np.asarray(target_ids).astype(str)
    hits = ranked == targets[:, None]
    found = hits.any(axis=1)
    greater = np.where(found, hits.argmax(axis=1), ranked.shape[1])
    ks = [k for k in recall_ks if k <= ranked.shape[1]]
    recall, ndcg, mrr, accuracy = metrics_from_ranks(greater, np.zeros(len(targets), np.int64), found, ks, [10] if ranked.shape[1] >= 10 else [], ks)
    return RetrievalReport(name, protocol, len(targets), len(np.unique(users.astype(str))), n_items, False,
                           recall, ndcg, mrr, accuracy)


def top_k_items(query_vectors: np.ndarray, candidate_vectors: np.ndarray, item_ids: np.ndarray, k: int) -> np.ndarray:
    """The k best-scoring item ids per query (exact), best first."""
    k = min(k, len(item_ids))
    out = np.empty((len(query_vectors), k), dtype=object)
    step = max(1, MAX_CELLS // max(len(item_ids), 1))
    for s in range(0, len(query_vectors), step):
        scores = query_vectors[s:s + step] @ candidate_vectors.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        out[s:s + step] = np.asarray(item_ids, dtype=object)[np.take_along_axis(part, order, 1)]
    return out


class ValidationRecall(tf.keras.callbacks.Callback):
    """Logs `val_recall@k` (full catalog) after every epoch, before checkpointing and early stopping read the logs."""

    def __init__(self, queries: Columns, targets: np.ndarray, catalog: Columns, k: int = 50):
        super().__init__()
        self.queries, self.targets, self.catalog, self.k = queries, targets, catalog, int(k)

    def on_epoch_end(self, epoch, logs=None):
        candidates = self.model.candidate_tower.embed(self.catalog)
        report = model_report(self.model.query_tower, self.queries, candidates, self.targets, name="validation",
                              protocol="validation", users=np.zeros(len(self.targets), dtype=object),
                              recall_ks=(self.k,), ndcg_ks=(), accuracy_ks=())
        if logs is not None:
            logs[f"val_recall@{self.k}"] = report.recall[self.k]
