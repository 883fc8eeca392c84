"""`tfrec export` of a ranker run (click and purchase heads): the card matches the SavedModel and the run, the
server replays the warm-up records, and `classify` (click) / `classify_purchase` answer Classify and
MultiInference over real gRPC with the probabilities Predict and the in-memory ranker give."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import inference_pb2

from export_helpers import (SLIM_RANKER, SMALL_SHOP, check_card, check_warmup, classification_arrays,
                            classify_request, example_protos, predict_request, train_and_export)
from tfrec.export.signatures import CLASSIFY_METHOD
from tfrec.training import ranker_job

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    config, run, models = train_and_export(
        tmp_path_factory, ranker_job, ranker_job.train_ranker, ranker_job.load_ranker_config, "ranker.yaml",
        {"data.preset": "tiny", "data.synthetic": SMALL_SHOP, **SLIM_RANKER})
    return config, run, models / "ranker" / "1"


@pytest.fixture(scope="module")
def served(exported, serve_models):
    return serve_models({"ranker": exported[2].parent})


@pytest.fixture(scope="module")
def test_rows(exported):
    config, run, _ = exported
    spec = run.model.encoder.spec
    columns = ranker_job.read_split(config, run.run_dir, "test")
    return spec, {n: columns[n][:10] for n in spec.names}


def test_card_matches_the_saved_model_and_the_run(exported):
    _, run, path = exported
    card = check_card(path, run.run_dir)
    assert card["model"] == "dcn_ranker" and card["job"] == "ranker"
    assert card["tasks"] == {"click": 1.0, "purchase": 0.5} and "position" not in card["inputs"]
    methods = {k: v["method"] for k, v in card["signatures"].items()}
    assert methods["classify"] == methods["classify_purchase"] == CLASSIFY_METHOD and "regress" not in methods
    assert "click_probability" in card["signatures"]["classify"]["description"]
    click = {row["model"]: row["metrics"] for row in card["metrics"]["test"]["heads"]["click"]}
    assert click["dcn_ranker"]["auc"] == run.report.row("click", "dcn_ranker")["auc"]


def test_server_replays_every_warmup_record(exported, served):
    _, run, path = exported
    check_warmup(path, "ranker", served[2])


def test_classify_and_multi_inference_match_predict_and_the_in_memory_ranker(exported, served, test_rows):
    _, run, _ = exported
    _, stub, _ = served
    spec, rows = test_rows
    examples = example_protos(rows)
    predicted = stub.Predict(predict_request("ranker", "serving_default", rows, spec)).outputs
    in_memory = run.model(next(spec.tensor_batches(rows)))
    for signature, head in (("classify", "click"), ("classify_purchase", "purchase")):
        labels, scores = classification_arrays(stub.Classify(classify_request("ranker", signature, examples)))
        assert (labels == [["0", "1"]] * len(rows["user_id"])).all()
        served_p = tf.make_ndarray(predicted[f"{head}_probability"])
        np.testing.assert_allclose(scores[:, 1], served_p, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(scores[:, 1], in_memory[f"{head}_probability"].numpy(), rtol=1e-5, atol=1e-7)

    request = inference_pb2.MultiInferenceRequest()
    request.input.example_list.examples.extend(examples)
    for signature in ("classify", "classify_purchase"):
        task = request.tasks.add(method_name=CLASSIFY_METHOD)
        task.model_spec.name, task.model_spec.signature_name = "ranker", signature
    results = stub.MultiInference(request).results
    both = [np.array([[c.score for c in row.classes] for row in r.classification_result.classifications])
            for r in results]
    np.testing.assert_allclose(both[0][:, 1], tf.make_ndarray(predicted["click_probability"]), rtol=1e-6)
    np.testing.assert_allclose(both[1][:, 1], tf.make_ndarray(predicted["purchase_probability"]), rtol=1e-6)
