"""The retrieval training job: data → positive examples with recent-item histories → split → fitted features →
TFRecords → two-tower fit (validation recall@k drives checkpoints) → full-catalog test report → run directory.

A run directory holds everything needed to evaluate, export or re-index later without the raw data:

    job.json               {"job": "retrieval"}
    config.yaml            the resolved config
    features/              features.json and vocab/*.txt fitted on the training split
    data/{train,validation,test}-*.tfrecord, data/catalog-*.tfrecord (every candidate's features)
    checkpoints/best*      weights with the best validation recall
    logs/                  TensorBoard
    history.csv, metrics.json
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfrec.config import dump_config, load_config
from tfrec.data.retrieval_examples import (
    POSITIVE_TYPES, RetrievalSplitConfig, catalog_columns, positive_examples, sampling_probability, split_positives,
)
from tfrec.data.sources import DataConfig, describe, load_source
from tfrec.data.tfrecord import list_shards, read_columns, tfrecord_dataset, write_tfrecords
from tfrec.features.spec import FeatureConfig, FeatureSpec
from tfrec.features.stats import FittedFeatures, fit_features
from tfrec.models.two_tower import SAMPLING_PROBABILITY, TwoTowerConfig, TwoTowerModel, build_two_tower_model
from tfrec.training.rank_metrics import RetrievalReport, format_reports
from tfrec.training.retrieval_evaluation import (
    CatalogIndexer, ValidationRecall, model_report, popularity_report, seen_items, top_k_items,
)
from tfrec.training.trainer import WORKER_FINISHED, TrainingConfig, fit, job_process, restore_best_weights

JOB = "retrieval"


@dataclasses.dataclass
class RetrievalExamplesConfig:
    """Which events are positives and how many recent items form the history feature."""

    event_types: List[str] = dataclasses.field(default_factory=lambda: list(POSITIVE_TYPES))
    history_length: int = 20


@dataclasses.dataclass
class RetrievalEvaluationConfig:
    """Cut-offs, seen-item exclusion (null: on for leave_last_out only) and the per-epoch validation recall."""

    recall_ks: List[int] = dataclasses.field(default_factory=lambda: [10, 50, 100])
    exclude_seen: Optional[bool] = None
    validation_k: int = 50
    validation_queries: int = 2000
    max_test_queries: Optional[int] = None

    def validate(self) -> None:
        if not self.recall_ks or any(k < 1 for k in self.recall_ks) or self.validation_k < 1:
            raise ValueError("recall_ks must be a non-empty list of positive ints and validation_k >= 1")


def _default_training() -> TrainingConfig:
    return TrainingConfig(batch_size=512, epochs=10, monitor="val_recall@50", monitor_mode="max")


@dataclasses.dataclass
class RetrievalJobConfig:
    """Everything `tfrec train retrieval` needs; loaded from configs/retrieval.yaml."""

    features: List[FeatureConfig]
    model: TwoTowerConfig
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    examples: RetrievalExamplesConfig = dataclasses.field(default_factory=RetrievalExamplesConfig)
    split: RetrievalSplitConfig = dataclasses.field(default_factory=RetrievalSplitConfig)
    training: TrainingConfig = dataclasses.field(default_factory=_default_training)
    evaluation: RetrievalEvaluationConfig = dataclasses.field(default_factory=RetrievalEvaluationConfig)
    export_k: int = 100
    run_dir: str = "runs/retrieval"

    def validate(self) -> None:
        spec = self.feature_spec
        for tower in ("query", "candidate"):
            for name in getattr(self.model, tower).features:
                if name not in spec:
                    raise ValueError(f"model.{tower} uses feature {name!r}, which `features` does not declare")
        if self.training.monitor.startswith("val_recall@") and self.training.monitor != f"val_recall@{self.evaluation.validation_k}":
            raise ValueError(f"training.monitor {self.training.monitor!r} must be val_recall@{self.evaluation.validation_k} "
                             "(evaluation.validation_k), val_loss or loss")
        if self.export_k < 1:
            raise ValueError("export_k must be >= 1")

    @property
    def feature_spec(self) -> FeatureSpec:
        spec = FeatureSpec(list(self.features))
        spec.validate()
        return spec

    @property
    def query_features(self) -> List[str]:
        return list(self.model.query.features)

    @property
    def candidate_features(self) -> List[str]:
        return list(self.model.candidate.features)


def load_retrieval_config(path: str, overrides: Optional[Dict] = None) -> RetrievalJobConfig:
    return load_config(path, RetrievalJobConfig, overrides)


@dataclasses.dataclass
class RetrievalRun:
    """A finished run: where it lives, the model, its fitted features and its test reports (model first)."""

    run_dir: str
    model: TwoTowerModel
    fitted: FittedFeatures
    reports: List[RetrievalReport]
    extra: Dict[str, float]


def train_retrieval(config: RetrievalJobConfig, log=print) -> Optional[RetrievalRun]:
    """Runs the whole job (module docstring) and returns the trained model with its full-catalog test reports; None
    on a non-chief worker of a `multi_worker` run, which only trains (`tfrec.training.trainer.job_process`)."""
    with job_process(config.training, config.run_dir) as process:
        return _train_retrieval(dataclasses.replace(config, run_dir=process.run_dir), process.chief, log)


def _train_retrieval(config: RetrievalJobConfig, chief: bool, log) -> Optional[RetrievalRun]:
    run_dir = config.run_dir
    with open(os.path.join(run_dir, "job.json"), "w", encoding="utf-8") as f:
        json.dump({"job": JOB}, f)
    dump_config(config, os.path.join(run_dir, "config.yaml"))
    prepared = prepare_retrieval_data(config, run_dir, log)
    has_validation = prepared.sizes["validation"] > 0
    training = config.training if has_validation else dataclasses.replace(config.training, monitor="loss", monitor_mode="min")
    train_ds, val_ds = make_datasets(config, os.path.join(run_dir, "data"), has_validation)
    model, _ = fit(lambda: build_two_tower_model(config.model, prepared.fitted), train_ds, val_ds, training, run_dir,
                   validation_callbacks(config, run_dir, has_validation))
    if not chief:
        log(WORKER_FINISHED)
        return None
    restore_best_weights(model, run_dir, "tfrec train retrieval")

    reports, extra = evaluate_retrieval_run(config, run_dir, model, ground_truth=prepared.ground_truth)
    with open(os.path.join(run_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"test": [r.to_dict() for r in reports], **extra}, f, indent=2)
    log(format_reports(reports))
    for name, value in extra.items():
        log(f"{name}: {value:.4f}")
    return RetrievalRun(run_dir, model, prepared.fitted, reports, extra)


@dataclasses.dataclass
class PreparedRetrieval:
    """What `prepare_retrieval_data` leaves behind: fitted features, split sizes and (synthetic) ground truth."""

    fitted: FittedFeatures
    sizes: Dict[str, int]
    ground_truth: Optional[object] = None


def prepare_retrieval_data(config: RetrievalJobConfig, run_dir: str, log=print) -> PreparedRetrieval:
    """The data half of the job: positives → split → features fitted on train → TFRecords (splits and catalog)."""
    spec = config.feature_spec
    loaded = load_source(config.data)
    log("data: " + "\n  ".join(describe(loaded)))
    columns = positive_examples(loaded.dataset, config.examples.event_types, config.examples.history_length)
    missing = [n for n in spec.names if n not in columns]
    if missing:
        raise ValueError(f"the examples have no column for features {missing}; available: {sorted(columns)}")
    catalog = catalog_columns(loaded.dataset, config.candidate_features)
    parts = split_positives(config.split, columns)
    log(f"positives ({config.split.protocol} split): " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))

    train_rows = parts["train"]
    # Vocabularies come from training positives only: items never interacted with map to OOV, whose embedding
    # feature dropout trains, so they are scored by their content rather than by an untrained random vector.
    fitted = fit_features(spec, {n: columns[n][train_rows] for n in spec.names}, os.path.join(run_dir, "features"))
    probability = sampling_probability(columns["item_id"][train_rows], columns["item_id"])
    data_dir = os.path.join(run_dir, "data")
    keep = list(dict.fromkeys(config.query_features + config.candidate_features + ["user_id", "item_id"]))
    for split, rows in parts.items():
        if len(rows):
            part = {n: columns[n][rows] for n in keep}
            part[SAMPLING_PROBABILITY] = probability[rows]
            write_tfrecords(part, data_dir, split, config.training.num_shards if split == "train" else 1)
    write_tfrecords(catalog, data_dir, "catalog", 1)
    return PreparedRetrieval(fitted, {k: int(len(v)) for k, v in parts.items()}, loaded.ground_truth)


def validation_callbacks(config: RetrievalJobConfig, run_dir: str, has_validation: bool) -> list:
    """The per-epoch full-catalog `val_recall@k` callback, when the monitor asks for it and validation exists."""
    if not (has_validation and config.training.monitor.startswith("val_recall@")):
        return []
    val = read_split(config, run_dir, "validation")
    val = {k: v[: config.evaluation.validation_queries] for k, v in val.items()}
    catalog = read_catalog(config, run_dir)
    targets = CatalogIndexer(catalog[config.model.candidate_id]).codes(val["item_id"])
    return [ValidationRecall({n: val[n] for n in config.query_features}, targets, catalog, config.evaluation.validation_k)]


def _parse_spec(config: RetrievalJobConfig, names: List[str], with_probability: bool = True) -> Dict:
    spec = config.feature_spec
    out = {n: spec.parse_spec()[n] if n in spec else tf.io.FixedLenFeature([], tf.string, "") for n in names}
    if with_probability:
        out[SAMPLING_PROBABILITY] = tf.io.FixedLenFeature([], tf.float32, default_value=1.0)
    return out


def make_datasets(config: RetrievalJobConfig, data_dir: str, has_validation: bool):
    """(train, validation-or-None) tf.data pipelines of feature dicts over the run's TFRecord shards."""
    names = list(dict.fromkeys(config.query_features + config.candidate_features))
    spec = _parse_spec(config, names)
    t = config.training
    train = tfrecord_dataset(list_shards(data_dir, "train"), spec, t.batch_size, shuffle_buffer=t.shuffle_buffer,
                             seed=t.seed, cache=t.cache, drop_remainder=True)
    val = tfrecord_dataset(list_shards(data_dir, "validation"), spec, t.batch_size, cache=t.cache) if has_validation else None
    return train, val


