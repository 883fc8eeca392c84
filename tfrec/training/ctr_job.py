"""The CTR training job: data → examples → split → fitted features → TFRecords → fit → evaluate → run directory.

A run directory holds everything needed to evaluate or export later without the raw data:

    config.yaml            the resolved config
    features/              features.json and vocab/*.txt fitted on the training split
    data/{train,validation,test}-*.tfrecord, data/test_truth.npz (ground-truth P(click), synthetic data only)
    checkpoints/best*      weights with the best validation metric
    logs/                  TensorBoard
    history.csv, metrics.json
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Literal, Optional

import numpy as np
import tensorflow as tf

from tfrec.config import dump_config, load_config
from tfrec.data.examples import impression_examples, join_item_and_user_features, take
from tfrec.data.negatives import sampled_examples
from tfrec.data.sources import DataConfig, describe, load_source
from tfrec.data.splits import SplitConfig, split_indices
from tfrec.data.tfrecord import list_shards, read_columns, tfrecord_dataset, write_tfrecords
from tfrec.features.spec import FeatureConfig, FeatureSpec
from tfrec.features.stats import FittedFeatures, fit_features
from tfrec.models.ctr import CTRModelConfig, LogisticCTR, build_ctr_model
from tfrec.training.evaluation import ClickReport, evaluate_click_model
from tfrec.training.trainer import TrainingConfig, fit, restore_best_weights

SPLITS = ("train", "validation", "test")
TRUTH_FILE = "test_truth.npz"  # the generator's true P(click) of each test impression (synthetic data only)


@dataclasses.dataclass
class CTRJobConfig:
    """Everything `tfrec train ctr` needs; loaded from configs/ctr.yaml."""

    features: List[FeatureConfig]
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    examples: Literal["impressions", "sampled"] = "impressions"
    negatives_per_positive: int = 4
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    model: CTRModelConfig = dataclasses.field(default_factory=CTRModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    run_dir: str = "runs/ctr"

    def validate(self) -> None:
        spec = self.feature_spec
        for name in (self.model.features or []) + self.model.referenced_features():
            if name not in spec:
                raise ValueError(f"model refers to feature {name!r}, which `features` does not declare")
        if self.model.label in spec:
            raise ValueError(f"the label {self.model.label!r} must not also be a feature")

    @property
    def feature_spec(self) -> FeatureSpec:
        spec = FeatureSpec(list(self.features))
        spec.validate()
        return spec


def load_ctr_config(path: str, overrides: Optional[Dict] = None) -> CTRJobConfig:
    return load_config(path, CTRJobConfig, overrides)


def load_run_config(run_dir: str) -> CTRJobConfig:
    """The resolved config a finished (or running) training run saved."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir} not found: train one with `tfrec train ctr --run-dir ...`")
    return load_ctr_config(os.path.join(run_dir, "config.yaml"))


def label_spec(config: CTRJobConfig) -> Dict[str, tf.io.FixedLenFeature]:
    return {config.model.label: tf.io.FixedLenFeature([], tf.int64, default_value=0)}


def build_examples(config: CTRJobConfig, loaded) -> Dict[str, np.ndarray]:
    """Labelled examples from the loaded data: impressions with follow-up labels, or implicit positives + negatives."""
    if config.examples == "impressions":
        columns = impression_examples(loaded.dataset)
        if loaded.ground_truth is not None:
            columns["_true_probability"] = loaded.ground_truth.click_probability(columns["request_id"], columns["item_id"])
        return columns
    columns = sampled_examples(loaded.dataset, config.negatives_per_positive, seed=config.split.seed, label=config.model.label)
    columns["request_id"] = np.full(len(columns["user_id"]), "", dtype=object)
    return join_item_and_user_features(columns, loaded.dataset)


@dataclasses.dataclass
class CTRRun:
    """The result of a training run: where it lives, the trained model, and its test report."""

    run_dir: str
    model: LogisticCTR
    fitted: FittedFeatures
    report: ClickReport


def train_ctr(config: CTRJobConfig, log=print) -> CTRRun:
    """Runs the whole job and returns the trained model and its test-split report."""
    run_dir = config.run_dir
    os.makedirs(run_dir, exist_ok=True)
    dump_config(config, os.path.join(run_dir, "config.yaml"))
    fitted, sizes = prepare_ctr_data(config, run_dir, log)
    data_dir = os.path.join(run_dir, "data")
    train_ds, val_ds = make_datasets(config, data_dir, bool(sizes["validation"]))
    model, _ = fit(lambda: build_ctr_model(config.model, fitted), train_ds, val_ds, config.training, run_dir)
    model.load_weights(os.path.join(run_dir, "checkpoints", "best")).expect_partial()

    report = evaluate_run(config, run_dir, lambda feats: predict(model, feats))
    with open(os.path.join(run_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"test": report.to_dict()}, f, indent=2)
    log(report.format("test split"))
    return CTRRun(run_dir, model, fitted, report)


