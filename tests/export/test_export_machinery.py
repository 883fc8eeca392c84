"""The export machinery on a toy model (fast): classify/regress method names written into saved_model.pb with a
current fingerprint and still loadable, warm-up records that name bad rows and that the server replays, Classify
and Regress over real gRPC equal to Predict, the card's markdown, and reading older exports' cards."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import regression_pb2

from export_helpers import check_warmup, classification_arrays, classify_request, example_protos, predict_request
from tfrec.export.model_card import card_markdown, flat_metrics, load_model_info
from tfrec.export.saved_model import export_saved_model
from tfrec.export.signatures import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD, binary_classify, regression
from tfrec.export.warmup import typed_rows, warmup_logs
from tfrec.features.spec import FeatureConfig, FeatureSpec
from tfrec.server.servable import read_signature_defs

SPEC = FeatureSpec([FeatureConfig("user_id"), FeatureConfig("price", dtype="float", kind="numeric"),
                    FeatureConfig("clicks", dtype="int", kind="numeric", default=2)])
ROWS = {"user_id": np.array(["u1", "u22", "u333"], dtype=object), "price": np.array([1.5, -2.0, 0.25]),
        "clicks": np.array([0, 3, 7])}


def toy_outputs(weight):
    def outputs(features):
        logit = weight * features["price"] + tf.cast(features["clicks"], tf.float32) \
            - tf.cast(tf.strings.length(features["user_id"]), tf.float32)
        return {"probability": tf.sigmoid(logit), "value": weight * features["price"]}

    return outputs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    module = tf.Module()
    module.weight = tf.Variable(0.5)
    base = tmp_path_factory.mktemp("toy")
    heads = {"classify": binary_classify("probability"), "regress": regression("value")}
    info = {"model": "toy", "metrics": {"test": {"auc": 0.75, "calibration": [{"count": 3}],
                                                 "rows": [{"model": "toy", "ndcg": 0.5}]}}}
    path = export_saved_model(module, toy_outputs(module.weight), SPEC, str(base), "toy", info=info,
                              warmup_signatures=None,  # every signature (the default warms serving_default only)
                              examples_signatures=heads, warmup_rows=ROWS)
    return base, path


@pytest.fixture(scope="module")
def served(exported, serve_models):
    return serve_models({"toy": os.path.join(exported[0], "toy")})


def test_method_names_are_rewritten_and_the_model_still_loads(exported, tmp_path):
    _, path = exported
    methods = {k: v.method_name for k, v in read_signature_defs(path).items() if not k.startswith("__")}
    assert methods == {"serving_default": PREDICT_METHOD, "predict": PREDICT_METHOD,
                       "serving_examples": PREDICT_METHOD, "classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD}
    loaded = tf.saved_model.load(path)
    examples = tf.constant([e.SerializeToString() for e in example_protos(ROWS)])
    scores = loaded.signatures["classify"](inputs=examples)["scores"].numpy()
    probability = loaded.signatures["serving_default"](**{k: tf.constant(v.astype(str) if v.dtype == object else v,
                                                                         SPEC[k].tf_dtype)
                                                          for k, v in ROWS.items()})["probability"].numpy()
    np.testing.assert_allclose(scores[:, 1], probability, rtol=1e-6)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    # The fingerprint describes the rewritten saved_model.pb: recomputing it on a copy gives the same one.
    from tensorflow.python.saved_model import fingerprinting_utils

    copy = shutil.copytree(path, tmp_path / "copy")
    fingerprinting_utils.write_fingerprint(str(copy))
    assert tf.saved_model.experimental.read_fingerprint(path) == tf.saved_model.experimental.read_fingerprint(
        str(copy))


def test_classify_and_regress_over_grpc_equal_predict_and_warmup_was_replayed(exported, served):
    _, path = exported
    _, stub, replayed = served
    logs = check_warmup(path, "toy", replayed, {"user_id": "u1", "price": 1.5, "clicks": 0}, warmed=None)
    assert len(logs) == 10  # 5 signatures x batch sizes 1 and 16
    predicted = stub.Predict(predict_request("toy", "serving_default", ROWS, SPEC)).outputs
    labels, scores = classification_arrays(stub.Classify(classify_request("toy", "classify", example_protos(ROWS))))
    assert labels.tolist() == [["0", "1"]] * 3
    np.testing.assert_allclose(scores[:, 1], tf.make_ndarray(predicted["probability"]), rtol=1e-6)
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "regress"
    request.input.example_list.examples.extend(example_protos(ROWS))
    values = [r.value for r in stub.Regress(request).result.regressions]
    np.testing.assert_allclose(values, 0.5 * ROWS["price"], rtol=1e-6)


def test_warmup_rows_end_with_the_default_row_and_bad_rows_are_named():
    rows = typed_rows(SPEC, ROWS, limit=3)
    assert rows["user_id"].tolist() == ["u1", "u22", ""] and rows["clicks"].tolist() == [0, 3, 2]
    assert rows["price"].dtype == np.float32 and rows["clicks"].dtype == np.int64
    assert typed_rows(SPEC, None, limit=16)["clicks"].tolist() == [2]
    with pytest.raises(ValueError, match=r"no column for features \['clicks'\]"):
        typed_rows(SPEC, {"user_id": ["u"], "price": [1.0]}, 4)
    with pytest.raises(ValueError, match=r"warm-up row 1, feature 'price': expected a float, got 'cheap'"):
        typed_rows(SPEC, {"user_id": ["a", "b"], "price": [1.0, "cheap"], "clicks": [1, 2]}, 4)
    with pytest.raises(ValueError, match="differ in length"):
        typed_rows(SPEC, {"user_id": ["a", "b"], "price": [1.0], "clicks": [1, 2]}, 4)
    with pytest.raises(ValueError, match="positive integers"):
        warmup_logs("toy", SPEC, {}, ROWS, batch_sizes=[0, 4])


def test_an_export_cannot_redefine_a_standard_signature(tmp_path):
    module = tf.Module()
    module.weight = tf.Variable(1.0)
    with pytest.raises(ValueError, match="'predict' is already defined"):
        export_saved_model(module, toy_outputs(module.weight), SPEC, str(tmp_path), "toy",
                           examples_signatures={"predict": regression("value")})
    assert not os.path.exists(tmp_path / "toy" / "1")


def test_card_markdown_and_older_exports(exported, tmp_path):
    _, path = exported
    card = load_model_info(path)
    markdown = open(os.path.join(path, "model_card.md"), encoding="utf-8").read()
    assert markdown == card_markdown(card)
    assert "| predict | predict | as serving_default | as serving_default |" in markdown
    assert "| regress | regress | inputs string[?] | outputs float32[?] |" in markdown
    assert flat_metrics(card["metrics"]) == ["test.auc: 0.75", "test.rows[toy].ndcg: 0.5"]
    legacy = tmp_path / "old" / "1"
    os.makedirs(legacy / "assets.extra")
    (legacy / "assets.extra" / "tfrec_model.json").write_text(json.dumps({"model": "logistic_ctr"}))
    assert load_model_info(str(legacy)) == {"model": "logistic_ctr"}
    with pytest.raises(FileNotFoundError, match="model_card.json"):
        load_model_info(str(tmp_path))
