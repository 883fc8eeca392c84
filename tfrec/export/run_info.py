"""What a training run directory tells a model card: where its data came from, how many rows each split has and
which time span they cover, the run's settings and its evaluation report; and a few real rows for warm-up records.

Every job writes the same layout (config.yaml, data/<split>-*.tfrecord, metrics.json), so this reads any of them
without knowing the job. Row counts and time ranges come from the TFRecords the model was trained and evaluated on,
not from the raw source, so they are exact for the run.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from tfrec.config import to_dict
from tfrec.data.tfrecord import list_shards
from tfrec.features.spec import FeatureSpec

TIMESTAMP = "timestamp"
SPLIT_ORDER = ("train", "validation", "test", "catalog")
_SHARD = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}\.tfrecord$")
_COUNT_BATCH = 65_536


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def _has_int_feature(path: str, name: str) -> bool:
    for record in tf.data.TFRecordDataset(path).take(1).as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature.get(name)
        return feature is not None and feature.WhichOneof("kind") == "int64_list"
    return False


def split_facts(files) -> Dict[str, Any]:
    """{"rows": n} of TFRecord shards, plus "time_range" [first, last] (ISO UTC) when rows carry a `timestamp`."""
    dataset = tf.data.TFRecordDataset(list(files)).batch(_COUNT_BATCH)
    if not _has_int_feature(files[0], TIMESTAMP):
        return {"rows": int(sum(int(tf.shape(b)[0]) for b in dataset))}
    spec = {TIMESTAMP: tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
    rows, low, high = 0, None, None
    for batch in dataset.map(lambda b: tf.io.parse_example(b, spec)[TIMESTAMP]):
        values = batch.numpy()
        rows += len(values)
        values = values[values >= 0]
        if values.size:
            low = values.min() if low is None else min(low, values.min())
            high = values.max() if high is None else max(high, values.max())
    facts: Dict[str, Any] = {"rows": rows}
    if low is not None:
        facts["time_range"] = [_iso(low), _iso(high)]
    return facts


def data_splits(data_dir: str) -> Dict[str, Dict[str, Any]]:
    """split → split_facts for every `<split>-*-of-*.tfrecord` group in a run's data directory."""
    groups: Dict[str, list] = {}
    for path in sorted(glob.glob(os.path.join(data_dir, "*.tfrecord"))):
        match = _SHARD.match(os.path.basename(path))
        if match:
            groups.setdefault(match["split"], []).append(path)
    order = {s: i for i, s in enumerate(SPLIT_ORDER)}
    return {split: split_facts(groups[split]) for split in sorted(groups, key=lambda s: (order.get(s, 99), s))}


def run_metrics(run_dir: str) -> Optional[dict]:
    """The run's evaluation report (metrics.json as the job wrote it), or None before evaluation."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_card_info(run_dir: str, job: str, config) -> Dict[str, Any]:
    """Model-card facts of a run: run_dir, job, training_data (source, split settings, rows and time range per
    split), config (the run's remaining settings) and metrics (its report)."""
    settings = to_dict(config)
    source = settings.pop("data", None)
    split = settings.pop("split", None)
    for key in ("features", "run_dir"):
        settings.pop(key, None)
    info: Dict[str, Any] = {
        "run_dir": os.path.abspath(run_dir),
        "job": job,
        "training_data": {"source": source, "split": split, "splits": data_splits(os.path.join(run_dir, "data"))},
        "config": settings,
    }
    metrics = run_metrics(run_dir)
    if metrics is not None:
        info["metrics"] = metrics
    return info


def sample_rows(run_dir: str, split: str, spec: FeatureSpec, n: int = 8) -> Dict[str, np.ndarray]:
    """The first `n` rows of a split of the run's TFRecords, as columns of the spec's features (warm-up rows)."""
    files = list_shards(os.path.join(run_dir, "data"), split)
    parse = spec.parse_spec()
    for batch in tf.data.TFRecordDataset(files).take(n).batch(n).map(lambda b: tf.io.parse_example(b, parse)):
        return {k: np.array([x.decode("utf-8") for x in v.numpy()], dtype=object) if v.dtype == tf.string
                else v.numpy() for k, v in batch.items()}
    return {f.name: np.array([], dtype=object) for f in spec.features}

