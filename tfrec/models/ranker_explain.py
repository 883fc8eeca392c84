"""Why an item got its score: integrated gradients of a ranker head's serving logit over the feature-group embeddings.

With x₀ the concatenated embeddings and first-order biases (`DCNRanker.embed`), baseline x̄ = 0 (every group's embedding zeroed; for a
standardised number, its training mean) and f the head's position-free logit,

    IG_i(x₀) = x₀ᵢ · ∫₀¹ ∂f(α·x₀)/∂xᵢ dα ≈ x₀ᵢ · Σ_k w_k ∂f(α_k·x₀)/∂xᵢ    (α_k = k/m, trapezoid weights w_k, m = steps)

and a group's contribution is the sum of IG_i over its slice of x₀. Completeness: the contributions of all groups sum
to f(x₀) − f(0), up to the quadrature error (`completeness_gap`), so they split exactly the part of the logit that
the features explain, the rest being the baseline logit every item shares.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class Explanation:
    """Contributions [items, groups] of each feature group to `head`'s logit, with the logits they explain."""

    head: str
    groups: List[str]
    contributions: np.ndarray
    logit: np.ndarray
    baseline_logit: np.ndarray

    @property
    def completeness_gap(self) -> np.ndarray:
        """Σ contributions − (logit − baseline logit) per item: the integration error, ~0."""
        return self.contributions.sum(axis=1) - (self.logit - self.baseline_logit)

    def top(self, item: int, k: int = 5) -> List[Tuple[str, float]]:
        """The `k` groups with the largest absolute contribution to item `item`'s logit."""
        order = np.argsort(-np.abs(self.contributions[item]))[:k]
        return [(self.groups[i], float(self.contributions[item, i])) for i in order]

    def to_dict(self) -> Dict:
        return {
            "head": self.head,
            "items": [
                {"logit": float(l), "baseline_logit": float(b), "contributions": dict(zip(self.groups, map(float, c)))}
                for l, b, c in zip(self.logit, self.baseline_logit, self.contributions)
            ],
        }


def group_slices(model) -> Dict[str, List[Tuple[int, int]]]:
    """Where each feature group sits in x₀: group name → [(start, stop)] column ranges, in the order
    `FeatureEmbeddings` concatenates its parts."""
    emb = model.embeddings
    columns: Dict[str, List[Tuple[int, int]]] = {}
    start = 0
    for name in emb.tables:  # the order FeatureEmbeddings concatenates: token features, then numbers
        columns.setdefault(name, []).append((start, start + emb.embedding_dim))
        start += emb.embedding_dim
    for name in emb.numeric_features:
        columns.setdefault(name, []).append((start, start + 1))
        start += 1
    if start != emb.output_dim:
        raise AssertionError(f"group slices cover {start} columns of x0, the embeddings give {emb.output_dim}")
    if model.interactions is not None:  # then each pair member's factors (a product: half credited to each side)
        width = model.interactions.outputs * model.interactions.dim
        for name in model.interactions.features:
            columns.setdefault(name, []).append((start, start + width))
            start += width
    if model.biases is not None:  # then each bias feature's and cross's per-head terms (linear: credited exactly)
        for name in model.biases.id_spaces:
            columns.setdefault(name, []).append((start, start + model.biases.outputs))
            start += model.biases.outputs
    groups: Dict[str, List[Tuple[int, int]]] = {}
    grouped = set()
    for group, members in model.config.explain_groups.items():
        unknown = sorted(set(members) - set(columns))
        if unknown:
            raise ValueError(f"explain_groups.{group} names {unknown}, which are not ranker inputs {sorted(columns)}")
        groups[group] = [s for m in members for s in columns[m]]
        grouped.update(members)
    for name, slices in columns.items():
        if name not in grouped:
            groups[name] = slices
    return groups


def explain_ranker(model, features: Dict[str, tf.Tensor], head: str = "click", steps: int = 32) -> Explanation:
    """Integrated gradients of `head`'s serving logit (module docstring) for each row of `features`."""
    if head not in model.heads:
        raise ValueError(f"no head {head!r}; the ranker has {sorted(model.heads)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x0 = model.embed(features)
    n, d = int(x0.shape[0]), int(x0.shape[1])
    alphas = tf.linspace(0.0, 1.0, steps + 1)
    weights = np.full(steps + 1, 1.0 / steps, np.float32)
    weights[[0, -1]] /= 2.0  # trapezoid rule
    path = tf.reshape(alphas[:, None, None] * x0[None], [-1, d])  # [(steps + 1) * n, d], alpha-major
    with tf.GradientTape() as tape:
        tape.watch(path)
        logits = model.head_logits(path)[head]
    grads = tf.reshape(tape.gradient(logits, path), [steps + 1, n, d])
    average = tf.tensordot(tf.constant(weights), grads, axes=1)  # [n, d]
    attribution = (x0 * average).numpy()
    slices = group_slices(model)
    contributions = np.stack(
        [sum(attribution[:, a:b].sum(axis=1) for a, b in spans) for spans in slices.values()], axis=1
    )
    path_logits = tf.reshape(logits, [steps + 1, n]).numpy()
    return Explanation(head, list(slices), contributions, path_logits[-1], path_logits[0])
