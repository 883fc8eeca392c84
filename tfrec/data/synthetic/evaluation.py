"""Click labels of logged impressions and a rank AUC, so ground-truth checks need nothing beyond numpy."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfrec.data.schema import EventType, Table


@dataclasses.dataclass
class ImpressionLabels:
    """One row per impression event: its request, item, position and whether the same request/item was clicked."""

    request_ids: np.ndarray
    item_ids: np.ndarray
    positions: np.ndarray
    clicked: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.request_ids)


def impression_labels(events: Table) -> ImpressionLabels:
    """Joins clicks to impressions on (request_id, item_id), in the order impressions appear in `events`."""
    kind = events["event_type"]
    imp = kind == EventType.IMPRESSION.value
    click = kind == EventType.CLICK.value
    clicked_pairs = set(zip(events["request_id"][click], events["item_id"][click]))
    req, item = events["request_id"][imp], events["item_id"][imp]
    clicked = np.fromiter((pair in clicked_pairs for pair in zip(req, item)), dtype=bool, count=len(req))
    return ImpressionLabels(request_ids=req, item_ids=item, positions=events["position"][imp], clicked=clicked)


def rank_auc(scores, labels) -> float:
    """ROC AUC as the Mann-Whitney statistic, with tied scores given their average rank."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative label")
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    end = np.r_[first[1:], len(s)]
    ranks = np.empty(len(s))
    ranks[order] = np.repeat((first + end + 1) / 2.0, end - first)  # 1-based average rank of each tie group
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
