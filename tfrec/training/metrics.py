"""Offline evaluation metrics in plain numpy, shared by every model's report so numbers are comparable across models.

No TensorFlow: metrics run on saved predictions too. Everything is vectorised (sorts and bincounts, no Python loop
over rows or groups), so 10M-row evaluation sets are fine. Score ties are handled exactly (AUC counts a tie as half
a correct pair; NDCG averages the gain over the tied positions) so results do not depend on row order.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "CalibrationBin", "CalibrationTable", "GroupedAUC", "auc", "calibration_table", "expected_calibration_error",
    "format_calibration", "grouped_auc", "log_loss", "mrr", "ndcg_at_k", "popularity_scores", "recall_at_k",
]


# ---------------------------------------------------------------------------------------------------- validation
def _vector(name: str, values: Any, dtype=np.float64) -> np.ndarray:
    """1-D array; a Keras-style (n, 1) prediction column is accepted and flattened."""
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (or shape (n, 1)), got shape {arr.shape}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError("lengths differ: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("empty input: " + ", ".join(lengths))
    return n


def _binary(labels: Any) -> np.ndarray:
    y = _vector("labels", labels)
    if not np.all((y == 0) | (y == 1)):
        bad = float(y[(y != 0) & (y != 1)][0])
        raise ValueError(f"labels must be 0/1, found {bad!r}")
    return y


def _weights(weights: Any, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = _vector("weights", weights)
    if len(w) != n:
        raise ValueError(f"lengths differ: labels={n}, weights={len(w)}")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")
    return w


def _group_codes(groups: Any, n: int) -> Tuple[np.ndarray, int]:
    g = _vector("groups", groups, dtype=None)
    if len(g) != n:
        raise ValueError(f"lengths differ: labels={n}, groups={len(g)}")
    uniq, codes = np.unique(g, return_inverse=True)
    return codes.ravel(), len(uniq)


def _group_sort(codes: Optional[np.ndarray], key: np.ndarray) -> np.ndarray:
    """Order by group, then by `key` ascending (two passes: ~1.5x faster than np.lexsort on 10M rows)."""
    order = np.argsort(key)
    if codes is None:
        return order
    return order[np.argsort(codes[order], kind="stable")]


# ----------------------------------------------------------------------------------------------------------- AUC
def _auc_parts(y, s, w, codes, n_groups):
    """Per group: sum over (pos, neg) pairs of w_pos*w_neg*([s_pos > s_neg] + 0.5*[tie]), total pos and neg weight.

    Rows are sorted by (group, score) and cut into blocks of equal (group, score); a block's positives beat every
    negative in earlier blocks of the same group and tie with the negatives in their own block.
    """
    pos_w = w * y
    neg_w = w - pos_w
    grouped = n_groups > 1
    order = _group_sort(codes if grouped else None, s)
    s = s[order]
    new_block = np.ones(len(s), dtype=bool)
    new_block[1:] = s[1:] != s[:-1]
    if grouped:
        c = codes[order]
        new_block[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(new_block)
    block_pos = np.add.reduceat(pos_w[order], starts)
    block_neg = np.add.reduceat(neg_w[order], starts)
    neg_below = np.cumsum(block_neg) - block_neg  # negatives in all earlier blocks
    if not grouped:
        wins = block_pos @ (neg_below + 0.5 * block_neg)
        return np.array([wins]), np.array([block_pos.sum()]), np.array([block_neg.sum()])
    block_group = c[starts]
    first = np.ones(len(starts), dtype=bool)
    first[1:] = block_group[1:] != block_group[:-1]
    group_first_block = np.maximum.accumulate(np.where(first, np.arange(len(starts)), 0))
    neg_below -= neg_below[group_first_block]  # ... restricted to the block's own group
    wins = block_pos * (neg_below + 0.5 * block_neg)
    count = lambda v: np.bincount(block_group, weights=v, minlength=n_groups)  # noqa: E731
    return count(wins), count(block_pos), count(block_neg)


def auc(labels: Any, scores: Any, weights: Any = None) -> float:
    """Exact ROC AUC (probability a random positive outscores a random negative, ties counting half)."""
    y = _binary(labels)
    s = _vector("scores", scores)
    n = _same_length(labels=y, scores=s)
    w = _weights(weights, n)
    wins, pos, neg = _auc_parts(y, s, w, None, 1)
    if pos[0] <= 0 or neg[0] <= 0:
        which = "positive" if pos[0] <= 0 else "negative"
        raise ValueError(f"AUC is undefined: labels contain no {which} examples (with non-zero weight)")
    return float(wins[0] / (pos[0] * neg[0]))


class GroupedAUC(NamedTuple):
    """Impression-weighted mean per-group AUC, the groups it averaged over, and all groups seen."""

    value: float
    groups_used: int
    groups_total: int


def grouped_auc(labels: Any, scores: Any, groups: Any) -> GroupedAUC:
    """GAUC: per-group (e.g. per user or query) AUC averaged with group-size weights; single-class groups skipped.

    Plain AUC rewards ranking users against each other; a feed or search page only ranks within one request.
    """
    y = _binary(labels)
    s = _vector("scores", scores)
    n = _same_length(labels=y, scores=s)
    codes, n_groups = _group_codes(groups, n)
    wins, pos, neg = _auc_parts(y, s, np.ones(n), codes, n_groups)
    used = (pos > 0) & (neg > 0)
    if not used.any():
        raise ValueError(f"grouped AUC is undefined: none of the {n_groups} groups has both positives and negatives")
    size = (pos + neg)[used]
    value = float(np.sum(size * wins[used] / (pos[used] * neg[used])) / np.sum(size))
    return GroupedAUC(value, int(used.sum()), n_groups)


# -------------------------------------------------------------------------------------------- log loss, calibration
def log_loss(labels: Any, probs: Any, eps: float = 1e-7, weights: Any = None) -> float:
    """Mean binary cross-entropy; probabilities are clipped to [eps, 1 - eps] so one confident miss is finite."""
    y = _vector("labels", labels)
    p = _vector("probs", probs)
    n = _same_length(labels=y, probs=p)
    if np.any((y < 0) | (y > 1)):
        raise ValueError("labels must lie in [0, 1]")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probs must lie in [0, 1]; pass sigmoid outputs, not logits")
    w = _weights(weights, n)
    if w.sum() <= 0:
        raise ValueError("weights sum to zero")
    p = np.clip(p, eps, 1.0 - eps)
    losses = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return float(np.sum(w * losses) / np.sum(w))


@dataclasses.dataclass(frozen=True)
class CalibrationBin:
    """One equal-count bin of predictions: its size, prediction range, mean prediction and observed positive rate."""

    count: int
    min_pred: float
    max_pred: float
    mean_pred: float
    observed_rate: float

    @property
    def gap(self) -> float:
        return self.mean_pred - self.observed_rate


@dataclasses.dataclass(frozen=True)
class CalibrationTable:
    """Bins ordered by prediction; `ece` is the count-weighted mean |mean_pred - observed_rate|."""

    bins: List[CalibrationBin]

    @property
    def count(self) -> int:
        return sum(b.count for b in self.bins)

    @property
    def ece(self) -> float:
        return float(sum(b.count * abs(b.gap) for b in self.bins) / self.count)


def calibration_table(labels: Any, probs: Any, bins: int = 10) -> CalibrationTable:
    """Sorts by predicted probability and cuts into `bins` equal-count bins (deciles by default).

    Equal-count rather than equal-width bins, because CTR predictions crowd near 0 and fixed-width bins would put
    almost everything in the first one. Tied predictions may straddle a bin edge; counts stay equal.
    """
    y = _vector("labels", labels)
    p = _vector("probs", probs)
    n = _same_length(labels=y, probs=p)
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probs must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    y, p = y[order], p[order]
    k = min(int(bins), n)
    starts = (np.arange(k) * n) // k
    counts = np.diff(np.append(starts, n))
    mean_pred = np.add.reduceat(p, starts) / counts
    rate = np.add.reduceat(y, starts) / counts
    lo, hi = p[starts], p[np.append(starts[1:], n) - 1]
    return CalibrationTable(
        [CalibrationBin(int(c), float(a), float(b), float(m), float(r)) for c, a, b, m, r in
         zip(counts, lo, hi, mean_pred, rate)]
    )


def expected_calibration_error(labels: Any, probs: Any, bins: int = 10) -> float:
    """ECE over equal-count bins: 0 for a perfectly calibrated model, up to 1."""
    return calibration_table(labels, probs, bins).ece


def format_calibration(table: CalibrationTable) -> str:
    """The table as aligned text for logs and reports, with the ECE on the last line."""
    header = f"{'bin':>4} {'count':>10} {'pred range':>19} {'mean pred':>10} {'observed':>10} {'gap':>9}"
    lines = [header, "-" * len(header)]
    for i, b in enumerate(table.bins):
        span = f"{b.min_pred:.4f}-{b.max_pred:.4f}"
        lines.append(
            f"{i:>4} {b.count:>10} {span:>19} {b.mean_pred:>10.4f} {b.observed_rate:>10.4f} {b.gap:>+9.4f}"
        )
    lines.append(f"ECE = {table.ece:.4f} over {table.count} examples")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- ranking
def _positions(codes: np.ndarray) -> np.ndarray:
    """0-based position of each row within its group, for rows already sorted by group."""
    n = len(codes)
    first = np.ones(n, dtype=bool)
    first[1:] = codes[1:] != codes[:-1]
    starts = np.flatnonzero(first)
    return np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))


def ndcg_at_k(labels_or_gains: Any, scores: Any, groups: Any, k: int = 10) -> float:
    """Mean NDCG@k over groups (queries/requests); values are used as gains (binary or graded, >= 0).

    Gains are linear (DCG = sum gain / log2(rank + 1)); pass `2**rel - 1` for the exponential form. Groups with no
    positive gain have no ideal ranking and are skipped. Items with tied scores share their positions' mean discount.
    """
    g = _vector("labels_or_gains", labels_or_gains)
    s = _vector("scores", scores)
    n = _same_length(labels_or_gains=g, scores=s)
    if np.any(g < 0):
        raise ValueError("gains must be non-negative")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    codes, n_groups = _group_codes(groups, n)

    def discount(pos):
        return np.where(pos < k, 1.0 / np.log2(pos + 2.0), 0.0)

    order = _group_sort(codes, -s)  # best score first within each group
    gs, ss, cs = g[order], s[order], codes[order]
    disc = discount(_positions(cs))
    new_block = np.ones(n, dtype=bool)
    new_block[1:] = (cs[1:] != cs[:-1]) | (ss[1:] != ss[:-1])
    starts = np.flatnonzero(new_block)
    sizes = np.diff(np.append(starts, n))
    mean_disc = np.repeat(np.add.reduceat(disc, starts) / sizes, sizes)
    dcg = np.bincount(cs, weights=gs * mean_disc, minlength=n_groups)

    ideal_order = _group_sort(codes, -g)
    ci = codes[ideal_order]
    idcg = np.bincount(ci, weights=g[ideal_order] * discount(_positions(ci)), minlength=n_groups)
    used = idcg > 0
    if not used.any():
        raise ValueError(f"NDCG is undefined: none of the {n_groups} groups has a positive gain")
    return float(np.mean(dcg[used] / idcg[used]))


def _retrieval_inputs(ranked_ids: Any, relevant_sets: Any, k: int):
    """Either a (queries, k) hit matrix (fast path) or the relevant sets as Python sets (general path)."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if len(ranked_ids) != len(relevant_sets):
        raise ValueError(f"lengths differ: ranked_ids={len(ranked_ids)}, relevant_sets={len(relevant_sets)}")
    if len(ranked_ids) == 0:
        raise ValueError("empty input: no queries")
    single = isinstance(relevant_sets, np.ndarray) and relevant_sets.ndim == 1 and relevant_sets.dtype != object
    if single and isinstance(ranked_ids, np.ndarray) and ranked_ids.ndim == 2:
        return ranked_ids[:, :k] == relevant_sets[:, None], None
    rel = []
    for r in relevant_sets:
        if isinstance(r, (set, frozenset)):
            rel.append(r)
        elif isinstance(r, (str, bytes)) or np.ndim(r) == 0:  # a bare id: one relevant item
            rel.append({r.item() if isinstance(r, np.generic) else r})
        else:
            rel.append(set(np.asarray(r).ravel().tolist()))
    return None, rel