def read_split(config: RetrievalJobConfig, run_dir: str, split: str) -> Dict[str, np.ndarray]:
    """A split's query features plus user_id and item_id, in file order."""
    names = list(dict.fromkeys(config.query_features + ["user_id", "item_id"]))
    return read_columns(list_shards(os.path.join(run_dir, "data"), split), _parse_spec(config, names, False))


def read_catalog(config: RetrievalJobConfig, run_dir: str) -> Dict[str, np.ndarray]:
    """Every candidate's features as written at training time (what export indexes unless given a new catalog)."""
    return read_columns(list_shards(os.path.join(run_dir, "data"), "catalog"), _parse_spec(config, config.candidate_features, False))


def evaluate_retrieval_run(config: RetrievalJobConfig, run_dir: str, model: TwoTowerModel, split: str = "test",
                           ground_truth=None):
    """Full-catalog reports of the model and popularity on a split, plus (synthetic) preferred-item recall."""
    test = read_split(config, run_dir, split)
    if config.evaluation.max_test_queries:
        test = {k: v[: config.evaluation.max_test_queries] for k, v in test.items()}
    train = read_columns(list_shards(os.path.join(run_dir, "data"), "train"), _parse_spec(config, ["user_id", "item_id"], False))
    catalog = read_catalog(config, run_dir)
    indexer = CatalogIndexer(catalog[model.config.candidate_id])
    targets = indexer.codes(test["item_id"])
    exclude_seen = config.evaluation.exclude_seen
    if exclude_seen is None:
        exclude_seen = config.split.protocol == "leave_last_out"
    common = dict(protocol=f"{config.split.protocol} split, {split}", users=test["user_id"],
                  recall_ks=config.evaluation.recall_ks,
                  exclude=seen_items(train["user_id"], train["item_id"], test["user_id"], indexer) if exclude_seen else None)
    candidates = model.candidate_tower.embed(catalog)
    queries = {n: test[n] for n in config.query_features}
    reports = [
        model_report(model.query_tower, queries, candidates, targets, name="two-tower", **common),
        popularity_report(train["item_id"], indexer, targets, name="popularity", **common),
    ]
    extra = {}
    if ground_truth is not None:
        extra.update(_preferred_recall(model, queries, test["user_id"], candidates, indexer, train, ground_truth))
    return reports, extra


