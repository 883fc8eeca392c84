"""The feature spec: declared once (in YAML), read by the input pipeline, every model and the serving signature.

A feature has a name (the same word as the example column and the signature input), a raw dtype, a kind that says
how it becomes model input, and a default used when a tf.Example or request leaves it out. Kinds:

- `categorical`: one string or int value, encoded by hashing or by a vocabulary built from the training split.
- `path`: a hierarchical string ('Clothing > Shoes > Running'), encoded as all of its prefixes (one token each).
- `text`: free text, lower-cased and split into word tokens (bag of words); with `char_ngrams: n` each word also
  gives its character n-grams ('#dr', 'dri', ... with '#' marking word edges), so model numbers, plurals and typos
  share tokens.
- `sequence`: an ordered list of ids in one string, oldest first, separated by whitespace ('i12 i7 i31', e.g. the
  shopper's recent items); the newest `max_tokens` ids are kept, in order, for sequence pooling layers.
- `numeric`: a number, optionally log1p-transformed, standardised with training mean/std, and/or bucketised at
  training quantiles (the bucket is then also a token).
- `timestamp`: seconds since the epoch (UTC), encoded as hour-of-day and day-of-week tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Literal, Optional

import numpy as np
import tensorflow as tf

KINDS = ("categorical", "path", "text", "numeric", "timestamp", "sequence")
TF_DTYPES = {"string": tf.string, "int": tf.int64, "float": tf.float32}
_DEFAULTS = {"string": "", "int": 0, "float": 0.0}


@dataclasses.dataclass
class FeatureConfig:
    """One feature of the spec; see the module docstring for what each kind means."""

    name: str
    dtype: Literal["string", "int", "float"] = "string"
    kind: Literal["categorical", "path", "text", "numeric", "timestamp", "sequence"] = "categorical"
    default: Optional[Any] = None
    encoding: Literal["hash", "vocabulary"] = "hash"
    hash_bins: int = 100_000
    min_count: int = 1
    max_vocab: Optional[int] = None
    transform: Literal["none", "log1p"] = "none"
    standardize: bool = True
    buckets: int = 0
    boundaries: Optional[List[float]] = None
    max_tokens: int = 16
    separator: str = ">"
    char_ngrams: int = 0

    def validate(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"name {self.name!r} must be a non-empty identifier (letters, digits, _)")
        if self.kind == "numeric" and self.dtype == "string":
            raise ValueError(f"feature {self.name!r}: a numeric feature needs dtype int or float, not string")
        if self.kind == "timestamp" and self.dtype != "int":
            raise ValueError(f"feature {self.name!r}: a timestamp feature needs dtype int (epoch seconds)")
        if self.kind in ("path", "text", "sequence") and self.dtype != "string":
            raise ValueError(f"feature {self.name!r}: a {self.kind} feature needs dtype string")
        if self.hash_bins < 1 or self.min_count < 1 or self.max_tokens < 1 or self.buckets < 0:
            raise ValueError(f"feature {self.name!r}: hash_bins, min_count, max_tokens must be >= 1, buckets >= 0")
        if self.char_ngrams < 0 or (self.char_ngrams and self.kind != "text"):
            raise ValueError(f"feature {self.name!r}: char_ngrams must be >= 0 and is only for text features")
        if self.boundaries is not None and list(self.boundaries) != sorted(set(self.boundaries)):
            raise ValueError(f"feature {self.name!r}: boundaries must be strictly increasing")
        if self.default is not None:
            try:
                self.tf_default
            except (TypeError, ValueError) as exc:
                raise ValueError(f"feature {self.name!r}: default {self.default!r} is not a {self.dtype}") from exc

    @property
    def tf_dtype(self) -> tf.DType:
        return TF_DTYPES[self.dtype]

    @property
    def tf_default(self):
        """The default as a Python value of the feature's dtype (used in parse specs and requests)."""
        value = _DEFAULTS[self.dtype] if self.default is None else self.default
        if self.dtype == "string":
            if not isinstance(value, str):
                raise TypeError(value)
            return value
        if isinstance(value, bool):
            raise TypeError(value)
        return int(value) if self.dtype == "int" else float(value)

    @property
    def uses_vocabulary(self) -> bool:
        return self.encoding == "vocabulary" and self.kind in ("categorical", "path", "text", "sequence")

    @property
    def is_bucketized(self) -> bool:
        return self.kind == "numeric" and (self.buckets > 0 or bool(self.boundaries))


@dataclasses.dataclass
class FeatureSpec:
    """The ordered list of features a model reads; the single source of the parse spec and serving signature."""

    features: List[FeatureConfig]

    def validate(self) -> None:
        names = [f.name for f in self.features]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"features {dup} are declared more than once")
        if not names:
            raise ValueError("the feature spec is empty")

    def __getitem__(self, name: str) -> FeatureConfig:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no feature {name!r} in the spec; features are {self.names}")

    def __contains__(self, name: str) -> bool:
        return any(f.name == name for f in self.features)

    @property
    def names(self) -> List[str]:
        return [f.name for f in self.features]

    def select(self, names: List[str]) -> "FeatureSpec":
        """The sub-spec of `names`, in that order (raises naming any unknown feature)."""
        return FeatureSpec([self[n] for n in names])

    def parse_spec(self) -> Dict[str, tf.io.FixedLenFeature]:
        """tf.Example parsing spec: every feature scalar, missing ones filled with the feature's default."""
        return {f.name: tf.io.FixedLenFeature([], f.tf_dtype, default_value=f.tf_default) for f in self.features}

    def signature(self) -> Dict[str, tf.TensorSpec]:
        """Serving signature inputs: one batch vector per raw feature, named as the feature."""
        return {f.name: tf.TensorSpec([None], f.tf_dtype, name=f.name) for f in self.features}

    def tensor_batches(self, columns: Dict[str, Any], batch_size: int = 8192):
        """Yields dicts of tensors typed as the spec says (the serving dtypes) from in-memory numpy columns."""
        missing = [n for n in self.names if n not in columns]
        if missing:
            raise KeyError(f"no column for features {missing}")
        n = len(columns[self.names[0]])
        for start in range(0, n, batch_size):
            batch = {}
            for f in self.features:
                values = np.asarray(columns[f.name][start : start + batch_size])
                batch[f.name] = tf.constant(values.astype(str) if f.dtype == "string" else values, dtype=f.tf_dtype)
            yield batch

    def to_dict(self) -> List[Dict[str, Any]]:
        return [dataclasses.asdict(f) for f in self.features]

    @classmethod
    def from_dicts(cls, items: List[Dict[str, Any]]) -> "FeatureSpec":
        spec = cls([FeatureConfig(**d) for d in items])
        for f in spec.features:
            f.validate()
        spec.validate()
        return spec
