"""PredictionService over real gRPC on loopback, with TF Serving's generated stubs."""

import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, inference_pb2, regression_pb2

from tfrec.server import build_server, parse_model_server_config
from tiny_serving import Client, add_version, predict_request, rpc_error

CONFIG = """
model_config_list {{
  config {{
    name: "tiny"
    base_path: "{base}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
    version_labels {{ key: "gone" value: 7 }}
  }}
}}
"""


@pytest.fixture(scope="module")
def served(tiny_versions, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "tiny"
    for version in (1, 2):
        add_version(tiny_versions, base, version)
    config = parse_model_server_config(CONFIG.format(base=base))
    server, port = build_server(config, poll_interval_s=0, monitoring_port=0, max_request_bytes=1 << 20)
    client = Client(port)
    yield server, client, tiny_versions
    client.close()
    server.stop(grace=1)


def _array(proto):
    return tf.make_ndarray(proto)


def test_predict_round_trip_matches_the_saved_model(served):
    server, client, versions = served
    x, words = np.array([0.5, -1.25, 3.0], np.float32), np.array([b"a", b"hello", b""], object)
    response = client.predict.Predict(predict_request(x=x, words=words))
    direct = tf.saved_model.load(versions[2]).signatures["serving_default"](x=tf.constant(x), word=tf.constant(words))
    assert set(response.outputs) == {"scores", "length", "echo"}
    for name, value in direct.items():
        got = _array(response.outputs[name])
        assert got.dtype == value.numpy().dtype and np.array_equal(got, value.numpy()), name
    assert response.model_spec.name == "tiny" and response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"


def test_output_filter(served):
    _, client, _ = served
    request = predict_request()
    request.output_filter.append("length")
    response = client.predict.Predict(request)
    assert list(response.outputs) == ["length"]
    assert _array(response.outputs["length"]).tolist() == [1, 2]
    request.output_filter.append("nope")
    error = rpc_error(client.predict.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "nope" in error.details()


def test_version_by_number_and_by_label(served):
    _, client, _ = served

    def scores(**spec):
        return _array(client.predict.Predict(predict_request(x=[1.0], words=["w"], **spec)).outputs["scores"])

    assert scores().tolist() == [2.0]  # latest
    assert scores(version=1).tolist() == [1.0]
    assert scores(version_label="stable").tolist() == [1.0]
    assert scores(version_label="canary").tolist() == [2.0]


@pytest.mark.parametrize("spec, words", [({"model": "nope"}, "nope"), ({"version": 9}, "9"),
                                         ({"version_label": "beta"}, "beta"), ({"version_label": "gone"}, "7")])
def test_not_found(served, spec, words):
    _, client, _ = served
    error = rpc_error(client.predict.Predict, predict_request(**spec))
    assert error.code() == grpc.StatusCode.NOT_FOUND and words in error.details()


def test_invalid_inputs_are_named(served):
    _, client, _ = served
    missing = predict_request()
    del missing.inputs["word"]
    unknown = predict_request()
    unknown.inputs["bogus"].CopyFrom(tf.make_tensor_proto([1.0]))
    wrong_dtype = predict_request()
    wrong_dtype.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float64)))
    wrong_shape = predict_request()
    wrong_shape.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((2, 2), np.float32)))
    broken = predict_request()
    broken.inputs["x"].tensor_content = b"\x00" * 5  # 5 bytes for 2 floats
    huge = predict_request()
    huge.inputs["x"].CopyFrom(tf.make_tensor_proto(1.0, tf.float32, shape=[1 << 40]))  # one value → 4 TiB
    for request, name, detail in [(missing, "word", "missing"), (unknown, "bogus", "not an input"),
                                  (wrong_dtype, "x", "float64"), (wrong_shape, "x", "[2, 2]"), (broken, "x", ""),
                                  (huge, "x", "bytes")]:
        error = rpc_error(client.predict.Predict, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error)
        assert f"'{name}'" in error.details() and detail in error.details(), error.details()
    signature = predict_request(signature_name="nope")
    assert rpc_error(client.predict.Predict, signature).code() == grpc.StatusCode.FAILED_PRECONDITION


def test_request_over_the_size_limit_is_resource_exhausted(served):
    _, client, _ = served
    big = predict_request(x=[1.0], words=["x" * (2 << 20)])
    assert rpc_error(client.predict.Predict, big).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.predict.Predict(predict_request()).outputs  # the server is fine afterwards


def test_get_model_metadata_returns_the_signatures(served):
    _, client, _ = served
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "tiny"
    response = client.predict.GetModelMetadata(request)
    assert response.model_spec.version.value == 2
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert set(default.inputs) == {"x", "word"} and set(default.outputs) == {"scores", "length", "echo"}
    assert default.method_name == "tensorflow/serving/predict"
    assert signatures.signature_def["classify"].method_name == "tensorflow/serving/classify"
    request.metadata_field[:] = ["other"]
    assert rpc_error(client.predict.GetModelMetadata, request).code() == grpc.StatusCode.INVALID_ARGUMENT


def _examples(message, xs, signature=None):
    if signature is not None:
        message.model_spec.name = "tiny"
        message.model_spec.signature_name = signature
    for x in xs:
        message.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return message


def test_classify_regress_and_multi_inference(served):
    _, client, _ = served
    classified = client.predict.Classify(_examples(classification_pb2.ClassificationRequest(), [1.0, 2.0], "classify"))
    first = classified.result.classifications[0].classes
    assert [(c.label, c.score) for c in first] == [("pos", 2.0), ("neg", -2.0)]
    default = client.predict.Classify(_examples(classification_pb2.ClassificationRequest(), [1.5], ""))
    assert default.model_spec.signature_name == "serving_examples"  # serving_default takes raw features
    assert [c.score for c in default.result.classifications[0].classes] == [3.0]
    regressed = client.predict.Regress(_examples(regression_pb2.RegressionRequest(), [1.0, 3.0], ""))
    assert [r.value for r in regressed.result.regressions] == [3.0, 7.0]
    wrong = _examples(regression_pb2.RegressionRequest(), [1.0], "classify")
    assert rpc_error(client.predict.Regress, wrong).code() == grpc.StatusCode.INVALID_ARGUMENT

    multi = _examples(inference_pb2.MultiInferenceRequest(), [0.5])  # the tasks carry the model_spec
    for method, signature in [("tensorflow/serving/classify", "classify"), ("tensorflow/serving/regress", "")]:
        task = multi.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "tiny", signature
    results = client.predict.MultiInference(multi).results
    assert results[0].classification_result.classifications[0].classes[0].score == 1.0
    assert results[1].regression_result.regressions[0].value == 2.0


def test_metrics_endpoint_counts_requests(served):
    server, client, _ = served
    client.predict.Predict(predict_request(version=1))
    rpc_error(client.predict.Predict, predict_request(model="nope"))
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.monitoring_port}/monitoring/prometheus/metrics").read()
    text = text.decode()
    assert 'tfrec_serving_requests_total{api="Predict",code="OK",model="tiny",version="1"}' in text
    assert 'tfrec_serving_request_errors_total{api="Predict",code="NOT_FOUND",model="",version=""}' in text
    assert "tfrec_serving_request_latency_seconds_bucket" in text
