"""TFRecord shards: exact round trip, atomic replacement, and the tf.data pipelines."""

import os

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.data.tfrecord import list_shards, memory_dataset, read_columns, tfrecord_dataset, write_tfrecords

SPEC = {
    "s": tf.io.FixedLenFeature([], tf.string, ""),
    "i": tf.io.FixedLenFeature([], tf.int64, 0),
    "f": tf.io.FixedLenFeature([], tf.float32, 0.0),
}


def _columns(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "s": np.array([f"é-{i}-東" if i % 7 else "" for i in range(n)], dtype=object),
        "i": rng.integers(-(2**62), 2**62, n),
        "f": rng.normal(size=n).astype(np.float32).astype(np.float64),
    }


def test_round_trip_is_exact_and_ordered(tmp_path):
    cols = _columns()
    paths = write_tfrecords(cols, str(tmp_path), "train", num_shards=3)
    assert [os.path.basename(p) for p in paths] == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    back = read_columns(list_shards(str(tmp_path), "train"), SPEC, batch_size=128)
    assert back["s"].tolist() == cols["s"].tolist()
    assert np.array_equal(back["i"], cols["i"])
    assert np.array_equal(back["f"], cols["f"].astype(np.float32))


def test_parallel_writer_gives_identical_files(tmp_path):
    cols = _columns(500)
    a = write_tfrecords(cols, str(tmp_path / "a"), "x", num_shards=2, processes=1)
    b = write_tfrecords(cols, str(tmp_path / "b"), "x", num_shards=2, processes=2)
    for pa, pb in zip(a, b):
        assert open(pa, "rb").read() == open(pb, "rb").read()


def test_rewrite_replaces_old_shards_and_leaves_no_temporaries(tmp_path):
    write_tfrecords(_columns(100), str(tmp_path), "train", num_shards=4)
    write_tfrecords(_columns(100, seed=1), str(tmp_path), "train", num_shards=2)
    assert sorted(os.listdir(tmp_path)) == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]


def test_bad_columns_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="one common length"):
        write_tfrecords({"a": np.zeros(3), "b": np.zeros(4)}, str(tmp_path), "x")
    with pytest.raises(FileNotFoundError, match="no TFRecord shards match"):
        list_shards(str(tmp_path), "missing")


def test_pipeline_shuffles_batches_and_splits_labels(tmp_path):
    cols = _columns(1000)
    paths = write_tfrecords(cols, str(tmp_path), "train", num_shards=4)
    ds = tfrecord_dataset(paths, SPEC, batch_size=100, label_keys=["i"], shuffle_buffer=1000, seed=3, cache=True)
    epoch1 = [b for b in ds]
    epoch2 = [b for b in ds]
    assert len(epoch1) == 10
    features, labels = epoch1[0]
    assert set(features) == {"s", "f"} and set(labels) == {"i"}
    seen1 = np.concatenate([l["i"].numpy() for _, l in epoch1])
    seen2 = np.concatenate([l["i"].numpy() for _, l in epoch2])
    assert sorted(seen1.tolist()) == sorted(cols["i"].tolist())  # every row exactly once per epoch
    assert not np.array_equal(seen1, cols["i"]) and not np.array_equal(seen1, seen2)  # shuffled, reshuffled


def test_memory_pipeline_matches_tfrecord_pipeline(tmp_path):
    cols = _columns(300)
    paths = write_tfrecords(cols, str(tmp_path), "t", num_shards=1)
    from_files = list(tfrecord_dataset(paths, SPEC, batch_size=300))[0]
    in_memory = list(memory_dataset(cols, batch_size=300))[0]
    for k in SPEC:
        assert np.array_equal(from_files[k].numpy(), in_memory[k].numpy())
