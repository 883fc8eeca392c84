"""The training step every tfrec model shares: tfrs' step (`compute_loss` + `model.losses`) plus mixed-precision
loss scaling.

Under the `mixed_float16` policy Keras's `compile` wraps the optimizer in a LossScaleOptimizer, but only Keras's own
`train_step` applies the loss scale; a custom step must scale the loss inside the tape and unscale the gradients
(TensorFlow's mixed-precision guide, "training the model with a custom training loop"). tfrs' `train_step` does
neither, so small float16 gradients would underflow to zero. Losses are already correct per replica: each model's
`compute_loss` averages over the global batch and weight penalties divide themselves by the replicas
(`tfrec.layers.regularizers`).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfrec._tfrs import tfrs


def scale_loss(optimizer, loss: tf.Tensor) -> tf.Tensor:
    """`loss` times the optimizer's loss scale (call inside the tape); `loss` itself without loss scaling."""
    return optimizer.get_scaled_loss(loss) if hasattr(optimizer, "get_scaled_loss") else loss


def unscale_gradients(optimizer, gradients: Sequence) -> list:
    """Gradients of a `scale_loss`-scaled loss divided by the loss scale again."""
    if hasattr(optimizer, "get_unscaled_gradients"):
        return optimizer.get_unscaled_gradients(list(gradients))
    return list(gradients)


def regularization_loss(model: tf.keras.Model) -> tf.Tensor:
    """The sum of `model.losses` (weight penalties, float32 whatever the compute dtype)."""
    return tf.add_n([tf.constant(0.0)] + [tf.cast(tf.reduce_sum(loss), tf.float32) for loss in model.losses])


class RecommenderModel(tfrs.models.Model):
    """tfrs' Model with a train step that applies the loss scale of a mixed-precision optimizer."""

    def train_step(self, inputs):
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization = regularization_loss(self)
            total_loss = loss + regularization
            scaled = scale_loss(self.optimizer, total_loss)
        variables = self.trainable_variables
        gradients = unscale_gradients(self.optimizer, tape.gradient(scaled, variables))
        self.optimizer.apply_gradients(zip(gradients, variables))
        metrics = {metric.name: metric.result() for metric in self.metrics}
        metrics.update(loss=loss, regularization_loss=regularization, total_loss=total_loss)
        return metrics
