"""Model manager over real gRPC: hot-loading while serving, failed versions, GetModelStatus, config reload, warm-up."""

import os
import shutil
import threading

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (get_model_status_pb2, model_management_pb2, prediction_log_pb2)

from tfrec.server import build_server, single_model_config
from tfrec.server.manager import ModelManager, State
from tfrec.server.warmup import write_warmup_requests
from tiny_serving import Client, add_version, predict_request, rpc_error, wait_for


def _status(client, name="tiny"):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return {s.version: s for s in client.models.GetModelStatus(request).model_version_status}


def test_hot_load_without_failures_then_broken_version_keeps_serving(tiny_versions, tmp_path):
    base = tmp_path / "tiny"
    add_version(tiny_versions, base, 1)
    server, port = build_server(single_model_config("tiny", str(base)), poll_interval_s=0.1)
    client = Client(port)
    seen, failures, stop, sent = set(), [], threading.Event(), [0]

    def keep_sending():
        while not stop.is_set():
            try:
                response = client.predict.Predict(predict_request(x=[1.0], words=["w"]), timeout=10)
                seen.add(float(tf.make_ndarray(response.outputs["scores"])[0]))
                sent[0] += 1
            except grpc.RpcError as exc:
                failures.append(exc)

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        wait_for(lambda: 1.0 in seen)
        add_version(tiny_versions, base, 2)
        wait_for(lambda: 2.0 in seen)
        wait_for(lambda: _status(client)[1].state == State.END)  # latest-1 policy unloads version 1
        assert server.manager.loaded() == {"tiny": [2]}

        staging = tmp_path / "staging-3"  # written aside and renamed in, as a deployer does: the poller must not
        os.makedirs(staging)              # catch an empty, half-written file (a different error)
        (staging / "saved_model.pb").write_bytes(b"not a SavedModel")
        os.rename(staging, base / "3")
        wait_for(lambda: 3 in _status(client) and _status(client)[3].state == State.END)
        status = _status(client)[3]
        assert status.status.error_code != 0 and "tensorflow.SavedModel" in status.status.error_message
        assert _status(client)[2].state == State.AVAILABLE
        before = sent[0]
        wait_for(lambda: sent[0] > before + 5)  # still serving after the failed load
    finally:
        stop.set()
        sender.join()
    assert not failures, failures[:3]
    assert seen == {1.0, 2.0}
    assert float(tf.make_ndarray(client.predict.Predict(predict_request(x=[1.0])).outputs["scores"])[0]) == 2.0

    shutil.rmtree(base / "3")  # a fixed version 3 is loaded once its directory changed
    add_version(tiny_versions, base, 3)
    wait_for(lambda: _status(client)[3].state == State.AVAILABLE)
    assert _status(client)[3].status.error_message == ""
    client.close()
    server.stop(grace=1)


def test_model_status_and_reload_config(tiny_versions, tmp_path):
    add_version(tiny_versions, tmp_path / "a", 1)
    add_version(tiny_versions, tmp_path / "b", 2)
    server, port = build_server(single_model_config("a", str(tmp_path / "a")), poll_interval_s=0)
    client = Client(port)
    assert _status(client, "a")[1].state == State.AVAILABLE
    assert rpc_error(client.models.GetModelStatus,
                     get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "b"})).code() == \
        grpc.StatusCode.NOT_FOUND

    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(single_model_config("b", str(tmp_path / "b")))
    assert client.models.HandleReloadConfigRequest(request).status.error_code == 0
    assert server.manager.loaded() == {"b": [2]}
    assert rpc_error(client.predict.Predict, predict_request(model="a")).code() == grpc.StatusCode.NOT_FOUND
    scores = tf.make_ndarray(client.predict.Predict(predict_request(model="b", x=[1.0], words=["w"])).outputs["scores"])
    assert scores.tolist() == [2.0]

    bad = model_management_pb2.ReloadConfigRequest()
    bad.config.model_config_list.config.add(name="c")  # no base_path
    error = rpc_error(client.models.HandleReloadConfigRequest, bad)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "base_path" in error.details()
    assert server.manager.loaded() == {"b": [2]}
    client.close()
    server.stop(grace=1)


def _warmup_log(words):
    log = prediction_log_pb2.PredictionLog()
    request = predict_request(x=[1.0] * len(words), words=words)
    log.predict_log.request.CopyFrom(request)
    return log


def test_warmup_records_run_at_load_and_a_failing_record_fails_the_load(tiny_versions, tmp_path):
    base = tmp_path / "tiny"
    good = add_version(tiny_versions, base, 1)
    write_warmup_requests(good, [_warmup_log(["a"]), _warmup_log(["b", "c"])])
    bad = add_version(tiny_versions, base, 2)
    broken = _warmup_log(["a"])
    del broken.predict_log.request.inputs["word"]
    write_warmup_requests(bad, [broken])

    manager = ModelManager(single_model_config("tiny", str(base)), poll_interval_s=0).start()
    assert manager.loaded() == {"tiny": [1]}  # version 2 failed, so version 1 stays the latest served
    (_, status), = manager.version_statuses("tiny", 2)
    assert status.state == State.END and "warm-up record 1" in status.error_message and "'word'" in status.error_message
    scores = manager.resolve(predict_request().model_spec).run("serving_default", {
        "x": np.array([3.0], np.float32), "word": np.array([b"z"], object)})["scores"]
    assert scores.tolist() == [3.0]
    manager.stop()
