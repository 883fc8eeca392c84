"""A ranker with a rating head exported with `export_ranker`: `regress` carries TF Serving's regress method name,
and Regress and MultiInference (classify + regress on one input) over real gRPC give the values Predict and the
in-memory ranker give; Regress without a signature name says which signature to use.

Weights are untrained (the export must reproduce any weights); tests/export/test_ranker_export.py exports a run."""

import dataclasses
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import inference_pb2, regression_pb2

from export_helpers import REPO, SLIM_RANKER, SMALL_SHOP, check_warmup, example_protos, predict_request
from tfrec.data.examples import impression_examples
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.export.model_card import load_model_info
from tfrec.export.ranker import export_ranker
from tfrec.export.signatures import CLASSIFY_METHOD, REGRESS_METHOD
from tfrec.features.stats import fit_features
from tfrec.models.ranker import build_ranker
from tfrec.training.ranker_job import load_ranker_config

ROWS = 12


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("ranker_rating")
    config = load_ranker_config(str(REPO / "configs" / "ranker.yaml"), SLIM_RANKER)
    shop = generate(SyntheticConfig.preset("tiny", seed=3, **SMALL_SHOP))
    columns = impression_examples(shop.dataset)
    spec = config.feature_spec
    fitted = fit_features(spec, {n: columns[n] for n in spec.names}, str(base / "features"))
    model = build_ranker(dataclasses.replace(config.model, tasks={"click": 1.0, "rating": 1.0}), fitted)
    rows = {n: columns[n][:ROWS] for n in model.encoder.spec.names}
    model(next(model.encoder.spec.tensor_batches(rows)))
    path = export_ranker(model, str(base / "models"), "ranker_rating", warmup_rows=rows)
    return model, rows, path


@pytest.fixture(scope="module")
def served(exported, serve_models):
    return serve_models({"ranker_rating": os.path.dirname(exported[2])})


def _regress(stub, signature, examples):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "ranker_rating", signature
    request.input.example_list.examples.extend(examples)
    return stub.Regress(request)


def test_signatures_and_warmup(exported, served):
    model, rows, path = exported
    methods = {k: v["method"] for k, v in load_model_info(path)["signatures"].items()}
    assert methods["regress"] == REGRESS_METHOD and methods["classify"] == CLASSIFY_METHOD
    check_warmup(path, "ranker_rating", served[2], {"user_id": rows["user_id"][0], "price": rows["price"][0]})


def test_regress_and_multi_inference_match_predict_and_the_in_memory_ranker(exported, served):
    model, rows, _ = exported
    _, stub, _ = served
    spec = model.encoder.spec
    examples = example_protos(rows)
    values = np.array([r.value for r in _regress(stub, "regress", examples).result.regressions], np.float32)
    predicted = stub.Predict(predict_request("ranker_rating", "serving_default", rows, spec)).outputs
    in_memory = model(next(spec.tensor_batches(rows)))
    np.testing.assert_allclose(values, tf.make_ndarray(predicted["rating"]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(values, in_memory["rating"].numpy(), rtol=1e-5, atol=1e-5)

    request = inference_pb2.MultiInferenceRequest()
    request.input.example_list.examples.extend(examples)
    for method, signature in ((CLASSIFY_METHOD, "classify"), (REGRESS_METHOD, "regress")):
        task = request.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "ranker_rating", signature
    classified, regressed = stub.MultiInference(request).results
    clicks = [row.classes[1].score for row in classified.classification_result.classifications]
    np.testing.assert_allclose(clicks, tf.make_ndarray(predicted["click_probability"]), rtol=1e-6)
    np.testing.assert_allclose([r.value for r in regressed.regression_result.regressions], values, rtol=1e-6)


def test_regress_without_a_signature_name_names_the_regress_signature(exported, served):
    _, rows, _ = exported
    _, stub, _ = served
    with pytest.raises(grpc.RpcError) as error:
        _regress(stub, "", example_protos(rows, slice(0, 1)))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "['regress']" in error.value.details()
