"""Weight penalties that stay correct under tf.distribute strategies.

Replicas sum their gradients, so a penalty every replica adds in full counts N times with N replicas. Keras's own
`compile(loss=...)` path divides regularisation losses by N (`tf.nn.scale_regularization_loss`); tfrs' `train_step`,
which every tfrec model uses, adds `model.losses` unscaled. This L2 therefore divides itself by the replicas in sync.
"""

from __future__ import annotations

import tensorflow as tf


def replicas_in_sync() -> int:
    """How many replicas sum their gradients in the current (replica) context; 1 outside a strategy."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


@tf.keras.utils.register_keras_serializable(package="tfrec")
class ReplicaL2(tf.keras.regularizers.Regularizer):
    """l2 · Σ w² / replicas: the same total penalty per step whatever the number of replicas."""

    def __init__(self, l2: float = 0.01):
        self.l2 = float(l2)

    def __call__(self, x):
        return self.l2 * tf.reduce_sum(tf.square(x)) / replicas_in_sync()

    def get_config(self):
        return {"l2": self.l2}


def replica_l2(l2: float):
    """The regularizer for an `l2` setting: ReplicaL2, or None when `l2` is 0."""
    return ReplicaL2(l2) if l2 else None
