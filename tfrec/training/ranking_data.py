"""The data half of the ranker and CTR jobs: labelled examples → split → features fitted on train → TFRecords
(+ truth), and reading them back as training pipelines or columns.

Examples come in three kinds, all one row per (context, item) with the feature columns named as the spec names them:

- `impressions`: every logged impression with `click`, `add_to_cart` and `purchase` labels (e-commerce logs);
- `ratings`: every `rate` event with its `rating` and `like` = rating >= 4 (explicit feedback such as MovieLens);
- `sampled`: implicit positives plus sampled unseen items as negatives, labelled `click`.

On synthetic data the generator's true probabilities of each test example are saved beside the TFRecords
(`data/test_truth.npz`, matched back by (request_id, item_id)), so reports can show the best achievable metrics:
`click` / `purchase` at the logged position and `click@top` / `purchase@top` with every item at position 0 (the
position-free ranking a served list should follow).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec.data.examples import event_columns, impression_examples, join_item_and_user_features, take
from tfrec.data.negatives import sampled_examples
from tfrec.data.schema import EventType
from tfrec.data.splits import SplitConfig, split_indices
from tfrec.data.tfrecord import list_shards, read_columns, tfrecord_dataset, write_tfrecords
from tfrec.features.spec import FeatureSpec
from tfrec.features.stats import FittedFeatures, fit_features
from tfrec.training.trainer import TrainingConfig

SPLITS = ("train", "validation", "test")
TRUTH_FILE = "test_truth.npz"
LIKE_THRESHOLD = 4.0
EXAMPLE_LABELS = {
    "impressions": ("click", "add_to_cart", "purchase"),
    "ratings": ("rating", "like"),
    "sampled": ("click",),
}
ID_COLUMNS = ("request_id", "user_id", "item_id")  # kept for grouped metrics and the popularity baseline


def rating_examples(dataset) -> Dict[str, np.ndarray]:
    """One example per `rate` event with item and user features, `rating` and `like` (rating >= 4)."""
    events = dataset.events
    rows = np.flatnonzero(events["event_type"] == EventType.RATE.value)
    if rows.size == 0:
        raise ValueError("the events have no `rate` events, so there is no rating to learn; use examples: impressions")
    out = event_columns(events, rows, ("user_id", "item_id", "timestamp", "rating"))
    out["request_id"] = np.full(len(rows), "", dtype=object)
    join_item_and_user_features(out, dataset)
    out["like"] = (out["rating"] >= LIKE_THRESHOLD).astype(np.int64)
    return out


def build_examples(kind: str, loaded, negatives_per_positive: int = 4, seed: int = 42,
                   label: str = "click") -> Dict[str, np.ndarray]:
    """Labelled examples of `kind` (module docstring) from loaded data, with `_true_*` columns when synthetic;
    `label` names the 0/1 column of `sampled` examples."""
    if kind == "ratings":
        return rating_examples(loaded.dataset)
    if kind == "sampled":
        columns = sampled_examples(loaded.dataset, negatives_per_positive, seed=seed, label=label)
        columns["request_id"] = np.full(len(columns["user_id"]), "", dtype=object)
        return join_item_and_user_features(columns, loaded.dataset)
    columns = impression_examples(loaded.dataset)
    truth = loaded.ground_truth
    if truth is not None:
        req, item = columns["request_id"], columns["item_id"]
        purchase_given_click = truth.purchase_probability(req, item)
        click = truth.click_probability(req, item)
        top = truth.click_probability(req, item, positions=np.zeros(len(req), np.int64))
        columns["_true_click"], columns["_true_click@top"] = click, top
        columns["_true_purchase"] = click * purchase_given_click
        columns["_true_purchase@top"] = top * purchase_given_click
    return columns


@dataclasses.dataclass
class PreparedRanking:
    """What `prepare_ranking_data` leaves behind: fitted features, rows per split and the training label means."""

    fitted: FittedFeatures
    sizes: Dict[str, int]
    label_means: Dict[str, float]


def prepare_ranking_data(
    spec: FeatureSpec,
    labels: Sequence[str],
    columns: Dict[str, np.ndarray],
    split: SplitConfig,
    run_dir: str,
    num_shards: int = 4,
    log=print,
) -> PreparedRanking:
    """Splits labelled `columns`, fits `spec` on the training rows and writes every split's TFRecords (features,
    `labels` and the id columns) under `run_dir/data`, plus the test rows' `_true_*` columns when present."""
    missing = [n for n in spec.names + list(labels) if n not in columns]
    if missing:
        available = sorted(c for c in columns if not c.startswith("_"))
        raise ValueError(f"the examples have no column for {missing}; available: {available}")
    parts = dict(zip(SPLITS, split_indices(split, columns["timestamp"], columns["request_id"])))
    if len(parts["train"]) == 0 or len(parts["test"]) == 0:
        raise ValueError("the split left no training or no test examples; use more data or other fractions")
    means = {label: float(np.mean(columns[label][parts["train"]])) for label in labels}
    log("examples: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()) + " (training "
        + ", ".join(f"mean {k} {v:.4f}" for k, v in means.items()) + ")")
    fitted = fit_features(spec, take(columns, parts["train"]), os.path.join(run_dir, "features"))
    keep = list(dict.fromkeys(spec.names + list(labels) + [c for c in ID_COLUMNS if c in columns]))
    data_dir = os.path.join(run_dir, "data")
    for name, index in parts.items():
        shards = num_shards if name == "train" else 1
        write_tfrecords(take({k: columns[k] for k in keep}, index), data_dir, name, shards)
    truth = {k[len("_true_"):]: v[parts["test"]] for k, v in columns.items() if k.startswith("_true_")}
    if truth:
        test = parts["test"]
        np.savez(os.path.join(data_dir, TRUTH_FILE), request_id=columns["request_id"][test].astype(str),
                 item_id=columns["item_id"][test].astype(str), **{f"true:{k}": v for k, v in truth.items()})
    return PreparedRanking(fitted, {k: int(len(v)) for k, v in parts.items()}, means)


def load_truth(data_dir: str, test: Dict[str, np.ndarray]) -> Optional[Dict[str, np.ndarray]]:
    """The saved true probabilities of the `test` rows (matched by (request_id, item_id)), or None without truth."""
    path = os.path.join(data_dir, TRUTH_FILE)
    if not os.path.exists(path):
        return None
    with np.load(path) as saved:
        keys = list(zip(saved["request_id"].tolist(), saved["item_id"].tolist()))
        names: List[str] = [k for k in saved.files if k.startswith("true:")]
        lookup = {key: i for i, key in enumerate(keys)}
        try:
            rows = np.array([lookup[(r, i)] for r, i in zip(test["request_id"], test["item_id"])], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{path} has no ground truth for test example {exc.args[0]}") from None
        return {name[len("true:"):]: saved[name][rows] for name in names}


def split_datasets(data_dir: str, parse: Dict, labels: Sequence[str], has_validation: bool, training: TrainingConfig,
                   train_splits: Sequence[str] = ("train",)):
    """(train, validation-or-None) pipelines of (features, `labels`) over the TFRecords under `data_dir`; the
    training pipeline shuffles the shards of `train_splits` together (("train", "validation") to refit on both)."""
    files = [path for split in train_splits for path in list_shards(data_dir, split)]
    train = tfrecord_dataset(files, parse, training.batch_size, list(labels),
                             shuffle_buffer=training.shuffle_buffer, seed=training.seed, cache=training.cache)
    val = None
    if has_validation:
        val = tfrecord_dataset(list_shards(data_dir, "validation"), parse, training.batch_size, list(labels),
                               cache=training.cache)
    return train, val


def read_split_columns(run_dir: str, split: str, parse: Dict) -> Dict[str, np.ndarray]:
    """The `parse` columns and the id columns of a split of a run's TFRecords, as numpy."""
    ids = {k: tf.io.FixedLenFeature([], tf.string, "") for k in ID_COLUMNS}
    return read_columns(list_shards(os.path.join(run_dir, "data"), split), {**parse, **ids})
