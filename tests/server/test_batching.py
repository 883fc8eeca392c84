"""Server-side batching over real gRPC: concurrent requests merged into one run, each caller gets its own rows;
a full queue is RESOURCE_EXHAUSTED; stop() drains requests in flight."""

import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tfrec.server import BatchingOptions, build_server, single_model_config
from tiny_serving import Client, add_version, predict_request, rpc_error, wait_for


@pytest.fixture
def base(tiny_versions, tmp_path):
    add_version(tiny_versions, tmp_path / "tiny", 3)
    return str(tmp_path / "tiny")


def test_concurrent_requests_are_merged_and_split_back(base):
    batching = BatchingOptions(max_batch_size=8, batch_timeout_micros=5_000_000, num_batch_threads=1,
                               max_enqueued_batches=4)
    server, port = build_server(single_model_config("tiny", base), poll_interval_s=0, batching=batching)
    client = Client(port)
    results, barrier = {}, threading.Barrier(4)

    def call(i):
        x = np.array([10.0 * i, 10.0 * i + 1], np.float32)
        words = np.array([b"w" * (i + 1), b"v" * (i + 2)], object)
        barrier.wait()
        response = client.predict.Predict(predict_request(x=x, words=words), timeout=30)
        results[i] = (x, words, {k: tf.make_ndarray(v) for k, v in response.outputs.items()})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1, 2, 3]
    for x, words, outputs in results.values():
        assert outputs["scores"].tolist() == (3 * x).tolist()
        assert outputs["echo"].tolist() == words.tolist()
        assert outputs["length"].tolist() == [len(w) for w in words]
    labels = {"model": "tiny", "version": "3", "signature": "serving_default"}
    # 4 requests × 2 rows fill max_batch_size 8: one run, long before the 5 s timeout
    assert server.metrics.value("tfrec_serving_batch_requests_count", **labels) == 1
    assert server.metrics.value("tfrec_serving_batch_requests_sum", **labels) == 4
    assert server.metrics.value("tfrec_serving_batch_size_sum", **labels) == 8
    client.close()
    server.stop(grace=1)


def test_full_queue_is_resource_exhausted_and_stop_drains(base):
    batching = BatchingOptions(max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=1)
    server, port = build_server(single_model_config("tiny", base), poll_interval_s=0, batching=batching)
    client = Client(port)
    servable = server.manager.resolve(predict_request().model_spec)
    entered, release, run = threading.Event(), threading.Event(), servable.run

    def blocking_run(signature, inputs):  # the batch thread holds the first batch until released
        entered.set()
        release.wait(30)
        return run(signature, inputs)

    servable.run = blocking_run
    first = client.predict.Predict.future(predict_request(x=[1.0], words=["a"]), timeout=30)
    assert entered.wait(20)
    second = client.predict.Predict.future(predict_request(x=[2.0], words=["b"]), timeout=30)
    wait_for(lambda: server.batcher.pending_batches() == 1)
    error = rpc_error(client.predict.Predict, predict_request(x=[3.0], words=["c"]), timeout=30)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue" in error.details()
    too_big = rpc_error(client.predict.Predict, predict_request(x=[1.0, 2.0], words=["a", "b"]), timeout=30)
    assert too_big.code() == grpc.StatusCode.INVALID_ARGUMENT and "larger than maximum" in too_big.details()

    stopper = threading.Thread(target=server.stop, kwargs={"grace": 20})
    stopper.start()  # refuses new requests, waits for the two in flight
    release.set()
    assert tf.make_ndarray(first.result().outputs["scores"]).tolist() == [3.0]
    assert tf.make_ndarray(second.result().outputs["scores"]).tolist() == [6.0]
    stopper.join()
    client.close()


class _FakeServable:
    """Records the batches it runs; `scalar_output` makes its outputs not batch-major."""

    name, version = "fake", 1

    def __init__(self, scalar_output=False):
        self.batches, self.scalar_output = [], scalar_output

    def run(self, signature, inputs):
        self.batches.append(len(inputs["x"]))
        return {"y": np.float32(1.0)} if self.scalar_output else {"y": inputs["x"] * 2}


def test_padding_to_allowed_batch_sizes_and_unsplittable_outputs():
    from tfrec.server.batching import BatchScheduler

    scheduler = BatchScheduler(BatchingOptions(max_batch_size=8, allowed_batch_sizes=(4, 8), num_batch_threads=1))
    fake = _FakeServable()
    out = scheduler.run(fake, "s", {"x": np.array([1.0, 2.0, 3.0], np.float32)})
    assert fake.batches == [4] and out["y"].tolist() == [2.0, 4.0, 6.0]  # padded to 4, own 3 rows back
    scalar = _FakeServable(scalar_output=True)
    assert scheduler.run(scalar, "s", {"x": np.array([1.0], np.float32)})["y"] == 1.0  # padded batch → rerun alone
    assert scalar.batches == [4, 1]
    scheduler.stop()
    with pytest.raises(Exception, match="shutting down"):
        scheduler.run(fake, "s", {"x": np.array([1.0], np.float32)})
