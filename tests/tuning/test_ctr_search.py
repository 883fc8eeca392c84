"""Tuning the CTR model for real on a tiny synthetic shop: the search, its files, the best model's export, the CLI,
and a distributed search (a chief and two workers) over keras-tuner's gRPC oracle on 127.0.0.1. This file is also
the workers' program: `python <this file> CONFIG SPACE DIRECTORY STARTED_DIR`."""

import ast
import csv
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import tfrec  # noqa: F401  (routes tf.keras to tf-keras before keras_tuner imports it)
import tensorflow as tf
from tfrec.cli.main import main
from tfrec.config import from_dict
from tfrec.data.tfrecord import list_shards, read_columns
from tfrec.export.loading import saved_model_predictor
from tfrec.training.ctr_job import CTRJobConfig, evaluate_run, label_spec, load_ctr_config
from tfrec.tuning import CTRTuningJob, SearchSpace, run_search

REPO = Path(__file__).resolve().parents[2]

# A CTR job small enough for many trials: ~5k impressions, three features, one cross.
TINY_CTR = {
    "data": {"source": "synthetic", "preset": "tiny", "seed": 0, "synthetic": {"n_sessions": 500}},
    "split": {"kind": "time", "validation_fraction": 0.2, "test_fraction": 0.2},
    "features": [
        {"name": "segment"},
        {"name": "category", "kind": "path"},
        {"name": "position", "dtype": "int", "kind": "numeric", "boundaries": [0.5, 1.5, 2.5, 4.5]},
    ],
    "model": {"hash_buckets": 4096, "crosses": [["segment", "category"]]},
    "training": {"batch_size": 256, "epochs": 2, "verbose": 0, "num_shards": 1, "early_stopping_patience": 1,
                 "shuffle_buffer": 10000},
}
LEARNING_RATE = {"name": "learning_rate", "path": "training.optimizer.learning_rate", "type": "float",
                 "min": 0.002, "max": 0.05, "sampling": "log"}
BATCH_SIZE = {"name": "batch_size", "path": "training.batch_size", "type": "choice", "values": [64, 512]}
OPTIMIZER = {"name": "optimizer", "path": "training.optimizer.name", "type": "choice", "values": ["adam", "ftrl"]}


def _space(directory, **tuner):
    settings = {"algorithm": "random", "max_trials": 3, "epochs": 1,
                "directory": str(directory), "project_name": "ctr", **tuner}
    return from_dict(SearchSpace, {"tuner": settings, "hyperparameters": [LEARNING_RATE, BATCH_SIZE, OPTIMIZER]})


