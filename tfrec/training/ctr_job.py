"""The CTR training job: data → examples → split → fitted features → TFRecords → fit → evaluate → run directory.

A run directory holds everything needed to evaluate or export later without the raw data:

    config.yaml            the resolved config
    features/              features.json and vocab/*.txt fitted on the training split
    data/{train,validation,test}-*.tfrecord, data/test_truth.npz (ground-truth probabilities, synthetic data only)
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
from tfrec.data.sources import DataConfig, describe, load_source
from tfrec.data.splits import SplitConfig
from tfrec.features.spec import FeatureConfig, FeatureSpec
from tfrec.features.stats import FittedFeatures
from tfrec.models.ctr import CTRModelConfig, LogisticCTR, build_ctr_model
from tfrec.training import ranking_data
from tfrec.training.evaluation import ClickReport, evaluate_click_model
from tfrec.training.trainer import WORKER_FINISHED, TrainingConfig, fit, job_process, restore_best_weights


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
    return ranking_data.build_examples(config.examples, loaded, config.negatives_per_positive, config.split.seed,
                                       label=config.model.label)


@dataclasses.dataclass
class CTRRun:
    """The result of a training run: where it lives, the trained model, and its test report."""

    run_dir: str
    model: LogisticCTR
    fitted: FittedFeatures
    report: ClickReport


def train_ctr(config: CTRJobConfig, log=print) -> Optional[CTRRun]:
    """Runs the whole job and returns the trained model and its test-split report; None on a non-chief worker of a
    `multi_worker` run, which only trains (`tfrec.training.trainer.job_process`)."""
    with job_process(config.training, config.run_dir) as process:
        return _train_ctr(dataclasses.replace(config, run_dir=process.run_dir), process.chief, log)


def _train_ctr(config: CTRJobConfig, chief: bool, log) -> Optional[CTRRun]:
    run_dir = config.run_dir
    dump_config(config, os.path.join(run_dir, "config.yaml"))
    fitted, sizes = prepare_ctr_data(config, run_dir, log)
    data_dir = os.path.join(run_dir, "data")
    train_ds, val_ds = make_datasets(config, data_dir, bool(sizes["validation"]))
    model, _ = fit(lambda: build_ctr_model(config.model, fitted), train_ds, val_ds, config.training, run_dir)
    if not chief:
        log(WORKER_FINISHED)
        return None
    restore_best_weights(model, run_dir, "tfrec train ctr")

    report = evaluate_run(config, run_dir, lambda feats: predict(model, feats))
    with open(os.path.join(run_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"test": report.to_dict()}, f, indent=2)
    log(report.format("test split"))
    return CTRRun(run_dir, model, fitted, report)


def prepare_ctr_data(config: CTRJobConfig, run_dir: str, log=print):
    """The data half of the job (`tfrec.training.ranking_data`): examples → split → features fitted on train →
    TFRecords (+ synthetic truth). Returns (fitted features, rows per split)."""
    loaded = load_source(config.data)
    log("data: " + "\n  ".join(describe(loaded)))
    prepared = ranking_data.prepare_ranking_data(config.feature_spec, [config.model.label], build_examples(config, loaded),
                                                 config.split, run_dir, config.training.num_shards, log)
    return prepared.fitted, prepared.sizes


def make_datasets(config: CTRJobConfig, data_dir: str, has_validation: bool):
    """(train, validation-or-None) tf.data pipelines over the run's TFRecord shards."""
    parse = {**config.feature_spec.parse_spec(), **label_spec(config)}
    return ranking_data.split_datasets(data_dir, parse, [config.model.label], has_validation, config.training)


def predict(model, features: Dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """P(click) for in-memory feature columns, batched."""
    out = [np.asarray(model(batch)).reshape(-1) for batch in model.encoder.spec.tensor_batches(features, batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


def evaluate_run(config: CTRJobConfig, run_dir: str, predict_fn, split: str = "test") -> ClickReport:
    """Evaluates `predict_fn` (features dict → probabilities) on a split of a run, with its baselines."""
    spec = config.feature_spec
    label = config.model.label
    test = ranking_data.read_split_columns(run_dir, split, {**spec.parse_spec(), **label_spec(config)})
    train = ranking_data.read_split_columns(run_dir, "train", label_spec(config))
    truth = ranking_data.load_truth(os.path.join(run_dir, "data"), test) if split == "test" else None
    probabilities = predict_fn({k: test[k] for k in spec.names})
    groups = test["request_id"] if (test["request_id"] != "").any() else None
    return evaluate_click_model(
        probabilities, test[label], test["item_id"], train["item_id"], train[label], groups=groups,
        true_probabilities=(truth or {}).get(label),
    )


def restore_ctr_run(run_dir: str):
    """(config, fitted features, model with the best weights) of a finished run, for evaluate and export."""
    config = load_run_config(run_dir)
    fitted = FittedFeatures.load(os.path.join(run_dir, "features"))
    model = build_ctr_model(config.model, fitted)
    return config, fitted, restore_best_weights(model, run_dir, "tfrec train ctr")
