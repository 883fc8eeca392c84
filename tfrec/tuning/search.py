"""The search: a keras-tuner tuner over a `ConfigHyperModel`, and what it leaves behind.

`<tuner.directory>/<tuner.project_name>/` (the tuning directory) holds

    prepared.json, features/, data/   the job's data, prepared once (see TuningJob.prepare)
    search/                           keras-tuner's project: oracle state, trial_*/ (trial.json, best-epoch weights)
    logs/<trial>/execution<n>/        TensorBoard per trial, with the HParams dashboard
    space.yaml                        the search space as run
    best_config.yaml                  the job config with the best values applied (`tfrec train ctr --config ...`)
    trials.json, trials.csv           every trial: status, score, values (inactive ones marked), error

Distributed tuning needs no code: with keras-tuner's KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP /
KERASTUNER_ORACLE_PORT set, the process whose id contains "chief" serves the oracle and writes the results, the others
run trials (docs/tuning.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence

import keras_tuner as kt
import tensorflow as tf
from keras_tuner.distribute import utils as distribute_utils

from tfrec.config import dump_config
from tfrec.training.trainer import make_strategy
from tfrec.tuning.hypermodel import ConfigHyperModel, TuningJob
from tfrec.tuning.results import SearchResult, best_row, trial_row, write_trials
from tfrec.tuning.space import SearchSpace, TunerConfig, apply_to_config, check_paths

PROJECT = "search"  # keras-tuner's project directory inside the tuning directory


class SearchFailedError(RuntimeError):
    """No trial completed (every trial failed, or keras-tuner gave up after consecutive failures)."""


def distributed_role() -> str:
    """`chief` or `worker` under keras-tuner's distribution env vars, else `single`."""
    if not distribute_utils.has_chief_oracle():
        return "single"
    return "chief" if distribute_utils.is_chief_oracle() else "worker"


def tuning_directory(space: SearchSpace) -> str:
    return os.path.join(space.tuner.directory, space.tuner.project_name)


def run_search(
    job: TuningJob,
    space: SearchSpace,
    log=print,
    export_dir: Optional[str] = None,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
) -> SearchResult:
    """Searches `space` for `job`, writes trials.json, trials.csv and best_config.yaml, and exports the best model if
    asked. Raises SearchFailedError (after writing the trials, with their errors) when no trial completed.

    `callbacks` are added to every trial's fit (they are deep-copied per trial, as keras-tuner does).
    """
    settings = space.tuner
    check_paths(space, job.base_config, job.fixed_paths)
    _check_algorithm_dependencies(settings)
    role = distributed_role()
    directory = tuning_directory(space)
    if settings.overwrite and role != "worker" and os.path.isdir(directory):
        shutil.rmtree(directory)  # a worker never deletes: the chief (or other workers) may share the directory
    job.prepare(directory, log)
    dump_config(space, os.path.join(directory, "space.yaml"))

    strategy_name = job.base_config.training.strategy
    strategy = make_strategy(strategy_name)
    hypermodel = ConfigHyperModel(job, space, strategy)
    if role == "chief":
        address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
        log(f"chief: serving the oracle on {address} until the workers have run every trial")
    tuner = make_tuner(hypermodel, settings, directory, None if strategy_name == "default" else strategy)
    stopped = None
    if role != "chief":  # the chief's tuner returns from its constructor only when the search is over
        try:
            _search(tuner, job, settings, directory, callbacks, log)
        except SearchFailedError as exc:
            if role == "worker":
                raise
            stopped = exc  # the trials so far are still written below
    if role == "worker":
        trials = [trial_row(t, space) for t in tuner.finished_trials]
        log(f"worker {tuner.tuner_id}: ran trials {[t['trial_id'] for t in trials]}; the chief writes the results")
        return _result(role, directory, space, trials, best_row(trials, settings.direction), job)

    result, best_trial = _write_results(tuner, job, space, role, directory, log, stopped)
    if export_dir:
        model = best_model(tuner, hypermodel, best_trial, log)
        result.test_metrics = job.evaluate(result.best_config, model)
        result.export_path = job.export_best(result.best_config, model, export_dir)
    return result


def _check_algorithm_dependencies(settings: TunerConfig) -> None:
    missing = [m for m in ("scipy", "sklearn") if importlib.util.find_spec(m) is None]
    if settings.algorithm == "bayesian" and missing:
        raise ValueError(
            f"tuner.algorithm bayesian needs {' and '.join(missing)}: pip install 'keras-tuner[bayesian]==1.3.5' "
            "(scipy, scikit-learn); or use random or hyperband"
        )


def _search(tuner, job: TuningJob, settings: TunerConfig, directory: str, callbacks, log) -> None:
    """Runs trials until the oracle stops; Keras progress and keras-tuner's trial display follow training.verbose."""
    log(f"search: {settings.algorithm}, objective {settings.objective} ({settings.direction}), TensorBoard: "
        f"tensorboard --logdir {os.path.join(directory, 'logs')}")
    epochs = settings.epochs or job.base_config.training.epochs
    kwargs = {} if settings.algorithm == "hyperband" else {"epochs": epochs}  # hyperband sets its own
    try:
        tuner.search(
            callbacks=search_callbacks(settings, directory) + list(callbacks),
            verbose=job.base_config.training.verbose,
            **kwargs,
        )
    except RuntimeError as exc:  # keras-tuner's "consecutive failures exceeded" carries the last trial's error
        raise SearchFailedError(f"the search stopped: {exc}") from exc


