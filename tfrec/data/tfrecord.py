"""Sharded TFRecord files of tf.train.Example rows, and the tf.data pipelines that read them (or in-memory columns).

Writing: columns (numpy arrays of str / int / float, or object arrays of lists for variable-length features) become
`<prefix>-00000-of-00004.tfrecord` shards, written to temporary names and renamed when complete, so a reader never
sees half a shard. Reading: parallel interleave over shards, optional cache, shuffle, batch, vectorised parsing after
batching (much faster than per-record parsing), prefetch.
"""

from __future__ import annotations

import glob
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

Columns = Dict[str, np.ndarray]


def shard_paths(directory: str, prefix: str, num_shards: int) -> List[str]:
    return [os.path.join(directory, f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord") for i in range(num_shards)]


def _feature(value) -> tf.train.Feature:
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(value)
    else:
        values = [value]
    if not values:
        return tf.train.Feature()
    first = values[0]
    if isinstance(first, (str, bytes)):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") if isinstance(v, str) else v for v in values]))
    if isinstance(first, (bool, int, np.integer)):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def _column_kind(name: str, column: np.ndarray) -> str:
    if column.dtype.kind in "iub":
        return "int"
    if column.dtype.kind == "f":
        return "float"
    if column.dtype.kind in "OUS":
        return "object"
    raise TypeError(f"column {name!r} has dtype {column.dtype}, which cannot be written to a tf.train.Example")


def serialize_rows(columns: Mapping[str, np.ndarray], start: int = 0, stop: Optional[int] = None) -> Iterable[bytes]:
    """Serialized tf.train.Example protos of rows [start, stop) of `columns`."""
    names = list(columns)
    kinds = [_column_kind(n, np.asarray(columns[n])) for n in names]
    stop = len(next(iter(columns.values()))) if stop is None else stop
    for i in range(start, stop):
        feats = {}
        for name, kind in zip(names, kinds):
            v = columns[name][i]
            if kind == "int":  # a 2-D column gives each row a fixed-length list
                feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=np.ravel(v).tolist()))
            elif kind == "float":
                feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(v).tolist()))
            else:
                feats[name] = _feature(v)
        yield tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def _write_shard(args) -> str:
    path, columns, start, stop = args
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.TFRecordWriter(tmp) as writer:
        for record in serialize_rows(columns, start, stop):
            writer.write(record)
    os.replace(tmp, path)
    return path


def write_tfrecords(
    columns: Mapping[str, np.ndarray], directory: str, prefix: str, num_shards: int = 4, processes: int = 1
) -> List[str]:
    """Writes `columns` as `num_shards` contiguous shards under `directory` and returns their paths.

    Existing shards of the same prefix are replaced only after every new shard is complete.
    """
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns must have one common length, got { {k: len(v) for k, v in columns.items()} }")
    n = lengths.pop()
    num_shards = max(1, min(num_shards, n)) if n else 1
    os.makedirs(directory, exist_ok=True)
    paths = shard_paths(directory, prefix, num_shards)
    bounds = np.linspace(0, n, num_shards + 1).astype(int)
    staged = [p + ".new" for p in paths]
    jobs = [(staged[i], columns, bounds[i], bounds[i + 1]) for i in range(num_shards)]
    if processes > 1 and num_shards > 1:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(_write_shard, [(p, {k: v[a:b] for k, v in c.items()}, 0, b - a) for p, c, a, b in jobs]))
    else:
        for job in jobs:
            _write_shard(job)
    for old in glob.glob(os.path.join(directory, f"{prefix}-*-of-*.tfrecord")):
        if old not in paths:
            os.remove(old)
    for tmp, final in zip(staged, paths):
        os.replace(tmp, final)
    return paths


def list_shards(directory: str, prefix: str) -> List[str]:
    """The complete shards of `prefix` in `directory`; an error naming the pattern if there are none."""
    paths = sorted(glob.glob(os.path.join(directory, f"{prefix}-*-of-*.tfrecord")))
    if not paths:
        raise FileNotFoundError(f"no TFRecord shards match {os.path.join(directory, prefix)}-*-of-*.tfrecord")
    return paths


