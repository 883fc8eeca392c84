"""Train/validation/test splits: by time (the default for logged traffic) or at random (for published protocols).

Time splits keep whole requests together (a request's rows all fall in the split of its first timestamp), so a
model is never evaluated on the other half of a list it trained on.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional, Tuple

import numpy as np


@dataclasses.dataclass
class SplitConfig:
    """How examples are split: `time` (oldest for training, newest for test) or `random` with a seed."""

    kind: Literal["time", "random"] = "time"
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42

    def validate(self) -> None:
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError("validation_fraction + test_fraction must leave some data for training")


Split = Tuple[np.ndarray, np.ndarray, np.ndarray]


def split_indices(
    config: SplitConfig, timestamps: np.ndarray, groups: Optional[np.ndarray] = None
) -> Split:
    """Row indices of (train, validation, test) for `config`; `groups` (e.g. request ids) are never cut."""
    n = len(timestamps)
    if n == 0:
        raise ValueError("cannot split an empty set of examples")
    if config.kind == "random":
        return random_split(n, config.validation_fraction, config.test_fraction, config.seed, groups)
    return time_split(timestamps, config.validation_fraction, config.test_fraction, groups)


def _group_ids(n: int, groups: Optional[np.ndarray]) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    groups = np.asarray(groups)
    if groups.dtype == object:
        # Rows without a group id (empty string) are groups of their own.
        groups = np.where(groups == "", np.char.add("\x00row", np.arange(n).astype(str)).astype(object), groups)
    return np.unique(groups, return_inverse=True)[1].reshape(-1)


def time_split(timestamps: np.ndarray, validation_fraction: float, test_fraction: float, groups=None) -> Split:
    """Groups ordered by their first timestamp; the newest fractions of rows go to validation and test."""
    timestamps = np.asarray(timestamps, dtype=np.int64)
    gid = _group_ids(len(timestamps), groups)
    n_groups = gid.max() + 1
    first = np.full(n_groups, np.iinfo(np.int64).max)
    np.minimum.at(first, gid, timestamps)
    # Order groups by time (ties by group id, deterministic) and cut at row-count quantiles.
    order = np.lexsort((np.arange(n_groups), first))
    rank = np.empty(n_groups, dtype=np.int64)
    rank[order] = np.arange(n_groups)
    sizes = np.bincount(gid, minlength=n_groups)[order]
    cumulative = np.cumsum(sizes) / len(timestamps)
    train_end = np.searchsorted(cumulative, 1.0 - validation_fraction - test_fraction, side="right")
    val_end = np.searchsorted(cumulative, 1.0 - test_fraction, side="right")
    row_rank = rank[gid]
    return (
        np.flatnonzero(row_rank < train_end),
        np.flatnonzero((row_rank >= train_end) & (row_rank < val_end)),
        np.flatnonzero(row_rank >= val_end),
    )


def random_split(n: int, validation_fraction: float, test_fraction: float, seed: int, groups=None) -> Split:
    """A seeded random split of rows (or of groups, when given) in the given fractions."""
    gid = _group_ids(n, groups)
    n_groups = gid.max() + 1
    perm = np.random.default_rng(seed).permutation(n_groups)
    n_test = int(round(n_groups * test_fraction))
    n_val = int(round(n_groups * validation_fraction))
    bucket = np.zeros(n_groups, dtype=np.int8)
    bucket[perm[:n_test]] = 2
    bucket[perm[n_test : n_test + n_val]] = 1
    row_bucket = bucket[gid]
    return tuple(np.flatnonzero(row_bucket == b) for b in (0, 1, 2))
