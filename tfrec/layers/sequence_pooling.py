"""SequencePooling: a shopper's recent items (a variable-length, newest-last sequence of embeddings) → one vector.

Modes, all masked so padding never leaks into the result:

- `mean`: the average of the item embeddings (order-blind; the baseline).
- `attention`: additive attention with recency: e_t' = e_t + p(r_t), a_t = softmax_t(v·tanh(W e_t' + b)),
  out = Σ a_t e_t', where r_t = 0 for the newest item. Learns which items (and how recent) matter.
- `transformer`: one self-attention block (multi-head attention + feed-forward, residuals and layer norm, as in
  SASRec) over e_t', then the output at the newest position, which has attended to the whole sequence.
"""

from __future__ import annotations

import tensorflow as tf

MODES = ("mean", "attention", "transformer")


class SequencePooling(tf.keras.layers.Layer):
    """Pools a RaggedTensor [batch, None, dim] of embeddings (oldest first) into [batch, dim]."""

    def __init__(self, mode: str = "attention", max_length: int = 16, num_heads: int = 2, dropout: float = 0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"sequence pooling mode must be one of {MODES}, got {mode!r}")
        if max_length < 1 or num_heads < 1:
            raise ValueError("max_length and num_heads must be >= 1")
        self.mode = mode
        self.max_length = int(max_length)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if self.mode != "mean":
            self.recency = self.add_weight("recency", shape=(self.max_length, dim), initializer=tf.keras.initializers.RandomNormal(stddev=0.02))
        if self.mode == "attention":
            self.score_hidden = tf.keras.layers.Dense(dim, activation="tanh", name="score_hidden")
            self.score = tf.keras.layers.Dense(1, use_bias=False, name="score")
        elif self.mode == "transformer":
            self.attention = tf.keras.layers.MultiHeadAttention(
                self.num_heads, key_dim=max(1, dim // self.num_heads), dropout=self.dropout, name="self_attention"
            )
            self.norm1 = tf.keras.layers.LayerNormalization(name="norm1")
            self.feed_forward = tf.keras.Sequential(
                [tf.keras.layers.Dense(2 * dim, activation="relu"), tf.keras.layers.Dense(dim)], name="feed_forward"
            )
            self.norm2 = tf.keras.layers.LayerNormalization(name="norm2")
        super().build(input_shape)

    def call(self, sequence: tf.RaggedTensor, training=False) -> tf.Tensor:
        sequence = sequence[:, -self.max_length:]
        lengths = tf.cast(sequence.row_lengths(), tf.int32)
        x = sequence.to_tensor()  # [batch, T, dim], zero padding after each row's items
        steps = tf.shape(x)[1]
        mask = tf.sequence_mask(lengths, steps)  # [batch, T]
        if self.mode == "mean":
            weights = tf.cast(mask, x.dtype)
            return tf.reduce_sum(x * weights[..., None], 1) / tf.maximum(tf.reduce_sum(weights, 1, keepdims=True), 1.0)
        # Recency r_t = length - 1 - t: the newest item is position 0 whatever the row's length.
        recency = tf.clip_by_value(lengths[:, None] - 1 - tf.range(steps)[None, :], 0, self.max_length - 1)
        x = x + tf.gather(self.recency, recency) * tf.cast(mask, x.dtype)[..., None]
        if self.mode == "attention":
            logits = tf.squeeze(self.score(self.score_hidden(x)), -1)
            logits = tf.where(mask, logits, tf.fill(tf.shape(logits), tf.constant(-1e9, logits.dtype)))
            weights = tf.nn.softmax(logits, axis=1) * tf.cast(mask, x.dtype)
            return tf.reduce_sum(x * weights[..., None], 1)
        pair_mask = tf.logical_and(mask[:, :, None], mask[:, None, :])
        h = self.norm1(x + self.attention(x, x, attention_mask=pair_mask, training=training))
        h = self.norm2(h + self.feed_forward(h, training=training))
        newest = tf.maximum(lengths - 1, 0)
        return tf.gather(h, newest, batch_dims=1)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "max_length": self.max_length, "num_heads": self.num_heads, "dropout": self.dropout})
        return config
