"""Tuning the two-tower retrieval model on a tiny synthetic shop: full-catalog validation recall is the objective,
tied and list-valued hyperparameters reach both towers, and the best trial exports servable SavedModels."""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
import yaml

from tfrec.cli.main import main
from tfrec.training.retrieval_job import load_retrieval_config

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "retrieval.yaml")
SPACE = str(REPO / "configs" / "tuning" / "retrieval.yaml")


def test_tfrec_tune_retrieval_end_to_end(tmp_path, capsys):
    argv = [
        "tune", "retrieval", "--config", CONFIG, "--space", SPACE,
        "--set", "data.preset=tiny", "--set", "training.verbose=0", "--set", "training.num_shards=1",
        "--space-set", "tuner.algorithm=random", "--space-set", "tuner.epochs=1",
        "--max-trials", "2", "--directory", str(tmp_path / "tuning"), "--export-dir", str(tmp_path / "models"),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    project = tmp_path / "tuning" / "retrieval"
    trials = json.loads((project / "trials.json").read_text())
    scores = [t["score"] for t in trials["trials"] if t["score"] is not None]
    assert len(scores) == 2 and trials["objective"] == "val_recall@50"
    assert trials["best_score"] == max(scores) and 0.0 < trials["best_score"] <= 1.0
    best = trials["best_overrides"]
    # Tied values reach both towers; the depth choice is a real list again.
    assert best["model.query.output_dim"] == best["model.candidate.output_dim"]
    assert best["model.query.hidden"] == best["model.candidate.hidden"] and isinstance(best["model.query.hidden"], list)
    config = load_retrieval_config(str(project / "best_config.yaml"))
    assert config.model.query.hidden == best["model.query.hidden"]
    assert config.training.batch_size == best["training.batch_size"]
    assert "recall@10" in printed and "popularity_recall@10" in printed

    # The best trial's export is the full retrieval set, and it serves.
    serve = tf.saved_model.load(str(tmp_path / "models" / "retrieval" / "1")).signatures["serving_default"]
    request = {"user_id": [""], "segment": [""], "age_band": [""], "recent_items": [""], "query": ["running shoes"],
               "device": ["mobile"], "timestamp": np.array([1_700_000_000], np.int64)}
    out = serve(**{k: tf.constant(v) for k, v in request.items()})
    assert out["item_ids"].shape == (1, 100)
    assert (tmp_path / "models" / "retrieval_query_tower" / "1").exists()
    assert yaml.safe_load((project / "space.yaml").read_text())["tuner"]["objective"] == "val_recall@50"
