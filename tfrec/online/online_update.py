"""Online updates with a guardrail: continue the serving CTR model or ranker on the traffic logged since its
version, and export the result as the next version only when it is not worse on the newest traffic.

    serving version (newest, a number, or a models.config label) ─► its card's event-log offset (0 after offline
    training) ─► events since then (online_examples) ─► impressions joined with the run's catalog and users ─►
    train: older requests │ eval: the newest slice ─► the run's model rebuilt and warm-started from the serving
    SavedModel (checked: it reproduces the serving predictions) ─► fit (tf.data over TFRecords, TensorBoard) ─►
    candidate and serving SavedModel scored on the same eval slice ─► guardrail ─► promoted: export version N+1
    (its card records where it started, the offsets consumed and both models' metrics) │ blocked: nothing written

The model server polling the base path then hot-loads version N+1 (a version appears by an atomic rename, so it
never sees a half-written one). Every update, promoted or not, leaves a directory under `updates_dir` with its
config, TFRecords, TensorBoard logs, history and `result.json`. Configured by configs/online_update.yaml.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Dict, List, Literal, Optional

import numpy as np

from tfrec.config import ConfigError, dump_config, load_config
from tfrec.data.examples import take
from tfrec.data.tfrecord import write_tfrecords
from tfrec.export.saved_model import existing_versions, load_model_info
from tfrec.online.online_examples import (build_online_examples, load_catalog_and_users, read_new_events,
                                          split_newest, time_range)
from tfrec.online.online_models import (CARD_MODELS, BuildOptimizerFirst, UpdateModel, load_update_model,
                                        warm_start_summary)
from tfrec.online.update_report import GUARDRAIL_METRICS, UpdateResult, guardrail_decision, score
from tfrec.online.warm_start import WarmStartError
from tfrec.training.trainer import TrainingConfig

__all__ = ["EvalSliceConfig", "GuardrailConfig", "OnlineUpdateConfig", "UpdateResult", "UpdateTarget",
           "UpdateTrainingConfig", "load_online_update_config", "resolve_serving_version", "run_online_update"]

REPRODUCE_TOLERANCE = 1e-5  # max |Δp| between the warm-started model and the serving SavedModel before training
ID_COLUMNS = ("request_id", "user_id", "item_id", "timestamp")


@dataclasses.dataclass
class UpdateTarget:
    """One model an update can continue: its training run and where its versions are served from."""

    run_dir: str
    model_base_path: str  # TF Serving's base path: the directory of the integer version directories
    model_name: Optional[str] = None  # its name in models_config (default: the base path's last directory)
    serving_version: str = "latest"  # latest | a version number | a version label of models_config
    head: Optional[str] = None  # ranker: the binary head the guardrail scores (default: click)

    def validate(self) -> None:
        for name in ("run_dir", "model_base_path", "serving_version"):
            if not str(getattr(self, name)).strip():
                raise ConfigError("must not be empty", path=name)

    @property
    def name(self) -> str:
        return self.model_name or os.path.basename(os.path.normpath(self.model_base_path))


@dataclasses.dataclass
class EvalSliceConfig:
    """The newest traffic both models are scored on: the newest `hours` of requests, else the newest fraction."""

    fraction: float = 0.2
    hours: Optional[float] = None

    def validate(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ConfigError(f"must be in (0, 1), got {self.fraction!r}", path="fraction")
        if self.hours is not None and not self.hours > 0:
            raise ConfigError(f"must be positive (or null: use fraction), got {self.hours!r}", path="hours")


@dataclasses.dataclass
class UpdateTrainingConfig:
    """How the candidate trains; unset values come from the run's training config."""

    epochs: int = 2
    batch_size: Optional[int] = None  # null: the run's
    learning_rate: Optional[float] = None  # null: the run's times learning_rate_scale
    learning_rate_scale: float = 0.5  # smaller steps than from scratch: the model is already trained
    shuffle_buffer: int = 100_000
    seed: int = 42
    verbose: int = 1  # Keras progress: 0 silent, 1 bar, 2 a line per epoch

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"must be >= 1, got {self.epochs!r}", path="epochs")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"must be >= 1, got {self.batch_size!r}", path="batch_size")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"must be positive, got {self.learning_rate!r}", path="learning_rate")
        if not self.learning_rate_scale > 0:
            raise ConfigError(f"must be positive, got {self.learning_rate_scale!r}", path="learning_rate_scale")
        if self.shuffle_buffer < 0:
            raise ConfigError(f"must be >= 0, got {self.shuffle_buffer!r}", path="shuffle_buffer")

    def resolve(self, run: TrainingConfig) -> TrainingConfig:
        """The run's TrainingConfig with this update's epochs, batch size and learning rate (no early stopping:
        there is no validation split; the eval slice is kept for the guardrail)."""
        rate = self.learning_rate or run.optimizer.learning_rate * self.learning_rate_scale
        return dataclasses.replace(
            run, epochs=self.epochs, batch_size=self.batch_size or run.batch_size, steps_per_epoch=None,
            optimizer=dataclasses.replace(run.optimizer, learning_rate=rate), early_stopping_patience=0,
            shuffle_buffer=self.shuffle_buffer, cache=False, num_shards=1, seed=self.seed, verbose=self.verbose)


