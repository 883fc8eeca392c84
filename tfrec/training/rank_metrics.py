"""Ranking metrics: list-wise metrics per group (request, session, user) for rankers, and metrics from target ranks
against a full candidate set for retrieval, with the report that carries them.

`grouped_metrics` scores each list on its own (AUC, log loss, NDCG@k) and averages over the lists that can be
ranked at all: those whose labels are not all equal. The ranker report uses it (`tfrec.training.ranker_evaluation`).

The rank-based half is shared by the offline retrieval harness (`tfrec.retrieval.evaluation`) and the retrieval
training job, which ranks each held-out example's target among all catalog items by the model's scores. Score ties
are resolved in expectation over a random tie-break, so a constant scorer gets chance level.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence

import numpy as np

from tfrec.training import metrics

__all__ = ["GroupedMetrics", "RetrievalReport", "format_reports", "grouped_metrics", "metrics_from_ranks",
           "target_ranks"]


@dataclasses.dataclass(frozen=True)
class GroupedMetrics:
    """Per-list metrics averaged over the lists with unequal labels, each list counting once (not by its size).

    auc:      mean over lists of the share of (positive, negative) pairs the scores order correctly (ties half);
              None for graded labels;
    log_loss: mean over lists of the list's mean binary cross-entropy (None without probabilities);
    ndcg:     mean NDCG@k over the lists, labels as gains.
    """

    auc: Optional[float]
    log_loss: Optional[float]
    ndcg: float
    k: int
    groups_used: int
    groups_total: int

    def to_dict(self, prefix: str = "group_") -> Dict[str, float]:
        """`group_auc`, `group_log_loss`, `ndcg@k` (the names of the ranker report), without the undefined ones."""
        out = {f"{prefix}auc": self.auc, f"{prefix}log_loss": self.log_loss, f"ndcg@{self.k}": self.ndcg}
        return {k: v for k, v in out.items() if v is not None}


def grouped_metrics(labels: Any, scores: Any, groups: Any, k: int = 10,
                    probabilities: Optional[Any] = None) -> GroupedMetrics:
    """List-wise AUC and NDCG@k of `scores` and log loss of `probabilities` within each group, averaged over the
    groups whose labels are not all equal (at least one positive and one negative for 0/1 labels): a list where
    every item is clicked, or none is, says nothing about its order. Graded labels (ratings) get NDCG only.
    ValueError when no group qualifies."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(y):
        raise ValueError(f"lengths differ: labels={len(y)}, scores={len(s)}")
    if len(y) == 0:
        raise ValueError("empty input: no labels")
    codes, n_groups = metrics._group_codes(groups, len(y))
    low = np.full(n_groups, np.inf)
    high = np.full(n_groups, -np.inf)
    np.minimum.at(low, codes, y)
    np.maximum.at(high, codes, y)
    keep = (low < high)[codes]
    if not keep.any():
        raise ValueError(f"grouped metrics are undefined: none of the {n_groups} groups has unequal labels")
    y, s, used = y[keep], s[keep], np.unique(codes[keep], return_inverse=True)[1].reshape(-1)
    n_used = int(used.max()) + 1
    ndcg = metrics.ndcg_at_k(y, s, used, k)
    auc = None
    if np.all((y == 0) | (y == 1)):
        wins, pos, neg = metrics._auc_parts(y, s, np.ones(len(y)), used, n_used)
        auc = float(np.mean(wins / (pos * neg)))
    log_loss = None
    if probabilities is not None:
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if len(p) != len(keep):
            raise ValueError(f"lengths differ: labels={len(keep)}, probabilities={len(p)}")
        per_list = 1.0 / np.bincount(used)[used]  # weights 1/size: the mean of the lists' mean losses
        log_loss = metrics.log_loss(y, p[keep], weights=per_list)
    return GroupedMetrics(auc, log_loss, ndcg, int(k), n_used, n_groups)