def prepare_ctr_data(config: CTRJobConfig, run_dir: str, log=print):
    """The data half of the job: examples → split → features fitted on train → TFRecords (+ synthetic truth).

    Returns (fitted features, rows per split)."""
    spec = config.feature_spec
    label = config.model.label
    loaded = load_source(config.data)
    log("data: " + "\n  ".join(describe(loaded)))
    columns = build_examples(config, loaded)
    missing = [n for n in spec.names + [label] if n not in columns]
    if missing:
        raise ValueError(f"the examples have no column for {missing}; available: {sorted(columns)}")
    parts = dict(zip(SPLITS, split_indices(config.split, columns["timestamp"], columns["request_id"])))
    log("examples: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()) + f" (label rate {columns[label].mean():.4f})")
    if len(parts["train"]) == 0 or len(parts["test"]) == 0:
        raise ValueError("the split left no training or no test examples; use more data or other fractions")

    keep = spec.names + [label, "request_id", "item_id"]  # ids kept for grouped metrics and the popularity baseline
    fitted = fit_features(spec, take(columns, parts["train"]), os.path.join(run_dir, "features"))
    data_dir = os.path.join(run_dir, "data")
    for split, index in parts.items():
        part = take({k: columns[k] for k in dict.fromkeys(keep)}, index)
        write_tfrecords(part, data_dir, split, config.training.num_shards if split == "train" else 1)
    if "_true_probability" in columns:
        test = parts["test"]
        np.savez(
            os.path.join(data_dir, TRUTH_FILE),
            request_id=columns["request_id"][test].astype(str),
            item_id=columns["item_id"][test].astype(str),
            probability=columns["_true_probability"][test],
        )
    return fitted, {k: int(len(v)) for k, v in parts.items()}


def make_datasets(config: CTRJobConfig, data_dir: str, has_validation: bool):
    """(train, validation-or-None) tf.data pipelines over the run's TFRecord shards."""
    parse = {**config.feature_spec.parse_spec(), **label_spec(config)}
    t = config.training
    train = tfrecord_dataset(
        list_shards(data_dir, "train"), parse, t.batch_size, [config.model.label],
        shuffle_buffer=t.shuffle_buffer, seed=t.seed, cache=t.cache,
    )
    val = None
    if has_validation:
        val = tfrecord_dataset(list_shards(data_dir, "validation"), parse, t.batch_size, [config.model.label], cache=t.cache)
    return train, val


def predict(model, features: Dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """P(click) for in-memory feature columns, batched."""
    out = [np.asarray(model(batch)).reshape(-1) for batch in model.encoder.spec.tensor_batches(features, batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


def evaluate_run(config: CTRJobConfig, run_dir: str, predict_fn, split: str = "test") -> ClickReport:
    """Evaluates `predict_fn` (features dict → probabilities) on a split of a run, with its baselines."""
    spec = config.feature_spec
    label = config.model.label
    data_dir = os.path.join(run_dir, "data")
    ids = {k: tf.io.FixedLenFeature([], tf.string, "") for k in ("request_id", "item_id")}
    test = read_columns(list_shards(data_dir, split), {**spec.parse_spec(), **label_spec(config), **ids})
    train = read_columns(list_shards(data_dir, "train"), {"item_id": ids["item_id"], **label_spec(config)})
    truth = _load_truth(os.path.join(data_dir, TRUTH_FILE), test) if split == "test" else None
    probabilities = predict_fn({k: test[k] for k in spec.names})
    groups = test["request_id"] if (test["request_id"] != "").any() else None
    return evaluate_click_model(
        probabilities, test[label], test["item_id"], train["item_id"], train[label], groups=groups, true_probabilities=truth
    )


def _load_truth(path: str, test: Dict[str, np.ndarray]) -> Optional[np.ndarray]:
    """True probabilities of the test rows, matched by (request_id, item_id) rather than by row order."""
    if not os.path.exists(path):
        return None
    with np.load(path) as saved:
        lookup = dict(zip(zip(saved["request_id"].tolist(), saved["item_id"].tolist()), saved["probability"].tolist()))
    try:
        return np.array([lookup[(r, i)] for r, i in zip(test["request_id"], test["item_id"])])
    except KeyError as exc:
        raise ValueError(f"{path} has no ground truth for test impression {exc.args[0]}") from None


def restore_ctr_run(run_dir: str):
    """(config, fitted features, model with the best weights) of a finished run, for evaluate and export."""
    config = load_run_config(run_dir)
    fitted = FittedFeatures.load(os.path.join(run_dir, "features"))
    model = build_ctr_model(config.model, fitted)
    return config, fitted, restore_best_weights(model, run_dir, "tfrec train ctr")
