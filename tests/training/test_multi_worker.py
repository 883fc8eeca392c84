"""MultiWorkerMirroredStrategy for real: two CPU worker processes on 127.0.0.1 (TF_CONFIG, free ports) train the DCN
ranker of configs/ranker.yaml on the tiny synthetic shop together, through `tfrec.training.trainer.fit` with
`training.strategy: multi_worker`.

Each worker prepares the same data in its own run directory (as separate machines would). Both finish with the same
weights (synchronous all-reduce); only the chief keeps the checkpoints, TensorBoard logs and history (Keras writes a
non-chief worker's into `workertemp_<id>` directories and deletes them), restores the best epoch, evaluates it and
exports a SavedModel that reloads and scores. This file is also the worker program: `python <this file> RUN_DIR OUT`.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the worker program
from ranker_tiny import CONFIG, FEATURES, tiny_ranker_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 2
# The tiny shop, a small ranker over a few features (tracing the train step dominates the time), no logistic
# baseline: this test is about the strategy, not the comparison.
WORKER_FEATURES = [f for f in FEATURES if f["name"] != "price"]
MODEL = {"tasks": {"click": 1.0}, "cross_layers": 1, "deep_units": [32], "embedding_dim": 8}
TRAINING = {"epochs": EPOCHS, "verbose": 0, "num_shards": 2, "strategy": "multi_worker"}


def _config(run_dir: str):
    from tfrec.config import from_dict
    from tfrec.training.ranker_job import RankerJobConfig

    data = tiny_ranker_config(WORKER_FEATURES, model=MODEL, training=TRAINING, run_dir=run_dir)
    return from_dict(RankerJobConfig, data, str(CONFIG))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_train_the_ranker_in_sync_and_only_the_chief_writes(tmp_path):
    import numpy as np
    import tensorflow as tf

    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    processes = []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            log = open(tmp_path / f"worker{index}.log", "w", encoding="utf-8")
            argv = [sys.executable, __file__, str(tmp_path / f"run{index}"), str(tmp_path / f"worker{index}.json")]
            processes.append(subprocess.Popen(argv, env={**env, "TF_CONFIG": tf_config}, stdout=log,
                                              stderr=subprocess.STDOUT, cwd=REPO))
        deadline = time.monotonic() + 240  # a worker that fails leaves the other waiting: stop at the first failure
        while time.monotonic() < deadline and any(p.poll() is None for p in processes):
            if any(p.poll() not in (None, 0) for p in processes):
                break
            time.sleep(1)
        codes = [p.poll() for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    logs = [(tmp_path / f"worker{i}.log").read_text(encoding="utf-8")[-3000:] for i in range(2)]
    assert codes == [0, 0], logs
    chief, worker = (json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2))

    # One training run over two processes: two replicas, the same epochs and validation figures, the same weights.
    assert (chief["chief"], worker["chief"]) == (True, False)
    assert chief["replicas"] == worker["replicas"] == 2
    assert len(chief["history"]["val_click_auc"]) == EPOCHS
    # Metrics are global (not summed over the workers: AUC stays an AUC) and agree on both.
    assert all(0.5 < auc < 1.0 for auc in chief["history"]["val_click_auc"]), chief["history"]
    np.testing.assert_allclose(chief["history"]["val_click_auc"], worker["history"]["val_click_auc"], rtol=1e-6)
    np.testing.assert_allclose(chief["weights"], worker["weights"], rtol=1e-6)

    # Only the chief keeps the run's outputs; the worker's temporary copies are gone.
    run0, run1 = tmp_path / "run0", tmp_path / "run1"
    assert (run0 / "checkpoints" / "best.index").exists() and any((run0 / "logs" / "train").iterdir())
    assert (run0 / "history.csv").read_text().count("\n") == EPOCHS + 1
    written = sorted(str(p.relative_to(run1)) for p in run1.rglob("*") if p.is_file())
    assert written and all(p.startswith(("data/", "features/")) for p in written), written
    assert "a non-chief worker keeps no checkpoint" in worker.get("restore_error", "")

    # The chief's best epoch learned the clicks (beats popularity on the test split) and its export scores them.
    assert chief["test_click_auc"] > max(0.6, chief["popularity_click_auc"]), chief
    served = tf.saved_model.load(chief["export"]).signatures["serving_default"]
    inputs = served.structured_input_signature[1]
    rows = {k: tf.constant(v, inputs[k].dtype) for k, v in chief["sample_rows"].items()}
    np.testing.assert_allclose(served(**rows)["click_probability"].numpy(), chief["sample_click"], rtol=1e-5)


def _worker(run_dir: str, out: str) -> None:
    """One worker: the strategy first (before TensorFlow runs any op), then the ranker job's data and `fit`."""
    import numpy as np

    import tfrec  # noqa: F401
    from tfrec.training.trainer import make_strategy

    start = time.time()

    strategy = make_strategy("multi_worker")
    from tfrec.data.sources import load_source
    from tfrec.export.ranker import export_ranker
    from tfrec.models.ranker import build_ranker
    from tfrec.training.ranker_job import (
        evaluate_ranker_run, make_datasets, predict_ranker, read_split,
    )
    from tfrec.training.ranking_data import build_examples, prepare_ranking_data
    from tfrec.training.trainer import fit, is_chief, restore_best_weights

    config = _config(run_dir)
    training = config.training
    columns = build_examples(config.examples, load_source(config.data), config.negatives_per_positive,
                             config.split.seed)
    prepared = prepare_ranking_data(config.feature_spec, config.labels, columns, config.split, run_dir,
                                    training.num_shards, log=print)
    train, validation = make_datasets(config, os.path.join(run_dir, "data"), True, training)
    print(f"data prepared in {time.time() - start:.0f} s", flush=True)
    model, history = fit(lambda: build_ranker(config.model, prepared.fitted, prepared.label_means), train,
                         validation, training, run_dir)
    result = {
        "chief": is_chief(strategy), "replicas": strategy.num_replicas_in_sync,
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "weights": [float(np.abs(w).sum()) for w in model.get_weights()],
    }
    print(f"trained in {time.time() - start:.0f} s", flush=True)
    if not result["chief"]:
        try:
            restore_best_weights(model, run_dir, "this test")
        except FileNotFoundError as exc:
            result["restore_error"] = str(exc)
    else:
        restore_best_weights(model, run_dir, "this test")
        report = evaluate_ranker_run(config, run_dir, model)
        result["test_click_auc"] = report.row("click", "dcn_ranker")["auc"]
        result["popularity_click_auc"] = report.row("click", "popularity")["auc"]
        test = read_split(config, run_dir, "test")
        names = model.encoder.spec.names
        sample = {n: test[n][:16] for n in names}
        result["sample_rows"] = {n: v.tolist() for n, v in sample.items()}
        result["sample_click"] = predict_ranker(model, model.encoder.spec, sample)["click"]["serving"].tolist()
        result["export"] = export_ranker(model, os.path.join(run_dir, "export"))
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    print(f"done in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