def _finish(ds: tf.data.Dataset, batch_size, shuffle_buffer, seed, repeat, drop_remainder, parse) -> tf.data.Dataset:
    # Order may only be traded for speed when the caller shuffles without a seed anyway.
    deterministic = not (shuffle_buffer and seed is None)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if parse is not None:
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return ds.prefetch(tf.data.AUTOTUNE)


def _split_labels(label_keys: Sequence[str]):
    def split(example):
        if not label_keys:
            return example
        missing = [k for k in label_keys if k not in example]
        if missing:
            raise KeyError(f"label columns {missing} are not in the examples")
        labels = {k: example[k] for k in label_keys}
        features = {k: v for k, v in example.items() if k not in labels}
        return features, labels

    return split


def tfrecord_dataset(
    files: Sequence[str],
    parse_spec: Mapping[str, tf.io.FixedLenFeature],
    batch_size: int,
    label_keys: Sequence[str] = (),
    shuffle_buffer: int = 0,
    seed: Optional[int] = None,
    repeat: bool = False,
    cache: bool = False,
    drop_remainder: bool = False,
    ordered: bool = False,
) -> tf.data.Dataset:
    """Batches of parsed examples from TFRecord shards: `(features, labels)` when `label_keys`, else a dict.

    Shards are read in parallel and interleaved; `ordered=True` reads them one after another in the given order
    (for evaluation, where rows must line up with other arrays).
    """
    if not files:
        raise ValueError("no TFRecord files given")
    split = _split_labels(label_keys)
    if ordered:
        ds = tf.data.TFRecordDataset(list(files))
    else:
        ds = tf.data.Dataset.from_tensor_slices(list(files))
        if shuffle_buffer:
            ds = ds.shuffle(len(files), seed=seed)
        ds = ds.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(files), 8),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=seed is not None or not shuffle_buffer,
        )
    if cache:
        ds = ds.cache()
    return _finish(
        ds, batch_size, shuffle_buffer, seed, repeat, drop_remainder, lambda rec: split(tf.io.parse_example(rec, parse_spec))
    )


def memory_dataset(
    columns: Mapping[str, np.ndarray],
    batch_size: int,
    label_keys: Sequence[str] = (),
    shuffle_buffer: int = 0,
    seed: Optional[int] = None,
    repeat: bool = False,
    drop_remainder: bool = False,
    dtypes: Optional[Mapping[str, tf.DType]] = None,
) -> tf.data.Dataset:
    """The same batches as `tfrecord_dataset`, from in-memory numpy columns (strings, int64, float32)."""
    tensors = {}
    for name, column in columns.items():
        column = np.asarray(column)
        dtype = (dtypes or {}).get(name)
        if dtype is None:
            dtype = {"int": tf.int64, "float": tf.float32, "object": tf.string}[_column_kind(name, column)]
        tensors[name] = tf.constant(column.astype(str) if dtype == tf.string else column, dtype=dtype)
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    return _finish(ds, batch_size, shuffle_buffer, seed, repeat, drop_remainder, _split_labels(label_keys))


def read_columns(files: Sequence[str], parse_spec: Mapping[str, tf.io.FixedLenFeature], batch_size: int = 65_536) -> Columns:
    """Reads shards back into numpy columns (strings decoded to str), in file order."""
    parts: Dict[str, List[np.ndarray]] = {k: [] for k in parse_spec}
    for batch in tfrecord_dataset(files, parse_spec, batch_size, ordered=True):
        for k, v in batch.items():
            parts[k].append(v.numpy())
    out = {}
    for k, chunks in parts.items():
        col = np.concatenate(chunks) if chunks else np.array([])
        if col.dtype.kind == "O" or (chunks and chunks[0].dtype.kind == "S"):
            col = np.array([b.decode("utf-8") for b in col], dtype=object)
        out[k] = col
    return out
