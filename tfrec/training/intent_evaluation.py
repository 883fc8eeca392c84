"""Test reports of the query-understanding model: intent top-k accuracy, slot span F1, query→title retrieval.

- intent: top-1 / top-3 accuracy over queries whose class the model knows, and how often it answers "unknown";
- slots: span-level precision / recall / F1 (a predicted span counts when slot, first and last wordpiece all match),
  overall and per slot, over queries that carry slot labels;
- embedding: each query with a chosen title ranks the split's distinct titles; Recall@10 and MRR of its own.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfrec.models.intent import INTENT, QUERY, SLOT_TAGS, TITLE
from tfrec.text.slots import BIO_TAGS, SLOT_NAMES


@dataclasses.dataclass
class IntentReport:
    """Figures of one model on one split (None where the split has no such labels)."""

    n_queries: int
    intent_top1: Optional[float] = None
    intent_top3: Optional[float] = None
    unknown_rate: Optional[float] = None
    slot_precision: Optional[float] = None
    slot_recall: Optional[float] = None
    slot_f1: Optional[float] = None
    slot_f1_by_slot: Dict[str, float] = dataclasses.field(default_factory=dict)
    title_recall_at_10: Optional[float] = None
    title_mrr: Optional[float] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format(self, title: str) -> str:
        def show(v):
            return "-" if v is None else f"{v:.4f}"

        lines = [f"{title} ({self.n_queries} queries)",
                 f"  intent   top-1 {show(self.intent_top1)}  top-3 {show(self.intent_top3)}  "
                 f"unknown {show(self.unknown_rate)}",
                 f"  slots    P {show(self.slot_precision)}  R {show(self.slot_recall)}  F1 {show(self.slot_f1)}  "
                 + "  ".join(f"{k} {v:.3f}" for k, v in self.slot_f1_by_slot.items()),
                 f"  embedding  title R@10 {show(self.title_recall_at_10)}  MRR {show(self.title_mrr)}"]
        return "\n".join(lines)


def tag_spans(tags: np.ndarray) -> set:
    """{(slot, first, last)} of a row's BIO tag ids (an I- without a B- opens a span; -1 tags are ignored)."""
    spans, current = set(), None
    for position, tag in enumerate(list(tags) + [0]):
        name = BIO_TAGS[tag] if tag >= 0 else "O"
        prefix, _, slot = name.partition("-")
        if current and (prefix != "I" or slot != current[0]):
            spans.add((current[0], current[1], position - 1))
            current = None
        if prefix == "B" or (prefix == "I" and current is None):
            current = (slot, position)
    return spans


def predict_batches(model, queries: np.ndarray, batch_size: int = 64):
    """Yields (start, model outputs as numpy) over `queries` in batches."""
    for start in range(0, len(queries), batch_size):
        out = model(tf.constant(np.asarray(queries[start : start + batch_size]).astype(str)), training=False)
        yield start, {k: v.numpy() for k, v in out.items()}


def evaluate_intent_model(model, columns: Dict[str, np.ndarray], intents: List[str], batch_size: int = 64,
                          unknown_below: Optional[float] = None) -> IntentReport:
    """The report of `model` on split `columns` (as read from the run's TFRecords)."""
    queries = np.asarray(columns[QUERY], dtype=object)
    labels = np.asarray(columns[INTENT])
    gold_tags = np.asarray(columns[SLOT_TAGS])
    titles = np.asarray(columns[TITLE], dtype=object)
    threshold = model.config.unknown_below if unknown_below is None else unknown_below
    n = len(queries)
    top3 = np.zeros((n, 3), dtype=np.int64)
    top_p = np.zeros(n)
    embeddings = None
    predicted_spans: List[set] = []
    for start, out in predict_batches(model, queries, batch_size):
        logits = out["intent_logits"]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        k = min(3, probs.shape[1])
        order = np.argsort(-probs, axis=1)[:, :k]
        top3[start : start + len(order), :k] = order
        top3[start : start + len(order), k:] = -1
        top_p[start : start + len(order)] = probs[np.arange(len(order)), order[:, 0]]
        tags = out["slot_logits"].argmax(axis=-1)
        tags[out["token_starts"] < 0] = 0
        predicted_spans += [tag_spans(row) for row in tags]
        emb = out["embedding"]
        embeddings = emb if embeddings is None else np.concatenate([embeddings, emb])
    report = IntentReport(n_queries=int(n))
    known = labels >= 0
    if known.any():
        report.intent_top1 = float(np.mean(top3[known, 0] == labels[known]))
        report.intent_top3 = float(np.mean((top3[known] == labels[known, None]).any(axis=1)))
        report.unknown_rate = float(np.mean(top_p < threshold))
    labelled = (gold_tags >= 0).any(axis=1)
    if labelled.any():
        _slot_scores(report, [tag_spans(gold_tags[i]) for i in np.flatnonzero(labelled)],
                     [predicted_spans[i] for i in np.flatnonzero(labelled)])
    with_title = np.array([bool(t) for t in titles])
    if with_title.sum() > 1:
        _title_scores(report, model, embeddings[with_title], titles[with_title], batch_size)
    return report


def _slot_scores(report: IntentReport, gold: List[set], predicted: List[set]) -> None:
    def prf(g, p):
        tp = sum(len(a & b) for a, b in zip(g, p))
        n_pred, n_gold = sum(map(len, p)), sum(map(len, g))
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    report.slot_precision, report.slot_recall, report.slot_f1 = prf(gold, predicted)
    for slot in SLOT_NAMES:
        g = [{s for s in row if s[0] == slot} for row in gold]
        if any(g):
            p = [{s for s in row if s[0] == slot} for row in predicted]
            report.slot_f1_by_slot[slot] = prf(g, p)[2]


def _title_scores(report: IntentReport, model, query_embeddings: np.ndarray, titles: np.ndarray, batch_size: int):
    distinct, target = np.unique(titles.astype(str), return_inverse=True)
    title_embeddings = np.concatenate([model.embed(tf.constant(distinct[i : i + batch_size])).numpy()
                                       for i in range(0, len(distinct), batch_size)])
    scores = query_embeddings @ title_embeddings.T
    own = scores[np.arange(len(target)), target]
    ranks = 1 + (scores > own[:, None]).sum(axis=1)
    report.title_recall_at_10 = float(np.mean(ranks <= 10))
    report.title_mrr = float(np.mean(1.0 / ranks))
