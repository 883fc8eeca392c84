"""`tfrec tune intent` on a tiny synthetic shop with the small fallback BERT (fast): both trials train, the objective
is the epoch-mean validation loss, the test report adds intent and slot figures, and the best trial exports a
servable query-understanding SavedModel. The shipped search space fits the intent job config."""

import json
from pathlib import Path

import tensorflow as tf

from tfrec.cli.main import main
from tfrec.training.intent_job import load_intent_config
from tfrec.tuning.intent import IntentTuningJob
from tfrec.tuning.space import check_paths, load_space

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "intent.yaml")

SPACE = """tuner: {algorithm: random, max_trials: 2, epochs: 1, objective: val_objective, direction: min, seed: 3, project_name: intent}
hyperparameters:
  - {name: learning_rate, path: training.optimizer.learning_rate, type: float, min: 1.0e-4, max: 1.0e-3, sampling: log}
  - {name: trainable_layers, path: model.trainable_layers, type: choice, values: [-1, 1]}
"""


def test_the_shipped_space_fits_the_intent_config():
    space = load_space(REPO / "configs" / "tuning" / "intent.yaml")
    check_paths(space, load_intent_config(CONFIG), IntentTuningJob.fixed_paths)
    assert space.tuner.objective == "val_objective" and space.tuner.direction == "min"
    assert "model.trainable_layers" in space.paths.values()


def test_tfrec_tune_intent_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TFREC_BERT_PACKAGE", "none")  # the 2-layer fallback keeps trials quick
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    argv = ["tune", "intent", "--config", CONFIG, "--space", str(space),
            "--set", "data.dataset.preset=tiny", "--set", "data.max_queries=300", "--set", "model.max_length=16",
            "--set", "training.verbose=0", "--set", "training.num_shards=1",
            "--directory", str(tmp_path / "tuning"), "--export-dir", str(tmp_path / "models")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    trials = json.loads((tmp_path / "tuning" / "intent" / "trials.json").read_text())
    scores = [t["score"] for t in trials["trials"] if t["score"] is not None]
    assert len(scores) == 2 and trials["best_score"] == min(scores)
    assert trials["best_overrides"]["model.trainable_layers"] in (-1, 1)
    assert "intent_top1" in printed and "slot_f1" in printed
    serve = tf.saved_model.load(str(tmp_path / "models" / "intent" / "1")).signatures["serving_default"]
    out = serve(query=tf.constant(["blue sofa under $300"]))
    assert out["top_intents"].shape[0] == 1 and out["embedding"].shape[0] == 1
