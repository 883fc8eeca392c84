"""TokenBiases: a learned scalar per token and output for each id feature — the first-order ("wide") terms of a
ranker: a user's and an item's offset (biased matrix factorisation), or one weight per hashed cross bucket
(user × category, as the logistic CTR's crosses).

    β_f,o(x) = mean over the row's tokens t of feature f of w_f[t, o]        [batch, features × outputs]

Tables start at zero (no offset until the data shows one). L2 acts on the rows an example looks up, scaled per
example of the global batch (as `HashedLinear`'s), so a rarely seen token's weight shrinks only when it is seen:
whole-table L2 under Adam would pull every untouched row to zero at the learning rate, step after step.
"""

from __future__ import annotations

from typing import Dict, Mapping

import tensorflow as tf

from tfrec.features.ragged_rows import row_mean
from tfrec.layers.regularizers import replicas_in_sync


@tf.autograph.experimental.do_not_convert  # plain tensor code: AutoGraph would only slow traces down
def pooled_lookup(layer: tf.keras.layers.Layer, tables: Dict[str, tf.Variable], encoded: Dict[str, Dict[str, tf.Tensor]],
                  l2: float, training) -> tf.Tensor:
    """Each table's rows for the row's `ids`, mean-pooled and concatenated [batch, Σ widths]; in training, adds
    `l2` · Σ (looked-up rows)² per example of the global batch to `layer`'s losses (sparse L2, see above)."""
    parts, penalty = [], 0.0
    for name, table in tables.items():
        ids = encoded[name]["ids"]
        rows = tf.gather(table, ids.flat_values)
        parts.append(row_mean(rows, ids.row_splits))
        if l2 > 0 and training:
            penalty += tf.reduce_sum(tf.square(rows))
    out = tf.concat(parts, axis=1)
    if l2 > 0 and training:
        layer.add_loss(l2 * penalty / tf.cast(tf.shape(out)[0] * replicas_in_sync(), out.dtype))
    return out


class TokenBiases(tf.keras.layers.Layer):
    """`ids` of each feature (a FeatureEncoder-style dict) → β [batch, features × outputs], feature-major."""

    def __init__(self, id_spaces: Mapping[str, int], outputs: int = 1, l2: float = 0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")  # additive logits: float32 under mixed precision too
        super().__init__(**kwargs)
        if outputs < 1 or l2 < 0 or any(int(v) < 1 for v in id_spaces.values()):
            raise ValueError("outputs and id spaces must be >= 1 and l2 >= 0")
        self.id_spaces = {k: int(v) for k, v in id_spaces.items()}
        self.outputs = int(outputs)
        self.l2 = float(l2)

    def build(self, input_shape=None):
        self.tables = {name: self.add_weight(f"{name}_biases", [size, self.outputs], initializer="zeros")
                       for name, size in self.id_spaces.items()}
        super().build(input_shape)

    @property
    def output_dim(self) -> int:
        return len(self.id_spaces) * self.outputs

    def call(self, encoded: Dict[str, Dict[str, tf.Tensor]], training=None) -> tf.Tensor:
        return pooled_lookup(self, self.tables, encoded, self.l2, training)

    def get_config(self):
        config = super().get_config()
        config.update({"id_spaces": self.id_spaces, "outputs": self.outputs, "l2": self.l2})
        return config
