"""The generic tuning layer with a toy adapter (not the CTR model): the TuningJob protocol is all a model needs.

A toy regression job runs Bayesian and Hyperband searches, restores its best epoch, and shows how failures surface.
"""

import csv
import dataclasses
import json
import os
from typing import Literal

import numpy as np
import pytest

import tfrec  # noqa: F401  (routes tf.keras to tf-keras before keras_tuner imports it)
import keras_tuner as kt
import tensorflow as tf
from tfrec._tfrs import tfrs
from tfrec.config import from_dict, load_config
from tfrec.training.ctr_job import load_ctr_config
from tfrec.training.trainer import OptimizerConfig, TrainingConfig
from tfrec.tuning import ConfigHyperModel, SearchFailedError, SearchSpace, TuningJob, format_trials, run_search


@dataclasses.dataclass
class ToyModelConfig:
    units: int = 4
    activation: Literal["relu", "linear"] = "relu"


def _toy_training() -> TrainingConfig:
    return TrainingConfig(batch_size=64, epochs=2, verbose=0, monitor="val_rmse", monitor_mode="min",
                          optimizer=OptimizerConfig(name="adam", learning_rate=0.01))


@dataclasses.dataclass
class ToyJobConfig:
    model: ToyModelConfig = dataclasses.field(default_factory=ToyModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=_toy_training)


class ToyRegressor(tfrs.models.Model):
    def __init__(self, config: ToyModelConfig):
        super().__init__()
        self.hidden = tf.keras.layers.Dense(config.units, activation=config.activation)
        self.out = tf.keras.layers.Dense(1)
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(), metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse")]
        )

    def call(self, x):
        return self.out(self.hidden(x))

    def compute_loss(self, inputs, training=False):
        x, y = inputs
        return self.task(labels=y, predictions=self(x, training=training), training=training)


class ToyJob(TuningJob):
    """y = x·w + noise, in memory; `broken_data` (activations) makes those trials' fit fail, to test failures."""

    name = "toy"

    def __init__(self, broken_data=()):
        self._base = ToyJobConfig()
        self.broken_data = broken_data
        rng = np.random.default_rng(0)
        x = rng.normal(size=(768, 3)).astype(np.float32)
        y = (x @ np.array([1.5, -2.0, 0.5], np.float32) + 0.1 * rng.normal(size=768)).astype(np.float32)
        self.train, self.validation = (x[:512], y[:512]), (x[512:], y[512:])
        self.prepared_in = None

    @property
    def base_config(self):
        return self._base

    def prepare(self, work_dir, log=print):
        self.prepared_in = work_dir

    def build_model(self, config):
        return ToyRegressor(config.model)

    def datasets(self, config):
        if config.model.activation in self.broken_data:
            raise ValueError(f"no data for {config.model.activation} today")
        batch = config.training.batch_size
        return (tf.data.Dataset.from_tensor_slices(self.train).batch(batch),
                tf.data.Dataset.from_tensor_slices(self.validation).batch(batch))

    def export_best(self, config, model, base_dir):
        path = os.path.join(base_dir, self.name, "weights")
        model.save_weights(path)
        return path


def _space(tmp_path, tuner, hyperparameters=None):
    hyperparameters = hyperparameters or [
        {"name": "units", "path": "model.units", "type": "choice", "values": [2, 8]},
        {"name": "learning_rate", "path": "training.optimizer.learning_rate", "type": "float", "min": 0.005,
         "max": 0.1, "sampling": "log"},
    ]
    tuner = {"objective": "val_rmse", "direction": "min", "directory": str(tmp_path), "project_name": "toy", **tuner}
    return from_dict(SearchSpace, {"tuner": tuner, "hyperparameters": hyperparameters})