def _write_results(tuner, job: TuningJob, space: SearchSpace, role: str, directory: str, log, stopped=None):
    """(SearchResult, best keras-tuner Trial) from the oracle's trials; writes trials.json, trials.csv and
    best_config.yaml. Raises SearchFailedError, after writing the trials, when none completed or the search stopped."""
    oracle = tuner.oracle
    trials = [trial_row(oracle.trials[i], space) for i in oracle.start_order]
    best_trials = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED" and t.score is not None]
    best = next((t for t in trials if best_trials and t["trial_id"] == best_trials[0].trial_id), None)
    result = _result(role, directory, space, trials, best, job)
    result.trials_path = os.path.join(directory, "trials.json")
    result.trials_csv_path = os.path.join(directory, "trials.csv")
    write_trials(result, space.tuner.algorithm)
    if stopped is not None or best is None:
        failed = [t for t in trials if t.get("error")]
        why = f"; trial {failed[0]['trial_id']} failed with: {failed[0]['error']}" if failed else ""
        if stopped is not None:
            raise SearchFailedError(f"{stopped}; every trial is in {result.trials_csv_path}") from stopped
        raise SearchFailedError(f"no trial completed{why}; every trial is in {result.trials_csv_path}")
    result.best_config_path = os.path.join(directory, "best_config.yaml")
    dump_config(result.best_config, result.best_config_path)
    log(f"best trial {best['trial_id']}: {result.objective} {best['score']:.4f}; config: {result.best_config_path}")
    return result, best_trials[0]


# ------------------------------------------------------------------------------------------------------------ tuner
class _RecordsFinishedTrials:
    """Keeps the trials this tuner ran (a worker cannot list the chief's trials)."""

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.finished_trials.append(self.oracle.get_trial(trial.trial_id))


def _recording(cls):
    return type(cls.__name__, (_RecordsFinishedTrials, cls), {"__doc__": cls.__doc__})


_TUNERS = {
    "random": _recording(kt.RandomSearch),
    "bayesian": _recording(kt.BayesianOptimization),
    "hyperband": _recording(kt.Hyperband),
}


def make_tuner(hypermodel: kt.HyperModel, settings: TunerConfig, directory: str, strategy=None) -> kt.Tuner:
    """The keras-tuner tuner of `settings.algorithm`; on a distributed chief this blocks until the search ends."""
    kwargs: Dict[str, Any] = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(settings.objective, settings.direction),
        seed=settings.seed,
        executions_per_trial=settings.executions_per_trial,
        directory=directory,
        project_name=PROJECT,
        overwrite=False,  # run_search clears the directory itself, and never on a worker
        distribution_strategy=strategy,
    )
    if settings.algorithm == "hyperband":
        kwargs.update(
            max_epochs=settings.max_epochs, factor=settings.factor, hyperband_iterations=settings.hyperband_iterations
        )
    else:
        kwargs["max_trials"] = settings.max_trials
    if settings.algorithm == "bayesian":
        kwargs["num_initial_points"] = settings.num_initial_points
    tuner = _TUNERS[settings.algorithm](**kwargs)
    tuner.finished_trials = []
    return tuner


def search_callbacks(settings: TunerConfig, directory: str) -> list:
    """TensorBoard (keras-tuner moves it to logs/<trial>/execution<n> and adds HParams) and early stopping."""
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir=os.path.join(directory, "logs"), update_freq="epoch")]
    if settings.early_stopping_patience:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor=settings.objective, mode=settings.direction, patience=settings.early_stopping_patience
            )
        )
    return callbacks


def best_model(tuner: kt.Tuner, hypermodel: ConfigHyperModel, trial, log=print) -> tf.keras.Model:
    """The best trial's model: its best-epoch weights when this process ran it, else retrained to its best epoch."""
    checkpoint = os.path.join(tuner.get_trial_dir(trial.trial_id), "checkpoint")
    model = hypermodel.build(trial.hyperparameters)
    if tf.io.gfile.exists(checkpoint + ".index"):
        model.load_weights(checkpoint).expect_partial()
        # A subclassed model creates its variables, and so takes the deferred restore, on its first call.
        validation = hypermodel.job.datasets(hypermodel.trial_config(trial.hyperparameters))[1]
        metrics = model.evaluate(validation, return_dict=True, verbose=0) if validation is not None else {}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "loss" not in k or k == "loss")
        log(f"restored trial {trial.trial_id}'s best epoch from {checkpoint}; validation: {shown}")
        return model
    epochs = int(trial.best_step or 0) + 1
    log(f"trial {trial.trial_id} ran elsewhere: retraining its values for {epochs} epoch(s)")
    hypermodel.fit(trial.hyperparameters, model, epochs=epochs, callbacks=[])
    return model


def _result(role: str, directory: str, space: SearchSpace, trials, best, job: TuningJob) -> SearchResult:
    overrides = dict(best["overrides"]) if best else {}
    return SearchResult(
        role=role,
        directory=directory,
        objective=space.tuner.objective,
        direction=space.tuner.direction,
        best_trial_id=best["trial_id"] if best else None,
        best_score=best["score"] if best else None,
        best_overrides=overrides,
        best_config=apply_to_config(job.base_config, overrides),
        trials=trials,
        hyperparameters=[h.name for h in space.hyperparameters],
    )