@dataclasses.dataclass
class GuardrailConfig:
    """When a candidate may replace the serving version: on every listed metric, not worse by more than its
    tolerance. AUC alone misses a miscalibrated candidate (it only ranks), log loss alone can trade ranking for
    calibration; the default demands both."""

    # metric -> tolerance: auc, grouped_auc (per request): higher is better; log_loss: lower is better. A negative
    # tolerance demands an improvement of at least -tolerance.
    metrics: Dict[str, float] = dataclasses.field(default_factory=lambda: {"auc": 0.0, "log_loss": 0.0})
    min_eval_positives: int = 20  # fewer positive (or negative) labels in the eval slice is an error

    def validate(self) -> None:
        if not self.metrics:
            raise ConfigError("name at least one metric", path="metrics")
        for metric, tolerance in self.metrics.items():
            if metric not in GUARDRAIL_METRICS:
                raise ConfigError(f"unknown metric {metric!r}; choose from {sorted(GUARDRAIL_METRICS)}",
                                  path=f"metrics.{metric}")
            if not math.isfinite(tolerance):
                raise ConfigError(f"must be a finite number, got {tolerance!r}", path=f"metrics.{metric}")
        if self.min_eval_positives < 1:
            raise ConfigError(f"must be >= 1, got {self.min_eval_positives!r}", path="min_eval_positives")


@dataclasses.dataclass
class OnlineUpdateConfig:
    """configs/online_update.yaml: every knob of `tfrec online-update`."""

    model: Literal["ctr", "ranker"] = "ctr"  # which target below to update (the CLI's --model)
    ctr: UpdateTarget = dataclasses.field(default_factory=lambda: UpdateTarget("runs/ctr", "models/ctr"))
    ranker: UpdateTarget = dataclasses.field(default_factory=lambda: UpdateTarget("runs/ranker", "models/ranker"))
    event_log: str = "online/events.sqlite"
    start_offset: Optional[int] = None  # null: the offset in the serving version's card (0 after offline training)
    label_delay_seconds: float = 1800.0  # impressions this close to the newest event wait for their clicks
    min_new_impressions: int = 1000
    catalog: Optional[str] = None  # a dataset directory whose catalog and users to join (null: the run's data)
    fill_missing_features: bool = True  # false: features logged events lack (e.g. device) are an error
    models_config: Optional[str] = None  # TF Serving's models.config, for a serving_version given as a label
    eval: EvalSliceConfig = dataclasses.field(default_factory=EvalSliceConfig)
    training: UpdateTrainingConfig = dataclasses.field(default_factory=UpdateTrainingConfig)
    guardrail: GuardrailConfig = dataclasses.field(default_factory=GuardrailConfig)
    updates_dir: str = "runs/online_updates"

    def validate(self) -> None:
        if self.start_offset is not None and self.start_offset < 0:
            raise ConfigError(f"must be >= 0, got {self.start_offset!r}", path="start_offset")
        if self.label_delay_seconds < 0:
            raise ConfigError(f"must be >= 0, got {self.label_delay_seconds!r}", path="label_delay_seconds")
        if self.min_new_impressions < 1:
            raise ConfigError(f"must be >= 1, got {self.min_new_impressions!r}", path="min_new_impressions")
        version = self.target.serving_version
        if version != "latest" and not version.isdigit() and not self.models_config:
            raise ConfigError(f"serving_version {version!r} is a version label: set models_config to the "
                              "models.config that defines it", path=f"{self.model}.serving_version")

    @property
    def target(self) -> UpdateTarget:
        return getattr(self, self.model)


def load_online_update_config(path: str, overrides: Optional[Dict] = None) -> OnlineUpdateConfig:
    return load_config(path, OnlineUpdateConfig, overrides)


