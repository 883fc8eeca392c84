"""Vectorised sampling helpers: drawing from many small weighted groups at once without Python loops."""

from __future__ import annotations

import numpy as np


class GroupedSampler:
    """Draws one element per request from weighted groups (items of a leaf, leaves of a user's taste row, ...).

    Elements are laid out group by group; one global cumulative sum plus `searchsorted` samples millions of
    (group -> element) draws in one call, which is what keeps the generator loop-free.
    """

    def __init__(self, group_of_element: np.ndarray, weights: np.ndarray, n_groups: int, labels=None):
        """`labels[element]` is returned by `sample` instead of the element index when given."""
        group_of_element = np.asarray(group_of_element, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        if group_of_element.shape != weights.shape:
            raise ValueError("group_of_element and weights must have the same shape")
        if np.any(weights < 0):
            raise ValueError("weights must be non-negative")
        if np.all(group_of_element[1:] >= group_of_element[:-1]):
            self.order, groups, w = None, group_of_element, weights  # already laid out group by group
        else:
            self.order = np.argsort(group_of_element, kind="stable")  # position in layout -> element index
            groups, w = group_of_element[self.order], weights[self.order]
        self._cum = np.cumsum(w)
        self.first = np.searchsorted(groups, np.arange(n_groups), side="left")
        end = np.searchsorted(groups, np.arange(n_groups), side="right")
        cum0 = np.concatenate([[0.0], self._cum])  # cum0[k] = total weight of the first k elements
        self._start = cum0[self.first]
        self.total = cum0[end] - self._start
        # last element with positive weight in each group, to absorb float round-off at the group's end
        positive_pos = np.flatnonzero(w > 0)
        k = np.searchsorted(positive_pos, end, side="left") - 1
        self._last = np.where(k >= 0, positive_pos[np.maximum(k, 0)], 0)
        self.has_mass = self.total > 0
        self.labels = None if labels is None else np.asarray(labels)
        self._row_width = 0

    @classmethod
    def from_matrix(cls, probs: np.ndarray) -> "GroupedSampler":
        """One group per row of a dense (rows x columns) weight matrix; samples return column indices."""
        rows, cols = probs.shape
        sampler = cls(np.repeat(np.arange(rows), cols), probs.reshape(-1), rows)
        sampler._row_width = cols  # elements are laid out row-major, so column = element - row * cols
        return sampler

    def sample(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One element index per entry of `groups`, drawn with probability proportional to its weight."""
        groups = np.asarray(groups, dtype=np.int64)
        if groups.size and not np.all(self.has_mass[groups]):
            raise ValueError("cannot sample from a group with no positive weight")
        target = self._start[groups] + rng.random(groups.shape) * self.total[groups]
        pos = np.searchsorted(self._cum, target, side="right")
        pos = np.clip(pos, self.first[groups], self._last[groups])
        out = pos if self.order is None else self.order[pos]
        if self._row_width:
            return out - groups * self._row_width
        return out if self.labels is None else self.labels[out]


def zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like weights 1/rank^exponent assigned to `n` entities in random order, normalised to sum to 1."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    w = w[rng.permutation(n)]
    return w / w.sum()


def nice_price(x: np.ndarray) -> np.ndarray:
    """Rounds prices to values people type in queries: 7, 15, 40, 80, 150, 600, 1200."""
    x = np.asarray(x, dtype=np.float64)
    step = np.select([x < 10, x < 50, x < 200, x < 1000], [1.0, 5.0, 10.0, 50.0], 100.0)
    return np.maximum(step, np.round(x / step) * step)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