def recall_at_k(ranked_ids: Sequence[Sequence[Any]], relevant_sets: Sequence[Iterable[Any]], k: int) -> float:
    """Mean over queries of |top-k ∩ relevant| / |relevant|; queries with nothing relevant are skipped.

    `relevant_sets` may be a list of sets, or a 1-D array holding one relevant id per query (next-item prediction),
    which with a 2-D `ranked_ids` array is computed without a Python loop.
    """
    hits, rel = _retrieval_inputs(ranked_ids, relevant_sets, k)
    if hits is not None:
        return float(hits.any(axis=1).mean())
    values = [len(set(np.asarray(r)[:k].tolist()) & s) / len(s) for r, s in zip(ranked_ids, rel) if s]
    if not values:
        raise ValueError("recall is undefined: every query has an empty relevant set")
    return float(np.mean(values))


def mrr(ranked_ids: Sequence[Sequence[Any]], relevant_sets: Sequence[Iterable[Any]], k: int = 100) -> float:
    """Mean reciprocal rank of the first relevant id within the top k (0 when none is); empty sets are skipped."""
    hits, rel = _retrieval_inputs(ranked_ids, relevant_sets, k)
    if hits is not None:
        found = hits.any(axis=1)
        return float(np.mean(np.where(found, 1.0 / (hits.argmax(axis=1) + 1.0), 0.0)))
    values = []
    for r, s in zip(ranked_ids, rel):
        if s:
            top = np.asarray(r)[:k].tolist()
            values.append(next((1.0 / (i + 1) for i, item in enumerate(top) if item in s), 0.0))
    if not values:
        raise ValueError("MRR is undefined: every query has an empty relevant set")
    return float(np.mean(values))


