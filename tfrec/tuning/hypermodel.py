"""A keras-tuner HyperModel for any tfrec job: a trial is the base job config with the sampled values applied.

The model-specific part is a small `TuningJob` adapter (see `tfrec.tuning.ctr` for the CTR model): it prepares the
data once, builds an uncompiled model from a config, makes the (train, validation) datasets for a config, and
exports a trained model. Everything else (search space, strategy, optimizer, per-trial datasets, the search loop)
is shared, so a new model only writes an adapter.
"""

from __future__ import annotations

import abc
from typing import Any, Dict, List, Optional, Tuple

import keras_tuner as kt
import tensorflow as tf

from tfrec.config import ConfigError
from tfrec.training.trainer import configure_mixed_precision, make_optimizer
from tfrec.tuning.space import SearchSpace, apply_to_config, define


class TuningJob(abc.ABC):
    """What the tuner needs from a model's training job (the adapter protocol).

    `base_config` is a job config dataclass with a `training: TrainingConfig` section (optimizer, batch size,
    strategy, seed, verbosity); hyperparameter paths point into it. The search calls, in order:

    1. `prepare(work_dir, log)` once per process, before the tuner exists: examples, splits, fitted features,
       TFRecords, kept under `work_dir` so a rerun (or another worker sharing the directory) can reuse them;
    2. per trial `build_model(config)` inside the strategy scope (the search compiles it with the trial's
       `training.optimizer`), then `datasets(config)` and `callbacks(config)` for `fit`;
    3. for the best trial, optionally `evaluate(config, model)` and `export_best(config, model, base_dir)`.
    """

    name: str = "model"  # shown in logs and used as the exported model's name
    fixed_paths: Tuple[str, ...] = ()  # config prefixes `prepare` reads once, so they cannot be tuned

    @property
    @abc.abstractmethod
    def base_config(self) -> Any:
        """The job config every trial starts from."""

    @abc.abstractmethod
    def prepare(self, work_dir: str, log=print) -> None:
        """Prepares the data the trials share under `work_dir` (idempotent; safe when processes share the dir)."""

    @abc.abstractmethod
    def build_model(self, config: Any) -> tf.keras.Model:
        """An uncompiled model for `config` (called inside the distribution strategy's scope)."""

    @abc.abstractmethod
    def datasets(self, config: Any) -> Tuple[tf.data.Dataset, Optional[tf.data.Dataset]]:
        """(train, validation) pipelines for `config`, so batch size and the like can be tuned."""

    @abc.abstractmethod
    def export_best(self, config: Any, model: tf.keras.Model, base_dir: str) -> str:
        """Exports the best trial's trained model under `base_dir`; returns the version directory."""

    def callbacks(self, config: Any) -> List[tf.keras.callbacks.Callback]:
        """Callbacks run before the tuner's own, e.g. one that adds a full-catalog metric to the epoch logs."""
        return []

    def evaluate(self, config: Any, model: tf.keras.Model) -> Optional[Dict[str, float]]:
        """Held-out (test) metrics of the best model, or None when the job has none."""
        return None


class ConfigHyperModel(kt.HyperModel):
    """Builds, compiles and fits the model of `job.base_config` + the trial's hyperparameter values."""

    def __init__(self, job: TuningJob, space: SearchSpace, strategy: Optional[tf.distribute.Strategy] = None):
        super().__init__(name=f"{job.name}_hypermodel", tunable=True)
        self.job = job
        self.space = space
        self.strategy = strategy or tf.distribute.get_strategy()

    def trial_config(self, hp: kt.HyperParameters) -> Any:
        """The job config of a trial; raises FailedTrialError when the values make an invalid config."""
        overrides = define(hp, self.space)
        try:
            return apply_to_config(self.job.base_config, overrides)
        except ConfigError as exc:
            # A failed (not invalid) trial is not retried: the same values would fail again.
            raise kt.errors.FailedTrialError(f"the values {overrides} make an invalid config: {exc}") from exc

    def build(self, hp: kt.HyperParameters) -> tf.keras.Model:
        config = self.trial_config(hp)
        training = config.training
        tf.keras.utils.set_random_seed(training.seed)
        configure_mixed_precision(training.mixed_precision)
        with self.strategy.scope():
            model = self.job.build_model(config)
            model.compile(optimizer=make_optimizer(training.optimizer))
        return model

    def fit(self, hp: kt.HyperParameters, model: tf.keras.Model, *args, **kwargs):
        """Trains on the datasets of this trial's config; keras-tuner's kwargs (epochs, callbacks) win.

        Positional `search()` arguments are ignored: the data comes from the job, per trial."""
        config = self.trial_config(hp)
        train, validation = self.job.datasets(config)
        training = config.training
        kwargs.setdefault("epochs", training.epochs)
        kwargs.setdefault("steps_per_epoch", training.steps_per_epoch)
        kwargs.setdefault("verbose", training.verbose)
        kwargs["callbacks"] = self.job.callbacks(config) + list(kwargs.get("callbacks") or [])
        return model.fit(train, validation_data=validation, **kwargs)