def test_bayesian_search_on_a_toy_job_restores_the_best_epoch(tmp_path):
    job = ToyJob()
    space = _space(tmp_path, {"algorithm": "bayesian", "max_trials": 4, "num_initial_points": 2, "epochs": 3})
    result = run_search(job, space, log=lambda _: None, export_dir=str(tmp_path / "export"))
    assert job.prepared_in == os.path.join(str(tmp_path), "toy")
    saved = json.loads((tmp_path / "toy" / "trials.json").read_text())
    scores = [t["score"] for t in saved["trials"]]
    assert len(scores) == 4 and None not in scores
    assert result.best_score == min(scores) == saved["best_score"]
    best = load_config(result.best_config_path, ToyJobConfig)
    assert best.model.units == result.best_overrides["model.units"]
    chosen_rate = result.best_overrides["training.optimizer.learning_rate"]
    assert best.training.optimizer.learning_rate == pytest.approx(chosen_rate)

    # The exported weights are the best trial's best epoch: they reproduce its validation RMSE.
    hypermodel = ConfigHyperModel(job, space)
    hp = kt.HyperParameters()
    hp.values.update({"units": best.model.units, "learning_rate": best.training.optimizer.learning_rate})
    model = hypermodel.build(hp)
    model.load_weights(result.export_path).expect_partial()
    rmse = model.evaluate(job.datasets(best)[1], return_dict=True, verbose=0)["rmse"]
    assert rmse == pytest.approx(result.best_score, rel=1e-4)

    # When the best trial ran on another machine (no checkpoint here), its values are retrained for its best epochs.
    trial_dir = tmp_path / "toy" / "search" / f"trial_{result.best_trial_id}"
    for checkpoint in trial_dir.glob("checkpoint*"):
        checkpoint.unlink()
    lines = []
    again = run_search(job, space, log=lines.append, export_dir=str(tmp_path / "export2"))
    assert any("ran elsewhere: retraining its values" in line for line in lines), lines
    assert again.best_trial_id == result.best_trial_id and os.path.exists(again.export_path + ".index")


def test_hyperband_runs_brackets_with_growing_epochs(tmp_path):
    space = _space(tmp_path, {"algorithm": "hyperband", "max_epochs": 3, "factor": 3, "early_stopping_patience": 0})
    result = run_search(ToyJob(), space, log=lambda _: None)
    epochs = sorted({t["epochs"] for t in result.trials})
    assert epochs == [1, 3], result.trials
    assert result.best_score == min(t["score"] for t in result.trials if t["score"] is not None)


def test_a_search_where_every_trial_fails_says_why_and_still_writes_the_trials(tmp_path):
    space = _space(
        tmp_path, {"algorithm": "random", "max_trials": 2},
        [{"name": "activation", "path": "model.activation", "type": "choice", "values": ["linear"]},
         {"name": "learning_rate", "path": "training.optimizer.learning_rate", "type": "float", "min": 0.01,
          "max": 0.1}],
    )
    with pytest.raises(SearchFailedError, match="no trial completed; trial 0 failed with: ValueError: no data for li"
                                                ".*; every trial is in .*trials.csv"):
        run_search(ToyJob(broken_data={"linear"}), space, log=lambda _: None)
    saved = json.loads((tmp_path / "toy" / "trials.json").read_text())
    assert saved["best_trial_id"] is None and saved["best_score"] is None and saved["best_overrides"] == {}
    assert [t["status"] for t in saved["trials"]] == ["FAILED", "FAILED"]
    assert all(t["error"] == "ValueError: no data for linear today" for t in saved["trials"])
    rows = _csv(tmp_path / "toy" / "trials.csv")
    assert [(r["status"], r["val_rmse"], r["error"]) for r in rows] == [("FAILED", "", "ValueError: no data for "
                                                                          "linear today")] * 2
    assert not (tmp_path / "toy" / "best_config.yaml").exists()


def _csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_a_failed_trial_is_reported_with_its_error_beside_the_completed_ones(tmp_path):
    space = _space(
        tmp_path, {"algorithm": "random", "max_trials": 4, "seed": 1, "epochs": 1},
        [{"name": "activation", "path": "model.activation", "type": "choice", "values": ["relu", "linear"]},
         {"name": "units", "path": "model.units", "type": "choice", "values": [2, 8]}],
    )
    result = run_search(ToyJob(broken_data={"linear"}), space, log=lambda _: None)
    statuses = {t["hyperparameters"]["activation"]: t["status"] for t in result.trials}
    assert statuses == {"relu": "COMPLETED", "linear": "FAILED"}, result.trials
    failed = [t for t in result.trials if t["status"] == "FAILED"]
    assert all(t["error"] == "ValueError: no data for linear today" and t["score"] is None for t in failed)
    best = next(t for t in result.trials if t["trial_id"] == result.best_trial_id)
    assert best["status"] == "COMPLETED" and result.best_score == min(
        t["score"] for t in result.trials if t["score"] is not None)

    rows = {r["trial_id"]: r for r in _csv(tmp_path / "toy" / "trials.csv")}
    assert list(next(iter(rows.values()))) == ["trial_id", "status", "val_rmse", "best_epoch", "activation", "units",
                                               "error"]
    for t in result.trials:
        row = rows[t["trial_id"]]
        assert (row["status"], row["activation"], row["units"]) == (t["status"], t["hyperparameters"]["activation"],
                                                                    str(t["hyperparameters"]["units"]))
        assert row["error"] == t.get("error", "") and row["val_rmse"] == ("" if t["score"] is None else str(t["score"]))
    table = format_trials(result).splitlines()
    assert table[0].split() == ["trial", "status", "val_rmse", "activation", "units", "error"]
    for t in failed:
        line = next(line for line in table if line.startswith(t["trial_id"] + " "))
        assert "FAILED" in line and line.endswith("ValueError: no data for linear today")


