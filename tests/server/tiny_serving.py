"""Tiny SavedModels (plain tf.Module + tf.function) and gRPC helpers for the server tests.

Version v of the tiny model scales by v: serving_default(x: float32[batch], word: string[batch]) →
scores = v·x, length = len(word), echo = word; serving_examples(examples) → scores = v·x, outputs = v·x + 1;
`classify` (method tensorflow/serving/classify, input `inputs`) → classes [["pos", "neg"]], scores [v·x, -v·x].
"""

import os
import shutil
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

X_FEATURE = {"x": tf.io.FixedLenFeature([], tf.float32, default_value=0.0)}


def save_tiny_model(path: str, scale: float) -> str:
    """Writes the tiny model with weight `scale` to `path` (via a temporary directory renamed into place)."""
    module = tf.Module()
    module.w = tf.Variable(float(scale))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.string, name="word")])
    def serve(x, word):
        return {"scores": x * module.w, "length": tf.strings.length(word), "echo": word}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def examples(examples):
        s = tf.io.parse_example(examples, X_FEATURE)["x"] * module.w
        return {"scores": s, "outputs": s + 1.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(inputs):
        s = tf.io.parse_example(inputs, X_FEATURE)["x"] * module.w
        classes = tf.tile(tf.constant([["pos", "neg"]]), [tf.shape(s)[0], 1])
        return {"scores": tf.stack([s, -s], axis=1), "classes": classes}

    staging = path + ".staging"
    tf.saved_model.save(module, staging, signatures={
        "serving_default": serve.get_concrete_function(), "serving_examples": examples.get_concrete_function(),
        "classify": classify.get_concrete_function()})
    pb = os.path.join(staging, "saved_model.pb")
    model = saved_model_pb2.SavedModel.FromString(open(pb, "rb").read())
    model.meta_graphs[0].signature_def["classify"].method_name = "tensorflow/serving/classify"
    with open(pb, "wb") as f:
        f.write(model.SerializeToString())
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    os.rename(staging, path)
    return path


def add_version(tiny_versions, base_path: str, version: int, scale: int = None) -> str:
    """Copies the tiny model of `scale` (default: version) into `<base_path>/<version>` atomically."""
    final = os.path.join(str(base_path), str(version))
    staging = os.path.join(str(base_path), f".tmp-{version}")
    shutil.copytree(tiny_versions[scale or version], staging)
    os.rename(staging, final)
    return final


def predict_request(model="tiny", x=(1.0, 2.0), words=("a", "bb"), **spec) -> predict_pb2.PredictRequest:
    """A PredictRequest for the tiny model's serving_default."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    request.inputs["word"].CopyFrom(tf.make_tensor_proto(np.asarray(words, object)))
    return request


class Client:
    """PredictionService and ModelService stubs on one loopback channel."""

    def __init__(self, port: int, credentials=None, target: str = "127.0.0.1", options=()):
        address = f"{target}:{port}"
        self.channel = (grpc.secure_channel(address, credentials, options=list(options)) if credentials
                        else grpc.insecure_channel(address))
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self):
        self.channel.close()


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    """The RpcError a call raises (fails the test when it succeeds)."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def wait_for(condition, timeout: float = 20.0, interval: float = 0.05):
    """Polls `condition()` until it is truthy (returned) or fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")
