"""The ragged_rows helpers give exactly TensorFlow's ragged ops: concat_rows is tf.concat(axis=1), gather_rows is
tf.gather, row_sum/row_mean the ragged reductions; any row lengths, empty rows and batches, in a graph."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.features.ragged_rows import concat_rows, dense_rows, gather_rows, row_mean, row_sum, sparse_rows


def _random_ragged(rng, rows, dtype):
    lengths = rng.integers(0, 4, rows)
    values = rng.integers(0, 1000, lengths.sum())
    values = values.astype(str) if dtype == tf.string else values
    return tf.RaggedTensor.from_row_lengths(tf.constant(values, dtype), lengths)


@pytest.mark.parametrize("dtype", [tf.int64, tf.string])
@pytest.mark.parametrize("rows,pieces", [(7, 3), (1, 2), (0, 2), (5, 1)])
def test_matches_tf_concat(dtype, rows, pieces):
    rng = np.random.default_rng(rows * 10 + pieces)
    parts = [_random_ragged(rng, rows, dtype) for _ in range(pieces)]
    assert concat_rows(parts).to_list() == tf.concat(parts, axis=1).to_list()


@pytest.mark.parametrize("rows,picks", [(6, [5, 0, 0, 3, 3, 3, 1]), (3, []), (1, [0, 0]), (0, [])])
def test_gather_rows_matches_tf_gather_on_every_piece(rows, picks):
    rng = np.random.default_rng(rows)
    tokens = _random_ragged(rng, rows, tf.string)
    ids = tf.RaggedTensor.from_row_splits(tf.strings.to_hash_bucket_fast(tokens.flat_values, 99), tokens.row_splits)
    indices = tf.constant(picks, tf.int32)
    got = gather_rows([tokens, ids], indices)
    assert [g.to_list() for g in got] == [tf.gather(tokens, indices).to_list(), tf.gather(ids, indices).to_list()]
    assert got[0].row_splits.dtype == tf.int64


def test_in_a_graph_with_unknown_lengths():
    fn = tf.function(lambda a, b: concat_rows([a, b]), input_signature=[
        tf.RaggedTensorSpec([None, None], tf.string, row_splits_dtype=tf.int64)] * 2)
    a = tf.ragged.constant([["x"], [], ["y", "z"]])
    b = tf.ragged.constant([[], ["p"], ["q"]])
    assert fn(a, b).to_list() == [[b"x"], [b"p"], [b"y", b"z", b"q"]]


def test_row_sum_and_mean_match_the_ragged_reductions_and_their_gradients():
    ragged = tf.ragged.constant([[[1.0, 2.0]], [], [[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], []], ragged_rank=1)
    values, splits = ragged.flat_values, ragged.row_splits
    np.testing.assert_allclose(row_sum(values, splits), tf.reduce_sum(ragged, axis=1))
    mean = tf.reduce_mean(ragged, axis=1).numpy()
    np.testing.assert_allclose(row_mean(values, splits)[::2], mean[::2])  # rows with values
    np.testing.assert_array_equal(row_mean(values, splits)[1::2], 0.0)  # empty rows: 0, not NaN
    weights = tf.constant([[1.0, -1.0]])
    with tf.GradientTape() as tape:
        tape.watch(values)
        loss = tf.reduce_sum(row_mean(values, splits) * weights)
    np.testing.assert_allclose(tape.gradient(loss, values), [[1, -1], [1 / 3, -1 / 3], [1 / 3, -1 / 3], [1 / 3, -1 / 3]])


def test_dense_and_sparse_rows_match_tensorflows_constructors():
    dense = tf.constant([["a", "b"], ["c", "d"], ["e", "f"]])
    assert dense_rows(dense).to_list() == tf.RaggedTensor.from_tensor(dense).to_list()
    assert dense_rows(tf.zeros([0, 1], tf.string)).to_list() == []
    sparse = tf.sparse.from_dense(tf.constant([[1, 2, 0], [0, 0, 0], [3, 4, 0], [0, 0, 0]]))
    assert sparse_rows(sparse).to_list() == tf.RaggedTensor.from_sparse(sparse).to_list() == [[1, 2], [], [3, 4], []]

