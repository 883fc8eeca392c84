"""PositionTower: a shallow tower that learns the click-logit effect of the display position (position bias).

    logit(click | x, p) = f(x) + g(p)        (training)
    score(x)            = f(x)               (serving: g is skipped, i.e. every item at the same neutral position)

g(p) = MLP(embedding(min(p, max_position))) is added only while training, so f learns relevance instead of "was shown
high by the old ranker" (the shallow-tower de-biasing of Zhao et al. 2019, "Recommending what video to watch next").
Positions are 0-based; anything at or past `max_position` shares the last embedding; negative values count as 0.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


class PositionTower(tf.keras.layers.Layer):
    """Raw positions [batch] → one additive logit per output (e.g. per binary head) [batch, outputs]."""

    def __init__(self, max_position: int = 20, embedding_dim: int = 8, hidden: Sequence[int] = (8,), outputs: int = 1,
                 **kwargs):
        kwargs.setdefault("dtype", "float32")  # an additive logit: float32 under mixed precision too
        super().__init__(**kwargs)
        if max_position < 1 or embedding_dim < 1 or outputs < 1 or any(h < 1 for h in hidden):
            raise ValueError("max_position, embedding_dim, outputs and hidden sizes must be >= 1")
        self.max_position = int(max_position)
        self.embedding_dim = int(embedding_dim)
        self.hidden = [int(h) for h in hidden]
        self.outputs = int(outputs)
        self.embedding = tf.keras.layers.Embedding(self.max_position + 1, self.embedding_dim, name="position_embedding")
        layers = [tf.keras.layers.Dense(h, activation="relu") for h in self.hidden]
        # Zero-initialised output: the tower starts neutral and only learns what the data shows about position.
        layers.append(tf.keras.layers.Dense(self.outputs, kernel_initializer="zeros", name="position_logit"))
        self.mlp = tf.keras.Sequential(layers, name="mlp")

    def build(self, input_shape=None):
        # Built eagerly (not on first call): serving never calls the tower, yet its weights must exist to be saved,
        # restored and copied like the rest of the model.
        self.embedding.build((None,))
        self.mlp.build((None, self.embedding_dim))
        super().build(input_shape)

    def ids(self, positions: tf.Tensor) -> tf.Tensor:
        """0-based positions clipped to the embedding range."""
        positions = tf.cast(tf.reshape(positions, [-1]), tf.int64)
        return tf.clip_by_value(positions, 0, self.max_position)

    @tf.autograph.experimental.do_not_convert  # plain tensor code: AutoGraph would only slow traces down
    def call(self, positions: tf.Tensor, training=None) -> tf.Tensor:
        # Under mixed_float16 the sublayers compute in float16; the logit it adds to stays float32.
        return tf.cast(self.mlp(self.embedding(self.ids(positions))), self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"max_position": self.max_position, "embedding_dim": self.embedding_dim, "hidden": self.hidden,
             "outputs": self.outputs}
        )
        return config
