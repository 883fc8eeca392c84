"""The ranker training job: data → labelled examples → split → fitted features → TFRecords → DCN ranker fit
and, on the same TFRecords, the logistic CTR baseline fit → test report of both (popularity, ground truth) → run dir.

    job.json               {"job": "ranker"}
    config.yaml            the resolved config
    features/              features.json and vocab/*.txt fitted on the training split
    data/{train,validation,test}-*.tfrecord, data/test_truth.npz (synthetic data only)
    checkpoints/best*      the ranker's weights with the best validation metric (with `refit`: the weights of
                           the refit on train + validation for the best epoch count)
    logs/, history.csv     TensorBoard and the per-epoch history of the ranker (refit/: of its refit)
    baseline/              the logistic CTR's checkpoints, logs and history (the same layout)
    metrics.json           {"test": the RankerReport}
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Dict, List, Literal, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec.config import ConfigError, dump_config, load_config
from tfrec.data.sources import DataConfig, describe, load_source
from tfrec.data.splits import SplitConfig
from tfrec.features.spec import FeatureConfig, FeatureSpec
from tfrec.features.stats import FittedFeatures
from tfrec.models.ctr import CTRModelConfig, LogisticCTR, build_ctr_model
from tfrec.models.ranker import TASKS, DCNRanker, RankerConfig, build_ranker
from tfrec.training import metrics
from tfrec.training.ranker_evaluation import RankerReport, ranker_report
from tfrec.training.ranking_data import (EXAMPLE_LABELS, ID_COLUMNS, build_examples, load_truth, prepare_ranking_data,
                                        read_split_columns, split_datasets)
from tfrec.training.trainer import (
    WORKER_FINISHED, TrainingConfig, fit, is_chief, job_process, restore_best_weights,
)

JOB = "ranker"
BASELINE_DIR = "baseline"
REFIT_DIR = "refit"  # logs and history of the refit on train + validation (`refit: true`)


def _default_training() -> TrainingConfig:
    return TrainingConfig(batch_size=512, epochs=10, monitor="val_click_auc", monitor_mode="max")


@dataclasses.dataclass
class RankerJobConfig:
    """Everything `tfrec train ranker` needs; loaded from configs/ranker.yaml or configs/ranker_movielens.yaml."""

    features: List[FeatureConfig]
    model: RankerConfig = dataclasses.field(default_factory=RankerConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    examples: Literal["impressions", "ratings", "sampled"] = "impressions"
    negatives_per_positive: int = 4
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    group_by: str = "request_id"  # the lists NDCG@10 is computed over (user_id for ratings)
    training: TrainingConfig = dataclasses.field(default_factory=_default_training)
    baseline: Optional[CTRModelConfig] = dataclasses.field(default_factory=CTRModelConfig)  # null: no CTR row
    baseline_training: Optional[TrainingConfig] = None  # null: `training`, monitoring val_auc
    # After choosing the epoch count on validation, train each model again on train + validation for that many
    # epochs (the validation rows are training data too; the test split is never used for selection).
    refit: bool = False
    run_dir: str = "runs/ranker"

    def validate(self) -> None:
        spec = self.feature_spec
        available = EXAMPLE_LABELS[self.examples]
        for task in self.model.tasks:
            if task not in available:
                raise ConfigError(f"head {task!r} needs a {task!r} label, which {self.examples} examples do not have "
                                  f"(they have {list(available)})", path=f"model.tasks.{task}")
        for name in (self.model.features or []) + self.model.referenced_features():
            if name not in spec:
                raise ConfigError(f"names feature {name!r}, which `features` does not declare", path="model.features")
        position = self.model.position_feature
        if position and self.model.binary_tasks and position not in spec:
            raise ConfigError(f"position feature {position!r} is not declared in `features` (null: no position tower)",
                              path="model.position_feature")
        labels = set(available) & (set(spec.names))
        if labels:
            raise ConfigError(f"labels {sorted(labels)} must not also be features", path="features")
        if self.group_by not in ID_COLUMNS:
            raise ConfigError(f"must be one of {list(ID_COLUMNS)}, got {self.group_by!r}", path="group_by")
        monitors = self.monitors()
        if self.training.monitor not in monitors:
            raise ConfigError(f"{self.training.monitor!r} is not a metric the ranker reports; choose one of {monitors}",
                              path="training.monitor")
        if self.baseline is not None:
            if self.baseline.label not in available or TASKS.get(self.baseline.label, "binary") != "binary":
                raise ConfigError(f"the baseline predicts {self.baseline.label!r}, which is not a 0/1 label of "
                                  f"{self.examples} examples", path="baseline.label")
            for name in (self.baseline.features or []) + self.baseline.referenced_features():
                if name not in spec:
                    raise ConfigError(f"names feature {name!r}, which `features` does not declare", path="baseline")

    def monitors(self) -> List[str]:
        """Every epoch-log name `training.monitor` may use."""
        names = ["loss", "total_loss"]
        for task in self.model.tasks:
            names += [f"{task}_auc", f"{task}_log_loss"] if TASKS[task] == "binary" else [f"{task}_rmse"]
        return names + ["val_" + n for n in names]

    @property
    def feature_spec(self) -> FeatureSpec:
        spec = FeatureSpec(list(self.features))
        spec.validate()
        return spec

    @property
    def labels(self) -> List[str]:
        """The label columns the TFRecords carry: every head's plus the baseline's."""
        extra = [self.baseline.label] if self.baseline is not None else []
        return list(dict.fromkeys(list(self.model.tasks) + extra))

    def baseline_training_config(self) -> TrainingConfig:
        return self.baseline_training or dataclasses.replace(self.training, monitor="val_auc", monitor_mode="max")


def load_ranker_config(path: str, overrides: Optional[Dict] = None) -> RankerJobConfig:
    return load_config(path, RankerJobConfig, overrides)


@dataclasses.dataclass
class RankerRun:
    """A finished run: where it lives, the ranker, the baseline, the fitted features and the test report."""

    run_dir: str
    model: DCNRanker
    baseline: Optional[LogisticCTR]
    fitted: FittedFeatures
    report: RankerReport


def train_ranker(config: RankerJobConfig, log=print) -> Optional[RankerRun]:
    """Runs the whole job (module docstring) and returns the trained models with the test report; None on a
    non-chief worker of a `multi_worker` run, which only trains (`tfrec.training.trainer.job_process`)."""
    with job_process(config.training, config.run_dir) as process:
        return _train_ranker(dataclasses.replace(config, run_dir=process.run_dir), process.chief, log)


def _train_ranker(config: RankerJobConfig, chief: bool, log) -> Optional[RankerRun]:
    run_dir = config.run_dir
    with open(os.path.join(run_dir, "job.json"), "w", encoding="utf-8") as f:
        json.dump({"job": JOB}, f)
    dump_config(config, os.path.join(run_dir, "config.yaml"))
    loaded = load_source(config.data)
    log("data: " + "\n  ".join(describe(loaded)))
    columns = build_examples(config.examples, loaded, config.negatives_per_positive, config.split.seed)
    prepared = prepare_ranking_data(config.feature_spec, config.labels, columns, config.split, run_dir,
                                    config.training.num_shards, log)
    del columns, loaded
    has_validation = prepared.sizes["validation"] > 0

    build = lambda: build_ranker(config.model, prepared.fitted, prepared.label_means)  # noqa: E731
    model = fit_with_selection(config, build, config.training, list(config.model.tasks), has_validation, run_dir, log)
    baseline = None
    if config.baseline is not None:
        build = lambda: build_ctr_model(config.baseline, prepared.fitted)  # noqa: E731
        baseline = fit_with_selection(config, build, config.baseline_training_config(), [config.baseline.label],
                                 has_validation, os.path.join(run_dir, BASELINE_DIR), log)
    if not chief:
        log(WORKER_FINISHED)
        return None

    report = evaluate_ranker_run(config, run_dir, model, baseline)
    with open(os.path.join(run_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"test": report.to_dict()}, f, indent=2)
    log(report.format())
    return RankerRun(run_dir, model, baseline, prepared.fitted, report)


def fit_with_selection(config: RankerJobConfig, build, training: TrainingConfig, labels: List[str], has_validation: bool,
                  out_dir: str, log=print):
    """Fits with the checkpoint of the best validation epoch; with `config.refit`, then trains a fresh model on
    train + validation for that many epochs, whose final weights become `out_dir`'s checkpoint."""
    training = _monitorable(training, has_validation)
    data_dir = os.path.join(config.run_dir, "data")
    train_ds, val_ds = make_datasets(config, data_dir, has_validation, training, labels)
    model, history = fit(build, train_ds, val_ds, training, out_dir)
    if is_chief(model.distribute_strategy):  # a multi_worker worker keeps no checkpoint
        restore_best_weights(model, out_dir, "tfrec train ranker")
    if not (config.refit and has_validation):
        return model
    values = history.history[training.monitor]
    epochs = 1 + int(np.argmax(values) if training.monitor_mode == "max" else np.argmin(values))
    log(f"{os.path.basename(out_dir)}: refit on train + validation for {epochs} epochs (best {training.monitor})")
    refit = dataclasses.replace(training, epochs=epochs, early_stopping_patience=0,
                                monitor=training.monitor.replace("val_", "", 1))
    train_ds, _ = make_datasets(config, data_dir, False, refit, labels, ("train", "validation"))
    model, _ = fit(build, train_ds, None, refit, os.path.join(out_dir, REFIT_DIR))
    model.save_weights(os.path.join(out_dir, "checkpoints", "best"))
    return model


