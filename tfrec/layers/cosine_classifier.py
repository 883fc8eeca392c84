"""A classifier whose class weights live in the same space as the input embeddings.

logits_c = cos(x, w_c) / temperature. With the class weights initialised from embeddings of the class names, the
untrained head already is the zero-shot "nearest class name" classifier, and fine-tuning moves the prototypes from
there. This matters when classes are many and labelled queries few (WANDS: 189 classes, 480 queries): a randomly
initialised softmax layer would have to learn every class from a handful of examples.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf


class CosineClassifier(tf.keras.layers.Layer):
    """logits = normalize(x) @ normalize(W) / temperature; W is [dim, n_classes], optionally name-initialised."""

    def __init__(self, num_classes: int, temperature: float = 0.05,
                 initial_prototypes: Optional[np.ndarray] = None, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_classes = int(num_classes)
        self.temperature = float(temperature)
        self._initial = None
        if initial_prototypes is not None:
            initial = np.asarray(initial_prototypes, dtype=np.float32)
            if initial.ndim != 2 or initial.shape[0] != num_classes:
                raise ValueError(f"initial_prototypes must be [num_classes={num_classes}, dim], got {initial.shape}")
            self._initial = initial

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if self._initial is not None and self._initial.shape[1] != dim:
            raise ValueError(f"initial_prototypes have dimension {self._initial.shape[1]}, inputs have {dim}")
        init = (tf.keras.initializers.Constant(self._initial.T) if self._initial is not None
                else tf.keras.initializers.GlorotUniform())
        self.prototypes = self.add_weight("prototypes", shape=(dim, self.num_classes), initializer=init)
        super().build(input_shape)

    def call(self, inputs):
        x = tf.math.l2_normalize(inputs, axis=-1)
        w = tf.math.l2_normalize(self.prototypes, axis=0)
        return tf.matmul(x, w) / self.temperature

    def get_config(self):
        # The prototypes are weights: they are restored from checkpoints, not from the config.
        return {**super().get_config(), "num_classes": self.num_classes, "temperature": self.temperature}
