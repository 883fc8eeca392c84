"""Warm-up as TF Serving does it: replay the PredictionLog records of `assets.extra/tf_serving_warmup_requests`
(a TFRecord file; tfrec's exports write it, see tfrec.export.warmup) against a freshly loaded version before it
serves, so the first real requests do not pay for tracing and graph optimisation. A record that fails fails the
load."""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tfrec.export.warmup import MAX_WARMUP_RECORDS, WARMUP_FILE, warmup_path, write_warmup_requests  # noqa: F401
from tfrec.server import inference
from tfrec.server.servable import Servable


def run_warmup(servable: Servable, runner=inference.direct_runner) -> int:
    """Replays the version's warm-up records (none: nothing to do) and returns how many ran; raises ValueError
    naming the record that failed or when there are more than TF Serving's 1000."""
    path = warmup_path(servable.path)
    if not os.path.exists(path):
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise ValueError(f"{path}: more than {MAX_WARMUP_RECORDS} warm-up records")
        log = prediction_log_pb2.PredictionLog.FromString(record)
        kind = log.WhichOneof("log_type")
        try:
            if kind == "predict_log":
                inference.predict(servable, log.predict_log.request, runner)
            elif kind == "classify_log":
                inference.classify(servable, log.classify_log.request, runner)
            elif kind == "regress_log":
                inference.regress(servable, log.regress_log.request, runner)
            elif kind == "multi_inference_log":
                inference.multi_inference(servable, log.multi_inference_log.request, runner)
            else:
                raise ValueError(f"unsupported log type {kind!r}")
        except Exception as exc:
            raise ValueError(f"{path}: warm-up record {count} ({kind}) failed: {exc}") from None
    return count
