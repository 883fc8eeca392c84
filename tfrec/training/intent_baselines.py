"""Non-neural baselines for query intent (category) classification, to judge a learned query encoder against.

`fit_tfidf_intent` is TF-IDF over word 1-2 grams and character 2-5 grams (within word boundaries, so typos and
plurals still share features) followed by one-vs-rest logistic regression: the usual strong baseline for short
shopper queries. `majority_top_k` is the floor (always predict the most frequent training classes).
"""

from __future__ import annotations

import collections
import warnings
from typing import Dict, Sequence

import numpy as np

__all__ = ["TfidfIntentClassifier", "fit_tfidf_intent", "intent_accuracy", "majority_top_k"]


class TfidfIntentClassifier:
    """A fitted TF-IDF + logistic regression intent model; `classes` are the training labels, sorted."""

    def __init__(self, vectorizer, model):
        self.vectorizer = vectorizer
        self.model = model
        self.classes = np.asarray(model.classes_, dtype=object)

    def predict_proba(self, queries: Sequence[str]) -> np.ndarray:
        """(n_queries, n_classes) class probabilities, columns in `classes` order."""
        return self.model.predict_proba(self.vectorizer.transform(_texts(queries)))

    def predict_top_k(self, queries: Sequence[str], k: int = 3) -> np.ndarray:
        """(n_queries, min(k, n_classes)) object array of labels, most probable first (ties by class order)."""
        proba = self.predict_proba(queries)
        k = max(1, min(int(k), proba.shape[1]))
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return self.classes[order]

    def predict(self, queries: Sequence[str]) -> np.ndarray:
        """The most probable label of each query."""
        return self.predict_top_k(queries, 1)[:, 0]

    def __repr__(self) -> str:
        n_features = len(self.vectorizer.get_feature_names_out())
        return f"TfidfIntentClassifier(classes={len(self.classes)}, features={n_features})"


def fit_tfidf_intent(train_queries: Sequence[str], train_labels: Sequence[str], C: float = 10.0,
                     seed: int = 0) -> TfidfIntentClassifier:
    """Fits TF-IDF (word 1-2 grams + char_wb 2-5 grams, sublinear tf) and one-vs-rest logistic regression
    (liblinear, inverse regularisation `C`; probabilities normalised over classes). Deterministic for a seed.

    One-vs-rest rather than multinomial: with a few hundred classes and tens of thousands of n-gram features the
    multinomial lbfgs fit is about 10x slower (its optimiser state is classes x features) for the same accuracy.
    Needs at least two distinct labels.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import FeatureUnion

    texts, labels = _texts(train_queries), np.asarray(list(train_labels), dtype=object)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} queries but {len(labels)} labels")
    if len(set(labels.tolist())) < 2:
        raise ValueError("intent classification needs at least two distinct training labels")
    vectorizer = FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
    ])
    features = vectorizer.fit_transform(texts)
    model = OneVsRestClassifier(LogisticRegression(C=C, solver="liblinear", random_state=seed))
    with warnings.catch_warnings():  # "more classes than half the samples" is normal for intent data
        warnings.simplefilter("ignore", UserWarning)
        model.fit(features, labels.astype(str))
    return TfidfIntentClassifier(vectorizer, model)


def majority_top_k(train_labels: Sequence[str], n_queries: int, k: int = 3) -> np.ndarray:
    """(n_queries, k) labels: the k most frequent training labels (ties by label) for every query."""
    counts = collections.Counter(train_labels)
    top = sorted(counts, key=lambda label: (-counts[label], label))[:k]
    return np.tile(np.asarray(top, dtype=object), (int(n_queries), 1))


def intent_accuracy(top_k_labels, true_labels: Sequence[str], ks: Sequence[int] = (1, 3)) -> Dict[str, float]:
    """{"top1": ..., "top3": ...}: share of queries whose true label is among the first k predictions.

    `top_k_labels` is (n_queries, K), best first; a k above K counts all K predictions.
    """
    predicted = np.asarray(top_k_labels, dtype=object)
    if predicted.ndim == 1:
        predicted = predicted[:, None]
    truth = np.asarray(list(true_labels), dtype=object)
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions but {len(truth)} true labels")
    if not len(truth):
        raise ValueError("no queries to score")
    hits = predicted == truth[:, None]
    return {f"top{k}": float(hits[:, :k].any(axis=1).mean()) for k in ks}


def _texts(queries: Sequence[str]) -> list:
    if isinstance(queries, str):
        raise TypeError("pass a sequence of queries, not a single string")
    return [str(q) for q in queries]
