"""`tfrec export` of a query-understanding run (on the small random BERT, so no model package is needed): the card
matches the SavedModel and the run, the server replays the warm-up records (real training queries), and
`classify` gives over real gRPC the top intents and probabilities of Predict and of the in-memory model."""

import numpy as np
import pytest
import tensorflow as tf

from export_helpers import (SMALL_SHOP, check_card, check_warmup, classification_arrays, classify_request,
                            example_protos, predict_request, train_and_export)
from tfrec.data.tfrecord import list_shards, read_columns
from tfrec.export.intent import query_spec, understand
from tfrec.text.bert_checkpoint import PACKAGE_ENV
from tfrec.training import intent_job
from tfrec.training.intent_data import load_labelled_queries, split_queries

pytestmark = pytest.mark.filterwarnings("ignore:No BERT checkpoint given")

SMALL_RUN = {"data.dataset.preset": "tiny", "data.dataset.synthetic": SMALL_SHOP, "data.max_queries": 200,
             "model.max_length": 16, "training.batch_size": 16, "zero_shot_baseline": False}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PACKAGE_ENV, "none")  # the random 2-layer BERT: the export is what is tested
        config, run, models = train_and_export(tmp_path_factory, intent_job, intent_job.train_intent,
                                               intent_job.load_intent_config, "intent.yaml", SMALL_RUN)
    return config, run, models / "intent" / "1"


@pytest.fixture(scope="module")
def served(exported, serve_models):
    return serve_models({"intent": exported[2].parent})


def test_card_matches_the_saved_model_and_the_run(exported):
    _, run, path = exported
    card = check_card(path, run.run_dir)
    assert card["model"] == "query_understanding" and card["intents"] == run.model.intents
    assert card["inputs"] == {"query": {"dtype": "string", "shape": [-1]}}
    top_k = min(run.model.config.top_k, len(run.model.intents))
    assert card["signatures"]["classify"]["outputs"]["scores"] == {"dtype": "float32", "shape": [-1, top_k]}
    assert card["metrics"]["test"] == run.report.to_dict()
    assert card["training_data"]["source"]["max_queries"] == 200


def test_server_replays_warmup_records_of_training_queries(exported, served):
    _, run, path = exported
    first = read_columns(list_shards(f"{run.run_dir}/data", "train"), query_spec().parse_spec())
    check_warmup(path, "intent", served[2], {"query": first["query"][0]})


def test_classify_gives_the_top_intents_of_predict_and_of_the_in_memory_model(exported, served):
    config, run, _ = exported
    _, stub, _ = served
    queries = split_queries(load_labelled_queries(config.data), config.data)["test"].queries[:8].astype(str)
    rows = {"query": np.array(list(queries) + ["", "red nike running shoes under 80"], dtype=object)}
    labels, scores = classification_arrays(stub.Classify(classify_request("intent", "classify", example_protos(rows))))
    predicted = stub.Predict(predict_request("intent", "serving_default", rows, query_spec())).outputs
    np.testing.assert_array_equal(labels, tf.make_ndarray(predicted["top_intents"]).astype(str))
    np.testing.assert_allclose(scores, tf.make_ndarray(predicted["top_probabilities"]), rtol=1e-6)
    in_memory = understand(run.model, tf.constant(rows["query"].astype(str)))
    np.testing.assert_array_equal(labels, in_memory["top_intents"].numpy().astype(str))
    np.testing.assert_allclose(scores, in_memory["top_probabilities"].numpy(), rtol=1e-4, atol=1e-5)
