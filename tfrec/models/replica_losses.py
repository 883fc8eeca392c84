"""Loss pieces that give the same gradients under a tf.distribute strategy as without one.

Replicas sum their gradients, so each replica's loss must be its share of the *global* batch's loss: a mean divides
by the count over all replicas, and in-batch negatives are every replica's candidates, not only the local ones.
With one replica (the default strategy) these are the plain mean and the local candidates.
"""

from __future__ import annotations

from typing import Tuple

import tensorflow as tf


def _replica_context():
    """The replica context when more than one replica runs this step, else None."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def global_sum(value: tf.Tensor) -> tf.Tensor:
    """`value` summed over the replicas in sync."""
    context = _replica_context()
    return value if context is None else context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def replica_masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """This replica's share of the mean of `values` where `mask` holds, over the global batch (0 when none does):
    Σ_local values·mask / Σ_replicas Σ mask, which the replicas' summed gradients turn into the global mean."""
    mask = tf.cast(mask, values.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(values * mask), global_sum(tf.reduce_sum(mask)))


def gather_local_first(values: tf.Tensor, ids: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(values, ids) of every replica's rows, this replica's first (so row i is still local row i), the others after;
    differentiable, so other replicas' uses of the local rows send their gradients back here."""
    context = _replica_context()
    if context is None:
        return values, ids
    sizes = context.all_gather(tf.shape(values)[:1], axis=0)
    start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    end = start + tf.shape(values)[0]
    gathered_values = context.all_gather(values, axis=0)
    gathered_ids = context.all_gather(ids, axis=0)
    values = tf.concat([values, gathered_values[:start], gathered_values[end:]], axis=0)
    return values, tf.concat([ids, gathered_ids[:start], gathered_ids[end:]], axis=0)