def _preferred_recall(model, queries, users, candidates, indexer, train, ground_truth, k: int = 10) -> Dict[str, float]:
    """Synthetic data: recall@k of each test user's true favourite items, recommending without a search query."""
    _, first = np.unique(users.astype(str), return_index=True)
    first = first[:2000]
    request = {n: v[first] for n, v in queries.items()}
    if "query" in request:
        request["query"] = np.full(len(first), "", dtype=object)
    ranked = top_k_items(model.query_tower.embed(request), candidates, indexer.item_ids, k)
    codes = indexer.codes(train["item_id"], strict=False)
    popular = indexer.item_ids[np.argsort(-np.bincount(codes[codes >= 0], minlength=len(indexer.item_ids)), kind="stable")[:k]]
    from tfrec.training.metrics import recall_at_k

    preferred = [set(p.tolist()) for p in ground_truth.preferred_items(users[first].astype(object), k)]
    return {
        f"preferred_recall@{k}": recall_at_k([list(r) for r in ranked], preferred, k),
        f"popularity_preferred_recall@{k}": recall_at_k([list(popular)] * len(first), preferred, k),
    }


def restore_retrieval_run(run_dir: str):
    """(config, fitted features, model with the best weights) of a finished retrieval run."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir} not found: train one with `tfrec train retrieval`")
    config = load_retrieval_config(os.path.join(run_dir, "config.yaml"))
    fitted = FittedFeatures.load(os.path.join(run_dir, "features"))
    model = build_two_tower_model(config.model, fitted)
    return config, fitted, restore_best_weights(model, run_dir, "tfrec train retrieval")
