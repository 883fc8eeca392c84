"""`tfrec tune ranker` on the tiny synthetic shop with the shipped search space (random, two two-epoch trials): the
conditional projection_dim is applied only under low-rank cross layers, trials.json/csv and best_config.yaml agree,
and the best trial exports a ranker SavedModel that reloads and reproduces the reported test NDCG@10."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tfrec.cli.main import main
from tfrec.training import metrics
from tfrec.training.ranker_job import load_ranker_config, read_split
from ranker_tiny import tiny_ranker_config  # tests/ is on sys.path (conftest)

REPO = Path(__file__).resolve().parents[2]
SPACE = str(REPO / "configs" / "tuning" / "ranker.yaml")


def _tiny_config(path: Path) -> Path:
    path.write_text(yaml.safe_dump(tiny_ranker_config(training={"verbose": 0, "num_shards": 1})))
    return path


def test_tfrec_tune_ranker_end_to_end(tmp_path, capsys):
    argv = ["tune", "ranker", "--config", str(_tiny_config(tmp_path / "ranker.yaml")), "--space", SPACE,
            "--space-set", "tuner.algorithm=random", "--space-set", "tuner.epochs=2", "--space-set", "tuner.seed=4",
            "--max-trials", "2", "--directory", str(tmp_path / "tuning"), "--export-dir", str(tmp_path / "models")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    project = tmp_path / "tuning" / "ranker"
    saved = json.loads((project / "trials.json").read_text())
    trials = saved["trials"]
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"] and saved["objective"] == "val_click_auc"
    assert saved["best_score"] == max(t["score"] for t in trials) and 0.5 < saved["best_score"] < 1.0

    # projection_dim is set exactly when the trial chose low-rank cross layers; otherwise it is inactive.
    with open(project / "trials.csv", encoding="utf-8", newline="") as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    for t in trials:
        values = t["hyperparameters"]
        low_rank = values.get("cross_rank") == "low_rank"
        assert ("model.projection_dim" in t["overrides"]) == low_rank == ("projection_dim" in values)
        assert ("projection_dim" in t.get("inactive", [])) != low_rank
        assert (rows[t["trial_id"]]["projection_dim"] == "") != low_rank
        assert ("cross_rank" in values) == (values["cross_layers"] > 0)
        assert rows[t["trial_id"]]["val_click_auc"] == str(t["score"])
    best = load_ranker_config(str(project / "best_config.yaml"))
    assert best.model.projection_dim == saved["best_overrides"].get("model.projection_dim")
    assert best.model.cross_layers == saved["best_overrides"]["model.cross_layers"]
    assert best.model.deep_units == saved["best_overrides"]["model.deep_units"]
    assert best.model.tasks["purchase"] == pytest.approx(saved["best_overrides"]["model.tasks.purchase"])

    # The export reloads and scores the test split as the best model did in memory: the same NDCG@10 per request.
    reported = float(re.search(r"click_ndcg@10 (\d\.\d+)", printed).group(1))
    serve = tf.saved_model.load(str(tmp_path / "models" / "ranker" / "1")).signatures["serving_default"]
    test = read_split(best, str(project), "test")
    inputs = serve.structured_input_signature[1]
    served = serve(**{n: tf.constant(test[n], inputs[n].dtype) for n in inputs})
    ndcg = metrics.ndcg_at_k(test["click"], served["click_probability"].numpy(), test["request_id"], 10)
    assert ndcg == pytest.approx(reported, abs=6e-5)
    assert np.all((served["purchase_probability"].numpy() > 0) & (served["purchase_probability"].numpy() < 1))
    # The best trial learned the clicks: on the test split it ranks them better than item popularity does.
    test_auc = {k: float(v) for k, v in re.findall(r"(\w*click_auc) (\d\.\d+)", printed)}
    assert test_auc["click_auc"] > test_auc["popularity_click_auc"] + 0.05, test_auc
    assert "ground_truth_click_auc" in test_auc
