"""DCNBody: the shared trunk of a DCN-V2 ranker — a cross network and/or a deep tower over the embedding vector x₀.

Cross layer l (tensorflow-recommenders' `tfrs.layers.dcn.Cross`, Wang et al. 2021, eq. 1–2):

    x_{l+1} = x₀ ⊙ (W_l x_l + b_l) + x_l,   W_l full rank (d×d) or low rank U_l V_l (d×r, r = projection_dim)

so L layers model explicit feature interactions up to degree L + 1. The deep tower is an MLP (ReLU). Structures:

- `stacked`:  x₀ → cross × L → deep → output (the deep tower reads the crossed vector);
- `parallel`: concat(cross × L (x₀), deep(x₀)) → output;
- `cross_layers: 0` gives a plain DNN, `deep_units: []` a cross-only network.
"""

from __future__ import annotations

from typing import Literal, Optional, Sequence

import tensorflow as tf

from tfrec._tfrs import tfrs
from tfrec.layers.regularizers import replica_l2

STRUCTURES = ("stacked", "parallel")
Structure = Literal["stacked", "parallel"]


class DCNBody(tf.keras.layers.Layer):
    """x₀ [batch, d] → the trunk's output [batch, d'] (see the module docstring); heads sit on top of it."""

    def __init__(
        self,
        cross_layers: int = 2,
        projection_dim: Optional[int] = None,
        deep_units: Sequence[int] = (256, 128),
        structure: Structure = "stacked",
        dropout: float = 0.0,
        l2: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if structure not in STRUCTURES:
            raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
        if cross_layers < 0:
            raise ValueError(f"cross_layers must be >= 0, got {cross_layers}")
        if cross_layers == 0 and not deep_units:
            raise ValueError("a DCN needs cross layers, deep units or both")
        if projection_dim is not None and projection_dim < 1:
            raise ValueError(f"projection_dim must be >= 1 (or null for full rank), got {projection_dim}")
        self.cross_layers = int(cross_layers)
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.deep_units = [int(u) for u in deep_units]
        self.structure = structure
        self.dropout = float(dropout)
        self.l2 = float(l2)
        regularizer = replica_l2(self.l2)  # divided by the replicas: they sum their gradients
        self.crosses = [
            tfrs.layers.dcn.Cross(projection_dim=self.projection_dim, kernel_regularizer=regularizer, name=f"cross_{i}")
            for i in range(self.cross_layers)
        ]
        deep = []
        for units in self.deep_units:
            deep.append(tf.keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer))
            if self.dropout:
                deep.append(tf.keras.layers.Dropout(self.dropout))
        self.deep = tf.keras.Sequential(deep, name="deep") if deep else None

    @tf.autograph.experimental.do_not_convert  # plain tensor code: AutoGraph would only slow traces down
    def call(self, x0: tf.Tensor, training=False) -> tf.Tensor:
        crossed = x0
        for layer in self.crosses:
            crossed = layer(x0, crossed)
        if self.deep is None:
            return crossed
        if self.structure == "stacked":
            return self.deep(crossed, training=training)
        deep = self.deep(x0, training=training)
        return tf.concat([crossed, deep], axis=1) if self.crosses else deep

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "cross_layers": self.cross_layers,
                "projection_dim": self.projection_dim,
                "deep_units": self.deep_units,
                "structure": self.structure,
                "dropout": self.dropout,
                "l2": self.l2,
            }
        )
        return config