def resolve_serving_version(target: UpdateTarget, models_config: Optional[str] = None):
    """(version, path) of the version the server runs now, as `target.serving_version` names it."""
    base = target.model_base_path
    versions = existing_versions(base)
    if not versions:
        raise FileNotFoundError(f"{base} has no exported version to warm-start from: export the run first "
                                f"(tfrec export --run {target.run_dir} --base-dir {os.path.dirname(base) or '.'} "
                                f"--name {os.path.basename(os.path.normpath(base))})")
    wanted = target.serving_version
    if wanted == "latest":
        version, how = versions[-1], "the newest"
    elif wanted.isdigit():
        version, how = int(wanted), "serving_version"
    else:
        from tfrec.server.config import load_model_server_config

        models = {m.name: m for m in load_model_server_config(models_config).model_config_list.config}
        if target.name not in models:
            raise ValueError(f"{models_config} configures no model {target.name!r}; it has {sorted(models)}")
        labels = dict(models[target.name].version_labels)
        if wanted not in labels:
            raise ValueError(f"{models_config}: model {target.name!r} has no version label {wanted!r}; it has "
                             f"{sorted(labels) or 'none'}")
        version, how = int(labels[wanted]), f"label {wanted!r}"
    if version not in versions:
        raise FileNotFoundError(f"version {version} ({how}) is not under {base}; it has versions {versions}")
    return version, os.path.join(base, str(version))


def _next_offset(card: dict) -> int:
    """Where the version's training stopped reading the event log (0 for an offline export)."""
    return int(((card.get("online_update") or {}).get("event_log") or {}).get("until_offset", 0))


def _update_dir(config: OnlineUpdateConfig, serving_version: int) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = os.path.join(config.updates_dir, f"{config.target.name}-v{serving_version}-{stamp}")
    path, n = base, 1
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}"
    os.makedirs(path)
    return path


def _check_eval_labels(labels: np.ndarray, label: str, minimum: int, span) -> None:
    positives = int(np.sum(labels == 1))
    negatives = int(len(labels) - positives)
    if min(positives, negatives) < minimum:
        raise ValueError(f"the eval slice ({len(labels)} impressions, timestamps {span}) has {positives} positive and "
                         f"{negatives} negative {label!r} labels, fewer than min_eval_positives={minimum} of each: "
                         "the guardrail cannot compare the models on it; widen eval.fraction / eval.hours or wait "
                         "for more traffic")


