"""The two models an online update can continue, behind one interface: rebuild from the training run, warm-start
from a SavedModel version, train on TFRecords, score the guardrail head and export.

- `ctr`: the logistic CTR model of a `tfrec train ctr` run; the guardrail scores its label (P(click)).
- `ranker`: the DCN ranker of a `tfrec train ranker` run; the guardrail scores one binary head's position-free
  serving probability (what the export serves). The position tower is not in the export, so it restarts neutral
  (zero-initialised) and relearns the position bias from the new impressions.

The model is rebuilt from the run's config and fitted features (vocabularies, statistics), so an update keeps
the run's vocabularies: ids first seen after the run share the out-of-vocabulary buckets until the next full
training run. The optimizer starts fresh (its slots are not exported), at the update's learning rate.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfrec.export.saved_model import default_row
from tfrec.features.spec import FeatureSpec
from tfrec.features.stats import FittedFeatures
from tfrec.online.warm_start import WarmStartReport, warm_start_from_saved_model
from tfrec.training.trainer import TrainingConfig

__all__ = ["BuildOptimizerFirst", "CARD_MODELS", "UpdateModel", "load_update_model", "run_job", "warm_start_summary"]

CARD_MODELS = {"ctr": "logistic_ctr", "ranker": "dcn_ranker"}  # `model` in an export's card


def run_job(run_dir: str) -> str:
    """Which job wrote a run directory: job.json's `job`, or `ctr` (the CTR job writes no job.json)."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir} not found")
    marker = os.path.join(run_dir, "job.json")
    if not os.path.exists(marker):
        return "ctr"
    with open(marker, encoding="utf-8") as f:
        return str(json.load(f).get("job"))


@dataclasses.dataclass
class UpdateModel:
    """A training run's model, ready to be rebuilt, warm-started, trained, scored and exported."""

    kind: str  # ctr | ranker
    run_dir: str
    config: object  # the run's CTRJobConfig / RankerJobConfig
    fitted: FittedFeatures
    head: str  # the label / head the guardrail scores
    labels: List[str]  # label columns the training TFRecords need
    new_model: Callable[[], tf.keras.Model]  # the run's model, freshly initialised
    datasets: Callable[[str, TrainingConfig], tf.data.Dataset]  # (data dir, training) -> the train split's batches
    scores: Callable[[tf.keras.Model, Dict[str, np.ndarray]], np.ndarray]  # the guardrail head's probabilities
    exporter: Callable  # export_ctr / export_ranker

    @property
    def spec(self) -> FeatureSpec:
        """Every feature of the run (the examples need them all; the ranker's position feeds training only)."""
        return self.config.feature_spec

    @property
    def serving_output(self) -> str:
        """The SavedModel output the guardrail reads."""
        return f"{self.head}_probability"

    @property
    def training(self) -> TrainingConfig:
        return self.config.training

    def build(self, saved_model_dir: Optional[str] = None, loaded=None) -> tf.keras.Model:
        """The run's model, built (called on one default row) and, with `saved_model_dir`, warm-started from that
        SavedModel (`loaded`: the same, already loaded); the WarmStartReport is on `model.warm_start`."""
        model = self.new_model()
        model(default_row(model.encoder.spec))
        model.warm_start = None
        if saved_model_dir is not None:
            tower = getattr(model, "position_tower", None)  # training only: no export holds it
            model.warm_start = warm_start_from_saved_model(model, saved_model_dir, loaded=loaded,
                                                           train_only=tower.variables if tower is not None else ())
        return model

    def train_dataset(self, data_dir: str, training: TrainingConfig) -> tf.data.Dataset:
        """Batches of the `train` TFRecords under `data_dir` with the labels the model trains on."""
        return self.datasets(data_dir, training)

    def predict(self, model: tf.keras.Model, columns: Dict[str, np.ndarray]) -> np.ndarray:
        """The guardrail head's serving probability for in-memory columns."""
        return np.asarray(self.scores(model, columns), dtype=np.float64).reshape(-1)

    def export(self, model: tf.keras.Model, model_base_path: str, info: dict, warmup_rows) -> str:
        """Writes the next version under `model_base_path` (TF Serving's base path: `<base dir>/<name>`)."""
        base = os.path.abspath(model_base_path)
        return self.exporter(model, os.path.dirname(base), os.path.basename(base), None, info, False, warmup_rows)


def load_update_model(kind: str, run_dir: str, head: Optional[str] = None) -> UpdateModel:
    """The UpdateModel of `run_dir`, which must have been written by the `kind` job; `head`: the ranker head the
    guardrail scores (default click, else the first binary head)."""
    job = run_job(run_dir)
    if job != kind:
        raise ValueError(f"{run_dir} is a {job} run, not a {kind} run: pass --model {job} or a {kind} run_dir")
    fitted = FittedFeatures.load(os.path.join(run_dir, "features"))
    return _ctr(run_dir, fitted, head) if kind == "ctr" else _ranker(run_dir, fitted, head)


def _ctr(run_dir: str, fitted: FittedFeatures, head: Optional[str]) -> UpdateModel:
    from tfrec.export.ctr import export_ctr
    from tfrec.models.ctr import build_ctr_model
    from tfrec.training.ctr_job import load_run_config, make_datasets, predict

    config = load_run_config(run_dir)
    label = config.model.label
    if head not in (None, label):
        raise ValueError(f"the CTR model of {run_dir} predicts {label!r}, not {head!r}")

    def datasets(data_dir, training):
        return make_datasets(dataclasses.replace(config, training=training), data_dir, False)[0]

    return UpdateModel("ctr", run_dir, config, fitted, label, [label], lambda: build_ctr_model(config.model, fitted),
                       datasets, predict, export_ctr)


def _ranker(run_dir: str, fitted: FittedFeatures, head: Optional[str]) -> UpdateModel:
    from tfrec.export.ranker import export_ranker
    from tfrec.models.ranker import TASKS, build_ranker
    from tfrec.training.ranker_job import load_ranker_run_config, make_datasets, predict_ranker

    config = load_ranker_run_config(run_dir)
    binary = [t for t in config.model.tasks if TASKS[t] == "binary"]
    if not binary:
        raise ValueError(f"the ranker of {run_dir} has no binary head ({list(config.model.tasks)}): the guardrail "
                         "compares AUC or log loss of a 0/1 label")
    head = head or ("click" if "click" in binary else binary[0])
    if head not in binary:
        raise ValueError(f"head {head!r} is not a binary head of the ranker of {run_dir}; it has {binary}")
    spec = config.feature_spec

    def datasets(data_dir, training):
        return make_datasets(config, data_dir, False, training)[0]

    def score(model, columns):
        return predict_ranker(model, spec, columns)[head]["serving"]

    return UpdateModel("ranker", run_dir, config, fitted, head, list(config.model.tasks),
                       lambda: build_ranker(config.model, fitted), datasets, score, export_ranker)


class BuildOptimizerFirst(tf.keras.callbacks.Callback):
    """Creates the optimizer's slot variables before the first step: created inside it, as Keras does by default,
    they make tf.function trace the training step twice (once creating them, once using them)."""

    def on_train_begin(self, logs=None):
        self.model.optimizer.build(self.model.trainable_variables)


def warm_start_summary(report: Optional[WarmStartReport]) -> Dict[str, object]:
    """What a warm start copied, for the update's result and the model card."""
    if report is None:
        return {}
    return {"variables_copied": len(report.copied), "not_in_export": list(report.not_in_export)}
