"""`tfrec export` of a CTR run: a model card that matches the SavedModel and the run, warm-up records that the
model server replays, and a `classify` signature TF Serving's Classify API accepts, giving over real gRPC the same
click probabilities as Predict and the in-memory model."""

import grpc
import numpy as np
import pytest
import tensorflow as tf

from export_helpers import (SMALL_SHOP, check_card, check_warmup, classification_arrays, classify_request,
                            example_protos, predict_request, train_and_export)
from tfrec.data.tfrecord import list_shards, read_columns
from tfrec.training import ctr_job

# configs/ctr.yaml with one cross and one match: the same kinds of graph pieces, a fraction of the graph to trace at
# export and to optimise when the server warms each signature up.
SLIM_CTR = {"model.crosses": [["user_id", "category"]], "model.matches": [["query", "title"]],
            "model.price_limit": None, "model.hash_buckets": 4096}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    _, run, models = train_and_export(tmp_path_factory, ctr_job, ctr_job.train_ctr, ctr_job.load_ctr_config,
                                      "ctr.yaml", {"data.preset": "tiny", "data.synthetic": SMALL_SHOP, **SLIM_CTR})
    return run, models / "ctr" / "1"


@pytest.fixture(scope="module")
def served(exported, serve_models):
    return serve_models({"ctr": exported[1].parent})


@pytest.fixture(scope="module")
def test_rows(exported):
    run = exported[0]
    spec = run.model.encoder.spec
    columns = read_columns(list_shards(f"{run.run_dir}/data", "test"), spec.parse_spec())
    return spec, {k: v[:12] for k, v in columns.items()}


def test_card_matches_the_saved_model_and_the_run(exported):
    run, path = exported
    card = check_card(path, run.run_dir)
    assert card["model"] == "logistic_ctr" and card["job"] == "ctr" and card["label"] == "click"
    assert card["signatures"]["classify"]["method"] == "tensorflow/serving/classify"
    assert card["signatures"]["classify"]["outputs"] == {"classes": {"dtype": "string", "shape": [-1, 2]},
                                                         "scores": {"dtype": "float32", "shape": [-1, 2]}}
    assert card["signatures"]["predict"] == card["signatures"]["serving_default"]
    assert card["metrics"]["test"]["auc"] == run.report.to_dict()["auc"]
    assert card["training_data"]["source"]["synthetic"] == SMALL_SHOP
    assert set(card["training_data"]["splits"]) == {"train", "validation", "test"}
    assert card["config"]["model"]["label"] == "click" and "features" not in card["config"]
    assert f"auc: {run.report.to_dict()['auc']:.4g}" in (path / "model_card.md").read_text()


def test_warmup_records_use_training_rows_and_the_server_replays_them_all(exported, served):
    run, path = exported
    spec = run.model.encoder.spec
    first = read_columns(list_shards(f"{run.run_dir}/data", "train"), spec.parse_spec())
    check_warmup(path, "ctr", served[2], {n: first[n][0] for n in ("user_id", "item_id", "price", "timestamp")})


def test_classify_over_grpc_matches_predict_and_the_in_memory_model(exported, served, test_rows):
    run, _ = exported
    _, stub, _ = served
    spec, rows = test_rows
    labels, scores = classification_arrays(stub.Classify(classify_request("ctr", "classify", example_protos(rows))))
    assert (labels == [["0", "1"]] * len(labels)).all()
    predicted = tf.make_ndarray(stub.Predict(predict_request("ctr", "serving_default", rows, spec))
                                .outputs["click_probability"])
    in_memory = run.model(next(spec.tensor_batches(rows))).numpy().reshape(-1)
    np.testing.assert_allclose(scores[:, 1], predicted, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scores[:, 1], in_memory, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    alias = tf.make_ndarray(stub.Predict(predict_request("ctr", "predict", rows, spec)).outputs["click_probability"])
    np.testing.assert_array_equal(alias, predicted)


def test_classify_on_a_predict_signature_names_the_classify_signature(served, test_rows):
    _, stub, _ = served
    _, rows = test_rows
    with pytest.raises(grpc.RpcError) as error:
        stub.Classify(classify_request("ctr", "", example_protos(rows, slice(0, 2))))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "['classify']" in error.value.details()