class FirstEpochBatches(tf.keras.callbacks.Callback):
    """Counts each trial's training batches in its first epoch (class-level: keras-tuner deep-copies callbacks)."""

    seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            FirstEpochBatches.seen.append(self.batches)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One real 3-trial random search with the best model exported, shared by the tests below."""
    root = tmp_path_factory.mktemp("tuning")
    job = CTRTuningJob(from_dict(CTRJobConfig, TINY_CTR))
    FirstEpochBatches.seen = []
    result = run_search(job, _space(root), log=lambda _: None, export_dir=str(root / "models"),
                        callbacks=[FirstEpochBatches()])
    return job, result, list(FirstEpochBatches.seen), root


def test_best_trial_is_the_best_of_trials_json(searched):
    _, result, _, root = searched
    saved = json.loads((root / "ctr" / "trials.json").read_text())
    assert [t["status"] for t in saved["trials"]] == ["COMPLETED"] * 3
    scores = [t["score"] for t in saved["trials"]]
    assert result.best_score == max(scores) == saved["best_score"]
    best = next(t for t in saved["trials"] if t["trial_id"] == saved["best_trial_id"])
    assert best["score"] == max(scores) and best["overrides"] == saved["best_overrides"] == result.best_overrides
    assert set(best["overrides"]) == {LEARNING_RATE["path"], BATCH_SIZE["path"], OPTIMIZER["path"]}
    assert 0.6 < result.best_score < 1.0  # the tiny shop's clicks are learnable


def test_best_config_yaml_loads_with_the_chosen_values(searched):
    _, result, _, root = searched
    config = load_ctr_config(str(root / "ctr" / "best_config.yaml"))
    chosen = result.best_overrides
    assert config.training.optimizer.learning_rate == pytest.approx(chosen["training.optimizer.learning_rate"])
    assert config.training.batch_size == chosen["training.batch_size"]
    assert config.training.optimizer.name == chosen["training.optimizer.name"]
    assert config.model.hash_buckets == 4096 and config.data.synthetic == {"n_sessions": 500}  # the rest is the base


def test_each_trial_trains_with_its_own_batch_size(searched):
    job, result, batches, _ = searched
    sizes = [t["hyperparameters"]["batch_size"] for t in result.trials]
    assert set(sizes) == {64, 512}, sizes  # the seeded random search tries both
    train = job.split_sizes["train"]
    assert batches == [math.ceil(train / size) for size in sizes]


def test_tensorboard_logs_and_checkpoints_per_trial(searched):
    _, result, _, root = searched
    for trial in result.trials:
        logs = root / "ctr" / "logs" / trial["trial_id"] / "execution0"
        assert any((logs / "train").iterdir()) and any((logs / "validation").iterdir())
        assert (root / "ctr" / "search" / f"trial_{trial['trial_id']}" / "checkpoint.index").exists()


def test_exported_best_model_loads_and_reproduces_the_best_trial(searched):
    job, result, _, root = searched
    assert result.export_path == str(root / "models" / "ctr" / "1")
    logit = saved_model_predictor(result.export_path, "logit")
    config = result.best_config
    # Its validation AUC, computed as Keras did during the search, is the best trial's score: the best epoch's
    # weights were restored before the export.
    parse = {**config.feature_spec.parse_spec(), **label_spec(config)}
    validation = read_columns(list_shards(os.path.join(result.directory, "data"), "validation"), parse)
    auc = tf.keras.metrics.AUC(from_logits=True)
    auc.update_state(validation["click"].reshape(-1, 1), logit({k: validation[k] for k in config.feature_spec.names}))
    assert float(auc.result()) == pytest.approx(result.best_score, abs=1e-4)
    # And the test report of the exported model is the one run_search computed in memory.
    probability = saved_model_predictor(result.export_path, "click_probability")
    report = evaluate_run(config, result.directory, probability)
    assert report.auc == pytest.approx(result.test_metrics["auc"], abs=1e-5)


def test_rerun_resumes_the_finished_search_and_reuses_the_data(searched):
    job, result, _, root = searched
    lines = []
    again = run_search(CTRTuningJob(job.base_config), _space(root), log=lines.append)
    assert any("reusing the prepared data" in line for line in lines)
    assert again.trials == result.trials and again.best_overrides == result.best_overrides


def _write_inputs(directory: Path, max_trials: int = 3, minimal: bool = False):
    config, space = directory / "ctr_tiny.yaml", directory / "space_tiny.yaml"
    job = dict(TINY_CTR)
    if minimal:  # two features, no cross: the cheapest trials, so a worker finishes within the chief's first poll
        job.update(features=[TINY_CTR["features"][0], TINY_CTR["features"][2]], model={"hash_buckets": 4096})
    config.write_text(yaml.safe_dump(job))
    tuner = {"algorithm": "random", "max_trials": max_trials, "epochs": 1, "directory": str(directory / "unused")}
    space.write_text(yaml.safe_dump({"tuner": tuner, "hyperparameters": [LEARNING_RATE, OPTIMIZER]}))
    return config, space


def test_cli_tune_then_train_the_best_config(tmp_path, capsys):
    config, space = _write_inputs(tmp_path)
    argv = ["tune", "ctr", "--config", config, "--space", space, "--max-trials", "2", "--directory", tmp_path / "t"]
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert "trial  status     val_auc  learning_rate  optimizer" in out
    assert out.count("COMPLETED") == 2 and "best (val_auc" in out and "training.optimizer.learning_rate = " in out
    best = tmp_path / "t" / "ctr" / "best_config.yaml"
    assert f"best config: {best}" in out
    assert len(json.loads((tmp_path / "t" / "ctr" / "trials.json").read_text())["trials"]) == 2
    assert f"trials: {tmp_path / 't' / 'ctr' / 'trials.json'}, {tmp_path / 't' / 'ctr' / 'trials.csv'}" in out
    assert (tmp_path / "t" / "ctr" / "trials.csv").read_text().count("\n") == 3  # header + two trials
    train = ["train", "ctr", "--config", best, "--run-dir", tmp_path / "run", "--set", "training.epochs=1"]
    assert main([str(a) for a in train]) == 0
    assert (tmp_path / "run" / "checkpoints" / "best.index").exists()
    # A misspelt path fails before any data is prepared, naming the hyperparameter.
    space.write_text(space.read_text().replace("training.optimizer.name", "training.optimiser.name"))
    assert main([str(a) for a in argv]) == 2
    assert "hyperparameter 'optimizer': path 'training.optimiser.name'" in capsys.readouterr().err


def test_cli_help(capsys):
    for argv in (["tune", "--help"], ["tune", "ctr", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    assert "KERASTUNER_ORACLE_IP" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BothWorkersStarted(tf.keras.callbacks.Callback):
    """Holds a worker's first trial until every worker has started one. keras-tuner hands the next trial to whichever
    worker asks first, so without this a worker that starts fast could run every trial before the other asks."""

    def __init__(self, directory: str, tuner_id: str, workers: int = 2, timeout: float = 240.0):
        super().__init__()
        self.directory, self.tuner_id, self.workers, self.timeout = directory, tuner_id, workers, timeout

    def on_train_begin(self, logs=None):
        mine = os.path.join(self.directory, self.tuner_id)
        if os.path.exists(mine):
            return
        open(mine, "w").close()
        deadline = time.monotonic() + self.timeout
        while len(os.listdir(self.directory)) < self.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {os.listdir(self.directory)} started a trial within {self.timeout} s")
            time.sleep(0.2)


def _tuning_worker(config: str, space: str, directory: str, started: str) -> None:
    """A worker process of the distributed test: `tfrec tune ctr` with the callback above."""
    from tfrec.tuning import format_trials, load_space

    result = run_search(CTRTuningJob(load_ctr_config(config)), load_space(space, {"tuner.directory": directory}),
                        callbacks=[BothWorkersStarted(started, os.environ["KERASTUNER_TUNER_ID"])])
    print(format_trials(result))


def test_distributed_search_chief_and_two_workers_over_grpc(tmp_path):
    """A chief (the oracle, `tfrec tune ctr`) and two workers (run trials), as processes with keras-tuner's env vars.

    keras-tuner 1.3.5's chief checks every 30 s whether the search is over and then serves 30 s more, so this takes
    at least a minute (about 70 s on two idle cores; longer if the workers' trials miss the chief's first check).
    """
    config, space = _write_inputs(tmp_path, max_trials=3, minimal=True)
    (tmp_path / "started").mkdir()
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(_free_port())}
    commands = {"chief": [sys.executable, "-m", "tfrec.cli.main", "tune", "ctr", "--config", str(config), "--space",
                          str(space), "--directory", str(tmp_path / "chief")]}
    for worker in ("tuner0", "tuner1"):
        commands[worker] = [sys.executable, __file__, str(config), str(space), str(tmp_path / worker),
                            str(tmp_path / "started")]
    processes = {}
    try:
        for role, argv in commands.items():  # the chief first: a worker waits for its oracle
            log = open(tmp_path / f"{role}.log", "w", encoding="utf-8")
            processes[role] = subprocess.Popen(argv, env={**env, "KERASTUNER_TUNER_ID": role}, stdout=log,
                                               stderr=subprocess.STDOUT, cwd=REPO)
        codes = {role: p.wait(timeout=360) for role, p in processes.items()}
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.kill()
    logs = {role: (tmp_path / f"{role}.log").read_text(encoding="utf-8") for role in processes}
    assert codes == {"chief": 0, "tuner0": 0, "tuner1": 0}, logs
    assert "chief: serving the oracle on 127.0.0.1" in logs["chief"]

    # The workers shared the trials: each ran at least one, none ran the same one, together they ran all three.
    ran = {}
    for worker in ("tuner0", "tuner1"):
        found = re.search(rf"worker {worker}: ran trials (\[.*\])", logs[worker])
        assert found, logs[worker]
        ran[worker] = ast.literal_eval(found.group(1))
    assert ran["tuner0"] and ran["tuner1"] and not set(ran["tuner0"]) & set(ran["tuner1"]), ran
    assert sorted(ran["tuner0"] + ran["tuner1"]) == ["0", "1", "2"]

    # The chief recorded every trial (scores and values) in trials.json and trials.csv; it trained nothing itself,
    # and the workers wrote no results.
    saved = json.loads((tmp_path / "chief" / "ctr" / "trials.json").read_text())
    assert [(t["trial_id"], t["status"]) for t in saved["trials"]] == [(i, "COMPLETED") for i in ("0", "1", "2")]
    with open(tmp_path / "chief" / "ctr" / "trials.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["trial_id"], float(r["val_auc"])) for r in rows] == [(t["trial_id"], t["score"]) for t in saved["trials"]]
    for worker, trial_ids in ran.items():
        for trial in (t for t in saved["trials"] if t["trial_id"] in trial_ids):
            assert f"{trial['score']:.4f}" in logs[worker]  # the worker's table shows the scores the chief holds
            assert (tmp_path / worker / "ctr" / "search" / f"trial_{trial['trial_id']}" / "checkpoint.index").exists()
            assert not (tmp_path / "chief" / "ctr" / "search" / f"trial_{trial['trial_id']}" / "checkpoint.index").exists()
        assert not (tmp_path / worker / "ctr" / "trials.json").exists()
    best = load_ctr_config(str(tmp_path / "chief" / "ctr" / "best_config.yaml"))
    assert best.training.optimizer.name == saved["best_overrides"]["training.optimizer.name"]
    assert np.isclose(saved["best_score"], max(t["score"] for t in saved["trials"]))


if __name__ == "__main__":
    _tuning_worker(*sys.argv[1:5])
