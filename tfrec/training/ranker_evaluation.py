"""The ranker's test report: per head, one row per model — the DCN ranker, the logistic CTR trained on the same split
in the same run, popularity and (synthetic data) the generator's ground truth — all on the same test rows.

Binary heads get pointwise AUC and log loss of the logged click model (scores at the logged display position,
comparable with the ground truth, which includes position bias) and list-wise metrics per group (request, or user
for ratings; `tfrec.training.rank_metrics.grouped_metrics`, averaged over the groups with a positive and a
negative): `group_auc` and `ndcg@10` of the serving scores (position-free for the ranker, position fixed at 0 for the
logistic CTR, true probability at position 0 for the ground truth), the order a served page would show, and
`group_log_loss` of the logged probabilities. The rating head gets RMSE (beside the training mean rating), NDCG@10
per user with the ratings as gains (users whose test ratings are not all equal), and `like_auc` / `like_group_auc`:
how well the predicted rating, or the baseline's P(like), separates liked items (the baseline's label) from the rest."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional

import numpy as np

from tfrec.models.ranker import TASKS
from tfrec.training import metrics
from tfrec.training.rank_metrics import grouped_metrics

NDCG_K = 10


@dataclasses.dataclass
class RankerReport:
    """Per head, rows of (model name, metric → value); `groups` is what NDCG averages over."""

    split: str
    examples: int
    group_by: str
    groups: int
    heads: Dict[str, List[Dict]]

    def row(self, head: str, model: str) -> Dict[str, float]:
        """The metrics of `model` on `head` (KeyError naming the rows there are)."""
        for r in self.heads[head]:
            if r["model"] == model:
                return r["metrics"]
        raise KeyError(f"no row {model!r} for head {head!r}; rows are {[r['model'] for r in self.heads[head]]}")

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        lines = [f"{self.split} split: {self.examples} examples, "
                 f"NDCG@{NDCG_K} over {self.groups} {self.group_by} groups"]
        for head, rows in self.heads.items():
            names = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
            lines += ["", f"head {head}", "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
            for r in rows:
                cells = [f"{r['metrics'][n]:.4f}" if n in r["metrics"] else "" for n in names]
                lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _safe(fn, *args, **kwargs) -> Optional[float]:
    """A metric, or None where it is undefined (e.g. no positive purchase in the split)."""
    try:
        return float(fn(*args, **kwargs))
    except ValueError:
        return None


def _grouped(labels, scores, groups, probabilities=None, prefix: str = "group_") -> Dict[str, float]:
    """`group_auc`, `group_log_loss` and `ndcg@10` over the groups with unequal labels ({} when none has)."""
    if groups is None:
        return {}
    try:
        return grouped_metrics(labels, scores, groups, NDCG_K, probabilities).to_dict(prefix)
    except ValueError:
        return {}


def _binary_metrics(labels, logged, serving, groups, probabilities=True) -> Dict[str, float]:
    out = {"auc": _safe(metrics.auc, labels, logged)}
    if probabilities:
        out["log_loss"] = _safe(metrics.log_loss, labels, logged)
    out.update(_grouped(labels, serving, groups, logged if probabilities else None))
    return {k: v for k, v in out.items() if v is not None}


def _like_metrics(name: str, like: Optional[np.ndarray], scores, groups, probabilities=False) -> Dict[str, float]:
    """How well rating-head scores (or P(like)) separate liked from other items: overall and within each group."""
    if like is None:
        return {}
    out = {f"{name}_auc": _safe(metrics.auc, like, scores)}
    if probabilities:
        out[f"{name}_log_loss"] = _safe(metrics.log_loss, like, scores)
    grouped = _grouped(like, scores, groups)
    out[f"{name}_group_auc"] = grouped.get("group_auc")
    return {k: v for k, v in out.items() if v is not None}


def _rmse(ratings, predicted) -> Dict[str, float]:
    return {"rmse": float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - ratings) ** 2)))}


def ranker_report(
    tasks: List[str],
    labels: Mapping[str, np.ndarray],
    groups: Optional[np.ndarray],
    ranker: Mapping[str, Mapping[str, np.ndarray]],
    baseline: Optional[Mapping[str, np.ndarray]] = None,
    baseline_label: str = "click",
    popularity: Optional[Mapping[str, np.ndarray]] = None,
    truth: Optional[Mapping[str, np.ndarray]] = None,
    train_means: Optional[Mapping[str, float]] = None,
    split: str = "test",
    group_by: str = "request_id",
) -> RankerReport:
    """The report from test `labels` and scores.

    `labels` holds every head's labels and, for the rating head's `like_*` metrics, the baseline's;
    `ranker[task]` holds `logged` (at the logged position) and `serving` predictions (probabilities, or ratings);
    `baseline` the logistic CTR's `logged` / `serving` P(`baseline_label`); `popularity[task]` each item's smoothed
    training rate; `truth` the generator's `<task>` / `<task>@top` probabilities.
    """
    n = len(next(iter(labels.values())))
    heads: Dict[str, List[Dict]] = {}
    for task in tasks:
        y = np.asarray(labels[task], np.float64)
        rows = []
        if TASKS[task] == "binary":
            rows.append(("dcn_ranker", _binary_metrics(y, ranker[task]["logged"], ranker[task]["serving"], groups)))
            if baseline is not None:
                own = task == baseline_label  # log loss only where the baseline predicts this very label
                rows.append(("logistic_ctr", _binary_metrics(y, baseline["logged"], baseline["serving"], groups, own)))
            if popularity is not None:
                rows.append(("popularity", _binary_metrics(y, popularity[task], popularity[task], groups, False)))
            if truth is not None and task in truth:
                top = truth.get(f"{task}@top", truth[task])
                rows.append(("ground_truth", _binary_metrics(y, truth[task], top, groups)))
        else:
            like = labels.get(baseline_label) if baseline_label != task else None
            like = None if like is None else np.asarray(like, np.float64)
            predicted = ranker[task]["serving"]
            rows.append(("dcn_ranker", {**_rmse(y, predicted), **_grouped(y, predicted, groups),
                                        **_like_metrics(baseline_label, like, predicted, groups)}))
            if baseline is not None:
                rows.append(("logistic_ctr", {**_grouped(y, baseline["serving"], groups),
                                              **_like_metrics(baseline_label, like, baseline["serving"], groups, True)}))
            if train_means and task in train_means:
                rows.append(("training_mean", _rmse(y, np.full(len(y), train_means[task]))))
            if popularity is not None:
                rows.append(("popularity", {**_grouped(y, popularity[task], groups),
                                            **_like_metrics(baseline_label, like, popularity[task], groups)}))
        heads[task] = [{"model": name, "metrics": values} for name, values in rows]
    n_groups = 0 if groups is None else int(len(np.unique(groups)))
    return RankerReport(split, int(n), group_by, n_groups, heads)
