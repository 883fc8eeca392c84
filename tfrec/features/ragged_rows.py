"""Row-wise operations on ragged tensors (concatenation, gathers, sums and means per row, conversions) built from
index arithmetic instead of TensorFlow's ragged ops.

The ragged ops insert shape assertions, conditionals and dozens of helper ops per call (`tf.concat(pieces, axis=1)`
checks every piece; a ragged `reduce_mean` traces ~80 ops). Our ragged tensors share their rows by construction
(tokens of one batch), so those checks are dead weight: they were about a fifth of the time it took to trace a
model's train step.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def row_ids(row_splits: tf.Tensor) -> tf.Tensor:
    """The row of each value (RaggedTensor.value_rowids) as one SearchSorted op: value_rowids builds a repeat out of
    a dozen ops, and tracing those for every feature of a model adds up."""
    positions = tf.range(row_splits[-1], dtype=row_splits.dtype)
    return tf.searchsorted(row_splits[1:], positions, side="right", out_type=row_splits.dtype)


def concat_rows(pieces: Sequence[tf.RaggedTensor]) -> tf.RaggedTensor:
    """Row i of the result is row i of each piece, in order: tf.concat(pieces, axis=1) for 2-D ragged tensors with
    the same number of rows (not checked: callers build their pieces from one batch). A fixed few dozen ops however
    many pieces there are."""
    if len(pieces) == 1:
        return pieces[0]
    n_pieces = len(pieces)
    piece_splits = tf.stack([tf.cast(p.row_splits, tf.int64) for p in pieces])  # [P, R + 1]
    lengths = piece_splits[:, 1:] - piece_splits[:, :-1]  # [P, R]
    splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(tf.reduce_sum(lengths, 0))], 0)
    # The pieces' values one after the other form a ragged tensor of P·R segments (piece-major); value v of segment
    # (p, r) moves to v + (where row r starts now + what pieces before p put in it - where the segment starts).
    segment_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(tf.reshape(lengths, [-1]))], 0)
    shift = splits[None, :-1] + tf.cumsum(lengths, axis=0, exclusive=True) - tf.reshape(segment_splits[:-1],
                                                                                         [n_pieces, -1])
    position = tf.range(segment_splits[-1])
    slots = position + tf.gather(tf.reshape(shift, [-1]), row_ids(segment_splits))
    values = tf.concat([p.flat_values for p in pieces], 0)
    return tf.RaggedTensor.from_row_splits(tf.gather(values, tf.math.invert_permutation(slots)), splits,
                                           validate=False)


def gather_rows(pieces: Sequence[tf.RaggedTensor], indices: tf.Tensor) -> list:
    """Row i of each result is row indices[i] of the matching piece: tf.gather(piece, indices) for 2-D ragged tensors
    that share their row splits (not checked: callers pass a feature's tokens and their ids), in a dozen ops."""
    splits = tf.cast(pieces[0].row_splits, tf.int64)
    indices = tf.cast(indices, tf.int64)
    starts = tf.gather(splits[:-1], indices)
    lengths = tf.gather(splits[1:] - splits[:-1], indices)
    new_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(lengths)], 0)
    rows = row_ids(new_splits)
    source = tf.range(new_splits[-1]) + tf.gather(starts - new_splits[:-1], rows)
    return [tf.RaggedTensor.from_row_splits(tf.gather(p.flat_values, source), new_splits, validate=False)
            for p in pieces]


def row_sum(values: tf.Tensor, row_splits: tf.Tensor) -> tf.Tensor:
    """Σ of each row's values [rows, ...] (0 for an empty row): tf.reduce_sum(ragged, axis=1) as one segment sum,
    where the ragged reduction traces about 80 ops (per call, and again in the gradient)."""
    rows = tf.shape(row_splits, out_type=row_splits.dtype)[0] - 1
    return tf.math.unsorted_segment_sum(values, row_ids(row_splits), rows)


def row_mean(values: tf.Tensor, row_splits: tf.Tensor) -> tf.Tensor:
    """The mean of each row's values [rows, ...] (0 for an empty row), as row_sum."""
    counts = tf.cast(tf.maximum(row_splits[1:] - row_splits[:-1], 1), values.dtype)
    return row_sum(values, row_splits) / tf.reshape(counts, [-1] + [1] * (len(values.shape) - 1))


def dense_rows(dense: tf.Tensor) -> tf.RaggedTensor:
    """A [rows, k] tensor as a ragged one with k values per row (RaggedTensor.from_tensor traces ~26 ops)."""
    k = tf.shape(dense, out_type=tf.int64)[1]
    splits = tf.range(tf.shape(dense, out_type=tf.int64)[0] + 1) * k
    return tf.RaggedTensor.from_row_splits(tf.reshape(dense, [-1]), splits, validate=False)


def sparse_rows(sparse: tf.SparseTensor) -> tf.RaggedTensor:
    """A 2-D SparseTensor whose indices are in row-major order (what TensorFlow's ops produce) as a ragged tensor of
    each row's values (RaggedTensor.from_sparse traces ~80 ops)."""
    rows = tf.range(sparse.dense_shape[0] + 1)
    splits = tf.searchsorted(sparse.indices[:, 0], rows, side="left", out_type=tf.int64)
    return tf.RaggedTensor.from_row_splits(sparse.values, splits, validate=False)

