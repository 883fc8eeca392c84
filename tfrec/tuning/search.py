"""The search: a keras-tuner tuner over a `ConfigHyperModel`, and what it leaves behind.

`<tuner.directory>/<tuner.project_name>/` (the tuning directory) holds

    prepared.json, features/, data/   the job's data, prepared once (see TuningJob.prepare)
    search/                           keras-tuner's project: oracle state, trial_*/ (trial.json, best-epoch weights)
    logs/<trial>/execution<n>/        TensorBoard per trial, with the HParams dashboard
    space.yaml                        the search space as run
    best_config.yaml                  the job config with the best values applied (`tfrec train ctr --config ...`)
    trials.json                       every trial: status, score, values

Distributed tuning needs no code: with keras-tuner's KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP /
KERASTUNER_ORACLE_PORT set, the process whose id contains "chief" serves the oracle and writes the results, the others
run trials (docs/tuning.md).
"""

from __future__ import annotations

import dataclasses
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
from tfrec.tuning.space import SearchSpace, TunerConfig, apply_to_config, check_paths, python_value

PROJECT = "search"  # keras-tuner's project directory inside the tuning directory


class SearchFailedError(RuntimeError):
    """No trial completed (every trial failed, or keras-tuner gave up after consecutive failures)."""


@dataclasses.dataclass
class SearchResult:
    """The outcome of `run_search` in one process (`role`: single, chief, or worker)."""

    role: str
    directory: str
    objective: str
    direction: str
    best_trial_id: Optional[str]
    best_score: Optional[float]
    best_overrides: Dict[str, Any]  # dotted config path → value
    best_config: Any
    trials: List[Dict[str, Any]]  # the chief's (or single process's) every trial; a worker's own trials
    best_config_path: Optional[str] = None
    trials_path: Optional[str] = None
    test_metrics: Optional[Dict[str, float]] = None
    export_path: Optional[str] = None


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
    """Searches `space` for `job`, writes best_config.yaml and trials.json, and exports the best model if asked.

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
    if role != "chief":  # the chief's tuner returns from its constructor only when the search is over
        _search(tuner, job, settings, directory, callbacks, log)
    if role == "worker":
        trials = [trial_row(t, space) for t in tuner.finished_trials]
        log(f"worker {tuner.tuner_id}: ran trials {[t['trial_id'] for t in trials]}; the chief writes the results")
        return _result(role, directory, settings, trials, _best_row(trials, settings.direction), job)

    result, best_trial = _write_results(tuner, job, space, role, directory, log)
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


def _write_results(tuner, job: TuningJob, space: SearchSpace, role: str, directory: str, log):
    """(SearchResult, best keras-tuner Trial) from the oracle's trials; writes best_config.yaml and trials.json."""
    oracle = tuner.oracle
    trials = [trial_row(oracle.trials[i], space) for i in oracle.start_order]
    best_trials = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED" and t.score is not None]
    if not best_trials:
        failed = [t for t in trials if t.get("error")]
        why = f"; trial {failed[0]['trial_id']} failed with: {failed[0]['error']}" if failed else ""
        raise SearchFailedError("no trial completed" + why)
    best = next(t for t in trials if t["trial_id"] == best_trials[0].trial_id)
    result = _result(role, directory, space.tuner, trials, best, job)
    result.best_config_path = os.path.join(directory, "best_config.yaml")
    dump_config(result.best_config, result.best_config_path)
    result.trials_path = os.path.join(directory, "trials.json")
    write_trials(result, space.tuner.algorithm)
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


# ---------------------------------------------------------------------------------------------------------- results
def trial_row(trial, space: SearchSpace) -> Dict[str, Any]:
    """One line of the trial table: id, status, score, values by name and by config path, and any error."""
    values = trial.hyperparameters.values
    hps = {h.name: python_value(values[h.name]) for h in space.hyperparameters if h.name in values}
    row: Dict[str, Any] = {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "score": None if trial.score is None else float(trial.score),
        "best_epoch": None if trial.score is None else int(trial.best_step or 0),
        "hyperparameters": hps,
        "overrides": space.overrides(hps),
    }
    if "tuner/epochs" in values:
        row["epochs"] = int(values["tuner/epochs"])
    if trial.message:
        lines = [line for line in str(trial.message).strip().splitlines() if line.strip()]
        row["error"] = lines[-1] if lines else str(trial.message)
    return row


def _best_row(trials: List[Dict[str, Any]], direction: str) -> Optional[Dict[str, Any]]:
    scored = [t for t in trials if t["score"] is not None]
    if not scored:
        return None
    pick = max if direction == "max" else min
    return pick(scored, key=lambda t: t["score"])


def _result(role, directory, settings, trials, best, job) -> SearchResult:
    overrides = dict(best["overrides"]) if best else {}
    return SearchResult(
        role=role,
        directory=directory,
        objective=settings.objective,
        direction=settings.direction,
        best_trial_id=best["trial_id"] if best else None,
        best_score=best["score"] if best else None,
        best_overrides=overrides,
        best_config=apply_to_config(job.base_config, overrides),
        trials=trials,
    )


def write_trials(result: SearchResult, algorithm: str) -> None:
    payload = {
        "algorithm": algorithm,
        "objective": result.objective,
        "direction": result.direction,
        "best_trial_id": result.best_trial_id,
        "best_score": result.best_score,
        "best_overrides": result.best_overrides,
        "trials": result.trials,
    }
    with open(result.trials_path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)


def format_trials(result: SearchResult) -> str:
    """The trial table and the best values, as the CLI prints them."""
    names = list(dict.fromkeys(n for t in result.trials for n in t["hyperparameters"]))
    header = ["trial", "status", result.objective] + names
    rows = [header]
    for t in result.trials:
        score = "-" if t["score"] is None else f"{t['score']:.4f}"
        mark = " *" if t["trial_id"] == result.best_trial_id else ""
        rows.append([t["trial_id"] + mark, t["status"], score] + [_short(t["hyperparameters"].get(n)) for n in names])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if result.best_trial_id is not None:
        lines.append(f"best ({result.objective} {result.best_score:.4f}, trial {result.best_trial_id}):")
        lines += [f"  {path} = {value!r}" for path, value in result.best_overrides.items()]
    return "\n".join(lines)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