@dataclasses.dataclass(frozen=True)
class RetrievalReport:
    """One model's full-catalog retrieval metrics on one split, with what is needed to read them."""

    name: str
    protocol: str
    n_queries: int
    n_users: int
    n_items: int
    exclude_seen: bool
    recall: Dict[int, float]
    ndcg: Dict[int, float]
    mrr: float
    top_k_accuracy: Dict[int, float]

    def metrics(self) -> Dict[str, float]:
        """Flat metric names to values, e.g. `recall@10`, `ndcg@10`, `mrr`, `top_100_accuracy`."""
        out = {f"recall@{k}": v for k, v in self.recall.items()}
        out.update({f"ndcg@{k}": v for k, v in self.ndcg.items()})
        out["mrr"] = self.mrr
        out.update({f"top_{k}_accuracy": v for k, v in self.top_k_accuracy.items()})
        return out

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: the setup fields plus the flat metrics."""
        setup = {f: getattr(self, f) for f in ("name", "protocol", "n_queries", "n_users", "n_items", "exclude_seen")}
        return {**setup, "metrics": self.metrics()}

    def format(self) -> str:
        """A markdown table of the metrics under a one-line description of the setup."""
        seen = "seen items excluded" if self.exclude_seen else "seen items ranked"
        lines = [f"{self.name or 'model'}: {self.protocol}, {self.n_queries} queries from {self.n_users} users, "
                 f"{self.n_items} candidates, {seen}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in self.metrics().items()]
        return "\n".join(lines)


def format_reports(reports: Sequence[RetrievalReport]) -> str:
    """Several models' reports side by side (one row per model), for comparing against baselines."""
    if not reports:
        raise ValueError("no reports to format")
    names = list(reports[0].metrics())
    lines = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for r in reports:
        values = r.metrics()
        lines.append(f"| {r.name or 'model'} | " + " | ".join(f"{values.get(n, float('nan')):.4f}" for n in names) + " |")
    return "\n".join(lines)


def metrics_from_ranks(greater, ties, found, recall_ks, ndcg_ks, accuracy_ks):
    """Metrics from, per pair, the candidates scoring strictly higher (`greater`) and tied (`ties`, target excluded).

    Under a random tie-break the target's 0-based position is uniform on [greater, greater + ties].
    """
    g = greater.astype(np.int64)
    t = ties.astype(np.int64)
    width = (t + 1).astype(np.float64)
    top = int((g + t).max()) + 2
    positions = np.arange(top, dtype=np.float64)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / (positions + 1.0))])  # harmonic[p] = sum_{q<p} 1/(q+1)
    discount = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(positions + 2.0))])
    zero = lambda v: np.where(found, v, 0.0)  # noqa: E731
    recall = {k: float(np.mean(zero(np.clip(k - g, 0, t + 1) / width))) for k in recall_ks}
    ndcg = {k: float(np.mean(zero((discount[np.minimum(g + t + 1, k)] - discount[np.minimum(g, k)]) / width)))
            for k in ndcg_ks}
    mrr = float(np.mean(zero((harmonic[g + t + 1] - harmonic[g]) / width)))
    accuracy = {k: float(np.mean(found & (g < k))) for k in accuracy_ks}
    return recall, ndcg, mrr, accuracy


def target_ranks(scores: np.ndarray, targets: np.ndarray, exclude: Optional[Sequence[np.ndarray]] = None):
    """Per row of `scores` [rows, items]: how many candidates score strictly above the target column and how many
    tie with it (itself not counted), ignoring each row's `exclude` columns (other than its target)."""
    target = scores[np.arange(len(scores)), targets][:, None]
    above, tied = scores > target, scores == target
    greater = np.count_nonzero(above, axis=1)
    ties = np.count_nonzero(tied, axis=1) - 1
    if exclude is not None:
        for row, cols in enumerate(exclude):
            cols = np.asarray(cols, dtype=np.int64)
            cols = np.unique(cols[cols != targets[row]])
            greater[row] -= np.count_nonzero(above[row, cols])
            ties[row] -= np.count_nonzero(tied[row, cols])
    return greater, ties