# ------------------------------------------------------------------------------------------------------ baseline
def popularity_scores(
    train_item_ids: Any, train_labels: Optional[Any], eval_item_ids: Any, prior: float = 10.0
) -> np.ndarray:
    """The baseline every model must beat: each eval item scored by its training popularity.

    With labels: smoothed CTR (clicks + prior * global_rate) / (impressions + prior), so an item seen once with one
    click does not outrank a proven best-seller; unseen items get the global rate. With `train_labels=None`: the
    training count (unseen items 0).
    """
    train = _vector("train_item_ids", train_item_ids, dtype=None)
    evals = _vector("eval_item_ids", eval_item_ids, dtype=None)
    if len(train) == 0:
        raise ValueError("empty input: train_item_ids")
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior!r}")
    uniq, codes = np.unique(np.concatenate([train, evals]), return_inverse=True)
    codes = codes.ravel()
    train_codes, eval_codes = codes[: len(train)], codes[len(train):]
    counts = np.bincount(train_codes, minlength=len(uniq)).astype(np.float64)
    if train_labels is None:
        return counts[eval_codes]
    y = _vector("train_labels", train_labels)
    _same_length(train_item_ids=train, train_labels=y)
    if np.any(y < 0):
        raise ValueError("train_labels must be non-negative")
    positives = np.bincount(train_codes, weights=y, minlength=len(uniq))
    global_rate = y.mean()
    if prior == 0:  # raw CTR; unseen items still fall back to the global rate
        rate = np.where(counts > 0, positives / np.maximum(counts, 1.0), global_rate)
    else:
        rate = (positives + prior * global_rate) / (counts + prior)
    return rate[eval_codes]
