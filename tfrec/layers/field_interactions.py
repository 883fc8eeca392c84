"""FieldInteractions: factorisation-machine terms ⟨v_a(x_a), v_b(x_b)⟩ for declared feature pairs (user × category,
user × brand, user × item, ...), one per pair and output (head).

    v_f(x) = mean over the row's tokens t of feature f of V_f[t]        [batch, outputs × dim]
    φ_(a,b),o(x) = ⟨v_a,o(x), v_b,o(x)⟩                                [batch, pairs × outputs]

Why: a user's taste for an item attribute is a product of a user factor and an attribute factor. A DCN trunk can
represent that product (a cross layer is bilinear in x₀) but learns it slowly through a shared, L2-shrunk stack; a
hashed cross memorises it only for pairs seen often. Low-rank factors share strength: a user's department factor
informs every leaf and item of that department, and a user seen a few times still gets a taste vector. Only the
rows a batch looks up are penalised (as `TokenBiases`), so rare tokens are not pulled to zero between sightings.

Calling the layer returns the pooled factors (a model may place them in its input vector, so integrated gradients
over a straight path credit each product half to each side, exactly); `products` turns them into φ.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import tensorflow as tf

from tfrec.layers.token_biases import pooled_lookup


class FieldInteractions(tf.keras.layers.Layer):
    """Pooled factor vectors of each feature in `pairs` and their per-output dot products (module docstring)."""

    def __init__(self, id_spaces: Mapping[str, int], pairs: Sequence[Sequence[str]], dim: int = 8, outputs: int = 1,
                 l2: float = 0.0, init_scale: float = 0.01, **kwargs):
        kwargs.setdefault("dtype", "float32")  # additive logits: float32 under mixed precision too
        super().__init__(**kwargs)
        self.pairs = [list(p) for p in pairs]
        if not self.pairs or any(len(p) != 2 or p[0] == p[1] for p in self.pairs):
            raise ValueError(f"pairs must be a non-empty list of two different features, got {self.pairs}")
        members = list(dict.fromkeys(n for p in self.pairs for n in p))
        missing = sorted(set(members) - set(id_spaces))
        if missing:
            raise ValueError(f"pairs name {missing}, which have no id space here ({sorted(id_spaces)})")
        if dim < 1 or outputs < 1 or l2 < 0 or init_scale <= 0:
            raise ValueError("dim and outputs must be >= 1, l2 >= 0 and init_scale > 0")
        self.id_spaces = {n: int(id_spaces[n]) for n in members}
        self.dim = int(dim)
        self.outputs = int(outputs)
        self.l2 = float(l2)
        self.init_scale = float(init_scale)

    def build(self, input_shape=None):
        # A fresh initializer per table: one unseeded instance would repeat its values in every table.
        self.tables = {n: self.add_weight(f"{n}_factors", [size, self.outputs * self.dim],
                                          initializer=tf.keras.initializers.RandomNormal(stddev=self.init_scale))
                       for n, size in self.id_spaces.items()}
        super().build(input_shape)

    @property
    def features(self) -> List[str]:
        """The features whose factors the layer's output concatenates, in order."""
        return list(self.id_spaces)

    @property
    def vector_dim(self) -> int:
        return len(self.id_spaces) * self.outputs * self.dim

    @property
    def output_dim(self) -> int:
        return len(self.pairs) * self.outputs

    def call(self, encoded: Dict[str, Dict[str, tf.Tensor]], training=None) -> tf.Tensor:
        """[batch, features × outputs × dim]: each feature's mean factor over its tokens (`products` → φ)."""
        return pooled_lookup(self, self.tables, encoded, self.l2, training)

    @tf.autograph.experimental.do_not_convert
    def products(self, vectors: tf.Tensor) -> tf.Tensor:
        """[batch, pairs × outputs] (pair-major) from `vectors`' output."""
        index = {n: i for i, n in enumerate(self.id_spaces)}
        shaped = tf.reshape(vectors, [-1, len(self.id_spaces), self.outputs, self.dim])
        dots = [tf.reduce_sum(shaped[:, index[a]] * shaped[:, index[b]], axis=-1) for a, b in self.pairs]
        return tf.concat(dots, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update({"id_spaces": self.id_spaces, "pairs": self.pairs, "dim": self.dim, "outputs": self.outputs,
                       "l2": self.l2, "init_scale": self.init_scale})
        return config