class RecordingToyJob(ToyJob):
    """Keeps the config of every model it builds (one per trial)."""

    def __init__(self):
        super().__init__()
        self.built = []

    def build_model(self, config):
        self.built.append(config.model)
        return super().build_model(config)


def test_an_inactive_conditional_hyperparameter_keeps_the_base_value_and_shows_as_inactive(tmp_path):
    space = _space(
        tmp_path, {"algorithm": "random", "max_trials": 5, "seed": 2, "epochs": 1},
        [{"name": "activation", "path": "model.activation", "type": "choice", "values": ["relu", "linear"]},
         {"name": "units", "path": "model.units", "type": "choice", "values": [2, 8],
          "when": {"name": "activation", "values": ["relu"]}},
         {"name": "learning_rate", "path": "training.optimizer.learning_rate", "type": "float", "min": 0.005,
          "max": 0.1, "sampling": "log"}],
    )
    job = RecordingToyJob()
    base_units = job.base_config.model.units
    result = run_search(job, space, log=lambda _: None)
    assert len(result.trials) == 5 and {t["status"] for t in result.trials} == {"COMPLETED"}
    built = [(m.activation, m.units) for m in job.built]
    assert {a for a, _ in built} == {"relu", "linear"}, built
    # relu trials train the sampled units; linear ones the base config's, whatever value the oracle held.
    assert all(units in (2, 8) if activation == "relu" else units == base_units for activation, units in built)

    rows = {r["trial_id"]: r for r in _csv(tmp_path / "toy" / "trials.csv")}
    table = format_trials(result).splitlines()
    for t in result.trials:
        linear = t["hyperparameters"]["activation"] == "linear"
        assert ("units" in t["hyperparameters"]) != linear and (t.get("inactive") == ["units"]) == linear
        assert ("model.units" in t["overrides"]) != linear
        assert (rows[t["trial_id"]]["units"] == "") == linear
        line = next(line for line in table if line.startswith(t["trial_id"]))
        assert (" inactive " in line) == linear, line
    saved = json.loads((tmp_path / "toy" / "trials.json").read_text())
    assert saved["trials"] == result.trials
    best = load_config(result.best_config_path, ToyJobConfig)
    assert best.model.units == result.best_overrides.get("model.units", base_units)


def test_an_invalid_combination_fails_the_trial_with_the_config_error():
    base = load_ctr_config(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "ctr.yaml"),
                           {"training.optimizer.name": "ftrl"})

    class CTRConfigOnly(ToyJob):
        @property
        def base_config(self):
            return base

    space = from_dict(SearchSpace, {"hyperparameters": [
        {"name": "optimizer", "path": "training.optimizer.name", "type": "choice", "values": ["ftrl", "adam"]},
        {"name": "l1", "path": "training.optimizer.l1", "type": "float", "min": 0.0, "max": 0.5},
    ]})
    hypermodel = ConfigHyperModel(CTRConfigOnly(), space)
    hp = kt.HyperParameters()
    hp.values.update({"optimizer": "adam", "l1": 0.3})
    with pytest.raises(kt.errors.FailedTrialError, match="l1/l2 are FTRL settings"):
        hypermodel.trial_config(hp)
    hp.values["optimizer"] = "ftrl"
    assert hypermodel.trial_config(hp).training.optimizer.l1 == pytest.approx(0.3)