def _monitorable(training: TrainingConfig, has_validation: bool) -> TrainingConfig:
    """`training`, monitoring the training-set metric instead of `val_...` when there is no validation split."""
    if has_validation:
        return training
    return dataclasses.replace(training, monitor=training.monitor.replace("val_", "", 1))


def _parse_spec(config: RankerJobConfig, labels: List[str]) -> Dict[str, tf.io.FixedLenFeature]:
    spec = config.feature_spec.parse_spec()
    for label in labels:
        dtype = tf.float32 if TASKS.get(label) == "regression" else tf.int64
        spec[label] = tf.io.FixedLenFeature([], dtype, default_value=0)
    return spec


def make_datasets(config: RankerJobConfig, data_dir: str, has_validation: bool, training: TrainingConfig,
                  labels: Optional[List[str]] = None, train_splits: Sequence[str] = ("train",)):
    """(train, validation-or-None) pipelines over the run's TFRecords, with `labels` (default: every head's); the
    training pipeline reads `train_splits` (("train", "validation") for the refit)."""
    labels = list(labels or config.model.tasks)
    return split_datasets(data_dir, _parse_spec(config, labels), labels, has_validation, training, train_splits)


def predict_ranker(model: DCNRanker, spec: FeatureSpec, columns: Dict[str, np.ndarray], batch_size: int = 8192):
    """task → {"logged": at the logged position, "serving": position-free} predictions for in-memory columns."""
    out: Dict[str, Dict[str, List[np.ndarray]]] = {t: {"logged": [], "serving": []} for t in model.config.tasks}
    for batch in spec.tensor_batches(columns, batch_size):
        serving = model.head_logits(model.embed(batch))
        # The logged click model: position tower on (under purchase_given_click, purchase inherits click's).
        with_position = model.position_tower is not None and model.config.position_feature in batch
        logged_logits = model.logits(batch, with_position=True) if with_position else serving
        for task, logit in serving.items():
            logged = logged_logits[task]
            if TASKS[task] == "binary":
                logit, logged = tf.sigmoid(logit), tf.sigmoid(logged)
            out[task]["serving"].append(np.asarray(logit, np.float64))
            out[task]["logged"].append(np.asarray(logged, np.float64))
    return {t: {k: np.concatenate(v) for k, v in parts.items()} for t, parts in out.items()}


