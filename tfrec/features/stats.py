"""Feature statistics fitted on the training split: vocabularies, numeric mean/std and bucket boundaries.

They are saved beside a training run (`features.json` plus one `vocab/<feature>.txt` per vocabulary) and the
vocabulary files become SavedModel assets, so serving uses exactly what training fitted.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Dict, List, Mapping, Optional

import numpy as np
import tensorflow as tf

from tfrec.features.spec import FeatureSpec
from tfrec.features.tokens import MISSING, OOV, bucket_tokens, numeric_values, raw_tokens

_FIT_BATCH = 262_144
STATS_FILE = "features.json"


@dataclasses.dataclass
class FeatureStats:
    """What one feature learned from the training split (fields unused by its kind stay None)."""

    vocabulary_size: Optional[int] = None
    mean: Optional[float] = None
    std: Optional[float] = None
    boundaries: Optional[List[float]] = None


class FittedFeatures:
    """A feature spec plus its fitted statistics and the directory holding its vocabulary files."""

    def __init__(self, spec: FeatureSpec, stats: Mapping[str, FeatureStats], directory: str):
        self.spec = spec
        self.stats = dict(stats)
        self.directory = os.path.abspath(directory)
        missing = [f.name for f in spec.features if f.name not in self.stats]
        if missing:
            raise ValueError(f"no fitted statistics for features {missing} in {self.directory}")

    def vocabulary_path(self, name: str) -> str:
        return os.path.join(self.directory, "vocab", f"{name}.txt")

    def vocabulary(self, name: str) -> List[str]:
        with open(self.vocabulary_path(name), encoding="utf-8") as f:
            return f.read().split("\n")[:-1]

    def save(self) -> None:
        payload = {
            "features": self.spec.to_dict(),
            "stats": {k: dataclasses.asdict(v) for k, v in self.stats.items()},
        }
        _atomic_write(os.path.join(self.directory, STATS_FILE), json.dumps(payload, indent=2))

    @classmethod
    def load(cls, directory: str) -> "FittedFeatures":
        path = os.path.join(directory, STATS_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: fit the features first (it is written by `tfrec train`)")
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        spec = FeatureSpec.from_dicts(payload["features"])
        fitted = cls(spec, {k: FeatureStats(**v) for k, v in payload["stats"].items()}, directory)
        for feature in spec.features:
            if feature.uses_vocabulary and not os.path.exists(fitted.vocabulary_path(feature.name)):
                raise FileNotFoundError(f"vocabulary file {fitted.vocabulary_path(feature.name)} is missing")
        return fitted


def fit_features(spec: FeatureSpec, columns: Mapping[str, np.ndarray], directory: str) -> FittedFeatures:
    """Fits every feature of `spec` on training `columns`, writes vocabularies under `directory` and returns them."""
    missing = [n for n in spec.names if n not in columns]
    if missing:
        raise KeyError(f"training data has no column for features {missing}; columns are {sorted(columns)}")
    os.makedirs(os.path.join(directory, "vocab"), exist_ok=True)
    stats: Dict[str, FeatureStats] = {}
    for feature in spec.features:
        column = np.asarray(columns[feature.name])
        if feature.kind == "numeric":
            stats[feature.name] = _fit_numeric(feature, column)
        elif feature.uses_vocabulary:
            vocab = _fit_vocabulary(feature, column)
            _atomic_write(os.path.join(directory, "vocab", f"{feature.name}.txt"), "".join(t + "\n" for t in vocab))
            stats[feature.name] = FeatureStats(vocabulary_size=len(vocab))
        else:
            stats[feature.name] = FeatureStats()
    fitted = FittedFeatures(spec, stats, directory)
    fitted.save()
    return fitted


def _batches(column: np.ndarray):
    for start in range(0, len(column), _FIT_BATCH):
        yield column[start : start + _FIT_BATCH]


def _to_tensor(batch: np.ndarray, feature) -> tf.Tensor:
    if feature.dtype == "string":
        return tf.constant([str(v) for v in batch], tf.string)
    return tf.constant(batch.astype(np.int64 if feature.dtype == "int" else np.float32))


def _fit_vocabulary(feature, column: np.ndarray) -> List[str]:
    """Tokens seen at least min_count times, most frequent first (ties by token), capped at max_vocab."""
    counts: collections.Counter = collections.Counter()
    for batch in _batches(column):
        flat = raw_tokens(_to_tensor(batch, feature), feature).flat_values.numpy()
        values, n = np.unique(flat, return_counts=True)
        counts.update(dict(zip(values.tolist(), n.tolist())))
    # MISSING is always in the vocabulary (absent values are common and informative); OOV is the lookup's index 0.
    vocab = [
        t.decode("utf-8", "replace")
        for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if c >= feature.min_count and b"\n" not in t and b"\r" not in t and t not in (MISSING.encode(), OOV.encode())
    ]
    if feature.max_vocab is not None:
        vocab = vocab[: max(feature.max_vocab - 1, 0)]
    return [MISSING] + vocab


def _fit_numeric(feature, column: np.ndarray) -> FeatureStats:
    values = np.concatenate([numeric_values(_to_tensor(b, feature), feature).numpy() for b in _batches(column)])
    finite = values[np.isfinite(values)]
    mean = float(finite.mean()) if finite.size else 0.0
    std = float(finite.std()) if finite.size else 1.0
    boundaries = None
    if feature.boundaries:
        boundaries = [float(b) for b in feature.boundaries]
    elif feature.buckets > 0 and finite.size:
        qs = np.quantile(finite, np.linspace(0, 1, feature.buckets + 1)[1:-1])
        boundaries = sorted(set(float(q) for q in qs))
    if boundaries is not None:
        bucket_tokens(tf.constant([0.0]), boundaries)  # fail here, not at serving, if boundaries are unusable
    return FeatureStats(mean=mean, std=std if std > 0 else 1.0, boundaries=boundaries)


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
