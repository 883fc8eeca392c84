"""FeatureEncoder: the Keras layer that turns raw feature tensors into model-ready tokens, ids and values.

The same layer runs in training and inside the exported SavedModel, so serving takes raw strings and numbers and
cannot drift from training. For each feature it returns a dict with some of:

- `tokens`: RaggedTensor[batch, None] of strings (OOV tokens replaced by '<oov>' for vocabulary features);
- `ids`: RaggedTensor[batch, None] of int64 (vocabulary index, 0 = OOV, or hash bucket in [0, hash_bins); for a
  bucketised number its bucket index, with missing as the last id);
- `value`: Tensor[batch] float32, the standardised number of a numeric feature (missing → 0, the training mean).
"""

from __future__ import annotations

from typing import Dict, Optional

import tensorflow as tf

from tfrec.features.ragged_rows import gather_rows
from tfrec.features.spec import FeatureSpec
from tfrec.features.stats import FeatureStats, FittedFeatures
from tfrec.features.tokens import OOV, bucket_ids, bucket_tokens, numeric_values, raw_tokens


DEDUPLICATED_KINDS = ("text", "path", "sequence")  # tokenised per distinct value (see FeatureEncoder.call)
SINGLE_TOKEN_KINDS = ("categorical", "numeric")  # exactly one token (id) per row: a value, or a number's bucket


class FeatureEncoder(tf.keras.layers.Layer):
    """Encodes a dict of raw feature tensors (one batch vector per feature) as described in the module docstring."""

    def __init__(self, spec: FeatureSpec, stats: Dict[str, FeatureStats], vocabulary_dir: Optional[str] = None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # preprocessing and wide sums stay float32 under mixed precision
        super().__init__(**kwargs)
        self.spec = spec
        self.stats = stats
        self.vocabulary_dir = vocabulary_dir
        self._lookups = {}
        for feature in spec.features:
            if feature.uses_vocabulary:
                if vocabulary_dir is None:
                    raise ValueError(f"feature {feature.name!r} uses a vocabulary but no vocabulary_dir was given")
                # A file path (not a list) makes the vocabulary a SavedModel asset.
                self._lookups[feature.name] = tf.keras.layers.StringLookup(
                    vocabulary=f"{vocabulary_dir}/vocab/{feature.name}.txt",
                    num_oov_indices=1,
                    oov_token=OOV,
                    name=f"{feature.name}_lookup",
                )

    @classmethod
    def from_fitted(cls, fitted: FittedFeatures, names=None, **kwargs) -> "FeatureEncoder":
        """An encoder over `names` (default: every feature) of a fitted spec."""
        spec = fitted.spec if names is None else fitted.spec.select(list(names))
        return cls(spec, {n: fitted.stats[n] for n in spec.names}, fitted.directory, **kwargs)

    def vocabulary_size(self, name: str) -> int:
        """Number of ids a vocabulary feature can produce (vocabulary + the OOV id 0)."""
        return self._lookups[name].vocabulary_size()

    def id_space(self, name: str) -> int:
        """Size of the id range of a token feature: vocabulary size, hash bins, or buckets (+ missing)."""
        feature = self.spec[name]
        if feature.kind == "numeric":
            boundaries = self.stats[name].boundaries
            if not boundaries:
                raise ValueError(f"numeric feature {name!r} has no buckets, so no ids")
            return len(boundaries) + 2
        return self.vocabulary_size(name) if feature.uses_vocabulary else feature.hash_bins

    def call(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, Dict[str, tf.Tensor]]:
        missing = [f.name for f in self.spec.features if f.name not in inputs]
        if missing:
            raise KeyError(f"missing input features {missing}; the spec needs {self.spec.names}")
        out = {}
        for feature in self.spec.features:
            values = tf.reshape(inputs[feature.name], [-1])
            encoded = {}
            if feature.kind == "numeric":
                stats = self.stats[feature.name]
                x = numeric_values(values, feature)
                if stats.boundaries:
                    encoded["tokens"] = bucket_tokens(x, stats.boundaries)
                    encoded["ids"] = bucket_ids(x, stats.boundaries)
                if feature.standardize:
                    x = (x - stats.mean) / stats.std
                encoded["value"] = tf.where(tf.math.is_nan(x), tf.zeros_like(x), x)
            else:
                # Text, paths and sequences are tokenised once per distinct value: a ranker request repeats the
                # query on all its candidate rows, and items share categories. (A categorical value is one lookup:
                # deduplicating it would cost more ops than it saves.) Identical tokens and ids by construction.
                rows = None
                if feature.kind in DEDUPLICATED_KINDS:
                    values, rows = tf.unique(values)
                tokens = raw_tokens(values, feature)
                if feature.uses_vocabulary:
                    ids = tf.ragged.map_flat_values(self._lookups[feature.name], tokens)
                    tokens = tf.ragged.map_flat_values(lambda t, i: tf.where(i > 0, t, OOV), tokens, ids)
                else:
                    ids = tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, tokens, feature.hash_bins)
                if rows is not None:
                    tokens, ids = gather_rows([tokens, ids], rows)
                encoded["tokens"], encoded["ids"] = tokens, ids
            out[feature.name] = encoded
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "spec": self.spec.to_dict(),
                "stats": {k: vars(v).copy() for k, v in self.stats.items()},
                "vocabulary_dir": self.vocabulary_dir,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        spec = FeatureSpec.from_dicts(config.pop("spec"))
        stats = {k: FeatureStats(**v) for k, v in config.pop("stats").items()}
        return cls(spec, stats, **config)