def predict_baseline(model: LogisticCTR, columns: Dict[str, np.ndarray], position: Optional[str],
                     batch_size: int = 8192):
    """{"logged", "serving"} P(label) of the logistic CTR: as logged, and with `position` fixed at 0 for every item."""
    def run(cols):
        batches = model.encoder.spec.tensor_batches(cols, batch_size)
        return np.concatenate([np.asarray(model(b), np.float64).reshape(-1) for b in batches])

    logged = run(columns)
    if not position or position not in model.encoder.spec:
        return {"logged": logged, "serving": logged}
    neutral = dict(columns, **{position: np.zeros_like(columns[position])})
    return {"logged": logged, "serving": run(neutral)}


def read_split(config: RankerJobConfig, run_dir: str, split: str) -> Dict[str, np.ndarray]:
    """Every feature, label and id column of a split of the run's TFRecords."""
    return read_split_columns(run_dir, split, _parse_spec(config, config.labels))


def evaluate_ranker_run(config: RankerJobConfig, run_dir: str, model: Optional[DCNRanker],
                        baseline: Optional[LogisticCTR] = None, split: str = "test",
                        predict: Optional[Callable[[Dict[str, np.ndarray]], Dict]] = None) -> RankerReport:
    """The RankerReport of `model` (and the baseline, popularity, training mean, ground truth) on a split of a run;
    `predict` (feature columns → `predict_ranker`'s dict) replaces the model's own predictions, e.g. a SavedModel's."""
    spec = config.feature_spec
    test = read_split(config, run_dir, split)
    train = read_split(config, run_dir, "train")
    features = {n: test[n] for n in spec.names}
    tasks = list(config.model.tasks)
    popularity = {t: metrics.popularity_scores(train["item_id"], train[t], test["item_id"]) for t in tasks}
    groups = test[config.group_by] if (test[config.group_by] != "").any() else None
    truth = load_truth(os.path.join(run_dir, "data"), test) if split == "test" else None
    scores = predict(features) if predict is not None else predict_ranker(model, spec, features)
    return ranker_report(
        tasks, {t: test[t] for t in config.labels}, groups, scores,
        baseline=predict_baseline(baseline, features, config.model.position_feature) if baseline is not None else None,
        baseline_label=config.baseline.label if config.baseline is not None else "click",
        popularity=popularity, truth=truth, train_means={t: float(np.mean(train[t])) for t in tasks}, split=split,
        group_by=config.group_by,
    )


def load_ranker_run_config(run_dir: str) -> RankerJobConfig:
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir} not found: train one with `tfrec train ranker --run-dir ...`")
    return load_ranker_config(os.path.join(run_dir, "config.yaml"))


def restore_ranker_run(run_dir: str, with_baseline: bool = False):
    """(config, fitted features, ranker with the best weights) of a finished run, for export and evaluation; with
    `with_baseline`, a fourth item: the logistic CTR baseline of the run (None when it trained none)."""
    config = load_ranker_run_config(run_dir)
    fitted = FittedFeatures.load(os.path.join(run_dir, "features"))
    model = restore_best_weights(build_ranker(config.model, fitted), run_dir, "tfrec train ranker")
    if not with_baseline:
        return config, fitted, model
    baseline = None
    if config.baseline is not None:
        baseline = build_ctr_model(config.baseline, fitted)
        restore_best_weights(baseline, os.path.join(run_dir, BASELINE_DIR), "tfrec train ranker")
    return config, fitted, model, baseline