def run_online_update(config: OnlineUpdateConfig, log=print) -> UpdateResult:
    """One update of `config.model` (module docstring); returns what it read, measured and decided."""
    from tfrec.export.loading import saved_model_predictor
    from tfrec.training.trainer import fit

    target = config.target
    model = load_update_model(config.model, target.run_dir, target.head)
    version, serving_path = resolve_serving_version(target, config.models_config)
    card = load_model_info(serving_path)
    if card.get("model") != CARD_MODELS[config.model]:
        raise ValueError(f"{serving_path} holds a {card.get('model')} model, not the {CARD_MODELS[config.model]} "
                         f"of a {config.model} run")
    since = config.start_offset if config.start_offset is not None else _next_offset(card)
    warnings = _warnings(config, model, card)

    catalog, users = load_catalog_and_users(model.config.data, config.catalog)
    read = read_new_events(config.event_log, since, config.label_delay_seconds, set(catalog["item_id"].tolist()))
    columns, filled = build_online_examples(read, catalog, users, model.spec, model.labels,
                                            config.min_new_impressions, config.fill_missing_features)
    if filled:
        warnings.append(f"logged events give no value for {filled}: they take the spec's default in this update")
    train_rows, eval_rows = split_newest(columns, config.eval.fraction, config.eval.hours)
    train, evaluate = take(columns, train_rows), take(columns, eval_rows)
    if not len(train_rows):
        raise ValueError(f"the eval slice takes all {len(eval_rows)} new impressions: nothing is left to train on; "
                         "lower eval.fraction / eval.hours")
    _check_eval_labels(evaluate[model.head], model.head, config.guardrail.min_eval_positives, time_range(evaluate))
    log(f"online update of {target.name}: serving version {version}, events ({read.since_offset}, "
        f"{read.until_offset}], {len(train_rows)} train / {len(eval_rows)} eval impressions")

    update_dir = _update_dir(config, version)
    dump_config(config, os.path.join(update_dir, "update.yaml"))
    data_dir = os.path.join(update_dir, "data")
    keep = list(dict.fromkeys(model.spec.names + model.labels + list(ID_COLUMNS)))
    write_tfrecords({k: train[k] for k in keep}, data_dir, "train", 1)
    write_tfrecords({k: evaluate[k] for k in keep}, data_dir, "eval", 1)

    serving = saved_model_predictor(serving_path, model.serving_output)
    serving_scores = serving(evaluate)
    built: List = []

    def build():
        candidate = model.build(serving_path, serving.loaded)
        gap = float(np.max(np.abs(model.predict(candidate, evaluate) - serving_scores)))
        if gap > REPRODUCE_TOLERANCE:
            raise WarmStartError(f"the {config.model} model rebuilt from {target.run_dir} and warm-started from "
                                 f"{serving_path} does not reproduce its predictions (max |Δp| = {gap:.3g}): was that "
                                 "version exported from this run (same features and vocabularies)?")
        built.append(gap)
        return candidate

    training = config.training.resolve(model.training)
    candidate, _ = fit(build, model.train_dataset(data_dir, training), None, training, update_dir,
                       callbacks=[BuildOptimizerFirst()])
    candidate_scores = model.predict(candidate, evaluate)

    labels, groups = evaluate[model.head], evaluate["request_id"]
    result = UpdateResult(
        model=config.model, name=target.name, run_dir=target.run_dir, model_base_path=target.model_base_path,
        serving_version=version, serving_path=serving_path, event_log=config.event_log,
        since_offset=read.since_offset, until_offset=read.until_offset, last_offset=read.last_offset,
        events_read=len(read.offsets), events_held_back=read.held_back, unknown_item_events=read.unknown_item_events,
        train_examples=len(train_rows), eval_examples=len(eval_rows), train_time_range=time_range(train),
        eval_time_range=time_range(evaluate), head=model.head, eval_positive_rate=float(np.mean(labels)),
        guardrail=dict(config.guardrail.metrics),
        serving_metrics=score(labels, serving_scores, groups),
        candidate_metrics=score(labels, candidate_scores, groups),
        warm_start=dict(warm_start_summary(candidate.warm_start), max_abs_difference=built[0]),
        filled_features=filled, warnings=warnings, update_dir=update_dir)
    result.promoted, result.reason = guardrail_decision(result.guardrail, result.serving_metrics,
                                                        result.candidate_metrics)
    if result.promoted:
        from tfrec.export.run_info import sample_rows

        rows = sample_rows(update_dir, "train", candidate.encoder.spec)
        result.new_version_path = model.export(candidate, target.model_base_path, _card_info(model, result), rows)
        result.new_version = int(os.path.basename(result.new_version_path))
    with open(os.path.join(update_dir, "result.json"), "w", encoding="utf-8") as f:
        json.dump(result.to_dict(), f, indent=2)
    log(result.format())
    return result


def _warnings(config: OnlineUpdateConfig, model: UpdateModel, card: dict) -> List[str]:
    """Things that may make the update misleading without making it wrong."""
    out = []
    if card.get("run_dir") and os.path.realpath(card["run_dir"]) != os.path.realpath(model.run_dir):
        out.append(f"the serving version was exported from run {card['run_dir']}, not {model.run_dir}")
    logged = ((card.get("online_update") or {}).get("event_log") or {}).get("path")
    if logged and os.path.realpath(logged) != os.path.realpath(config.event_log):
        out.append(f"the serving version's offsets are of event log {logged}, not {config.event_log}")
    return out


def _card_info(model: UpdateModel, result: UpdateResult) -> dict:
    """The promoted version's card: the run's facts, the update's training data and both models' eval metrics."""
    from tfrec.export.run_info import data_splits, run_card_info

    info = run_card_info(model.run_dir, model.kind, model.config)
    info["offline_training_data"] = info.pop("training_data")
    info.pop("metrics", None)
    info["training_data"] = {
        "source": {"event_log": os.path.abspath(result.event_log),
                   "offsets": f"({result.since_offset}, {result.until_offset}]"},
        "splits": data_splits(os.path.join(result.update_dir, "data")),
    }
    plain = result.to_dict()  # NaN (an undefined grouped AUC) as null
    info["metrics"] = {"eval": {"head": result.head, "examples": result.eval_examples,
                                "positive_rate": result.eval_positive_rate,
                                f"serving_v{result.serving_version}": plain["serving_metrics"],
                                "candidate": plain["candidate_metrics"]}}
    info["online_update"] = result.card_section()
    return info

