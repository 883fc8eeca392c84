"""MultiWorkerMirroredStrategy for real, through the command a user runs: two `tfrec train ranker` processes with
`training.strategy: multi_worker`, TF_CONFIG naming two CPU workers on 127.0.0.1 (free ports), train the DCN ranker of
configs/ranker.yaml on the tiny synthetic shop together.

Both run the same job (each prepares its own copy of the data) and every `fit` in sync; only the chief (task 0)
writes the run directory (checkpoints, logs, history, report) and the worker exits 0 leaving nothing behind: not in
its own --run-dir, not in its temporary directory. The chief's run then exports, and the export scores the test
split as the run's report says.
"""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from ranker_tiny import FEATURES, tiny_ranker_config

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 2
# The tiny shop, a small ranker over a few features (tracing the train step dominates the time), no logistic
# baseline: this test is about the strategy, not the comparison.
WORKER_FEATURES = [f for f in FEATURES if f["name"] != "price"]
MODEL = {"tasks": {"click": 1.0}, "cross_layers": 1, "deep_units": [32], "embedding_dim": 8}
TRAINING = {"epochs": EPOCHS, "verbose": 2, "num_shards": 2, "strategy": "multi_worker", "early_stopping_patience": 0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_workers(tmp_path, config: Path):
    """Starts both workers; returns (exit codes, logs) once both end, or at the first failure (the other would wait
    for it forever)."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    processes, logs = [], [tmp_path / f"worker{i}.log" for i in range(2)]
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            scratch = tmp_path / f"tmp{index}"
            scratch.mkdir()
            argv = [sys.executable, "-m", "tfrec.cli.main", "train", "ranker", "--config", str(config),
                    "--run-dir", str(tmp_path / f"run{index}")]
            with open(logs[index], "w", encoding="utf-8") as log:
                processes.append(subprocess.Popen(argv, env={**env, "TF_CONFIG": tf_config, "TMPDIR": str(scratch)},
                                                  stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and any(p.poll() is None for p in processes):
            if any(p.poll() not in (None, 0) for p in processes):
                break
            time.sleep(0.5)
        return [p.poll() for p in processes], [log.read_text(encoding="utf-8") for log in logs]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


def _epoch_aucs(log: str):
    return [float(v) for v in re.findall(r"val_click_auc: ([0-9.]+)", log)]


def test_two_tfrec_train_processes_train_the_ranker_and_only_the_chief_writes(tmp_path):
    from tfrec.cli.main import main

    config = tmp_path / "ranker.yaml"
    config.write_text(yaml.safe_dump(tiny_ranker_config(WORKER_FEATURES, model=MODEL, training=TRAINING)))
    codes, logs = _run_workers(tmp_path, config)
    assert codes == [0, 0], [log[-3000:] for log in logs]
    chief_log, worker_log = logs
    assert "run directory:" in chief_log and "worker finished" in worker_log, worker_log[-2000:]

    # One training run over two processes: the same epochs and global validation figures on both (AUC stays an
    # AUC, not a sum over the workers).
    aucs = _epoch_aucs(chief_log)
    assert len(aucs) == EPOCHS and all(0.5 < a < 1.0 for a in aucs), chief_log[-2000:]
    assert _epoch_aucs(worker_log) == aucs

    # Only the chief writes: its run directory is complete, the worker's --run-dir never existed and its temporary
    # directory (data, Keras's workertemp checkpoints) is gone.
    run = tmp_path / "run0"
    assert (run / "checkpoints" / "best.index").exists() and any((run / "logs" / "train").iterdir())
    assert (run / "history.csv").read_text().count("\n") == EPOCHS + 1
    assert not list(run.rglob("workertemp*"))
    report = json.loads((run / "metrics.json").read_text())["test"]
    assert not (tmp_path / "run1").exists()
    assert not any((tmp_path / "tmp1").iterdir()), list((tmp_path / "tmp1").rglob("*"))

    # The chief's best epoch learned the clicks, and its export reproduces the report's position-free ranking.
    rows = {r["model"]: r["metrics"] for r in report["heads"]["click"]}
    assert rows["dcn_ranker"]["auc"] > max(0.6, rows["popularity"]["auc"]), rows
    models = tmp_path / "models"
    assert main(["export", "--run", str(run), "--base-dir", str(models)]) == 0
    out = tmp_path / "exported.json"
    with open(out, "w", encoding="utf-8") as f, contextlib.redirect_stdout(f):
        assert main(["evaluate", "--run", str(run), "--saved-model", str(models / "ranker" / "1"), "--json"]) == 0
    served = {r["model"]: r["metrics"] for r in json.loads(out.read_text())["heads"]["click"]}["dcn_ranker"]
    np.testing.assert_allclose(served["ndcg@10"], rows["dcn_ranker"]["ndcg@10"], rtol=1e-5)
