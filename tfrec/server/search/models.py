"""Calls to the models through the model server's gRPC PredictionService (tensorflow-serving-api stubs): one
`ModelCaller` per model with its own timeout, output filter and, once it looks down, a pause (`retry_after_s`)
during which requests degrade at once instead of each waiting for the same dead server. Retrieval is never paused:
without it there is no answer, so every request tries it.

Request tensors are built directly as TensorProtos (strings as pre-encoded bytes), which keeps a ranker request
for hundreds of candidates to a few hundred microseconds of Python.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Dict, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2

from tfrec.server.client import PredictionClient
from tfrec.server.search.config import ModelEndpoint, SearchConfig


TIMEOUTS_BEFORE_PAUSE = 3


class ModelUnavailable(Exception):
    """A model call that failed or was skipped; `status` is the gRPC status name (UNAVAILABLE, NOT_FOUND, ...)."""

    def __init__(self, model: str, status: str, message: str):
        super().__init__(f"{model}: {status}: {message}")
        self.model, self.status, self.message = model, status, message


def tensor_proto(values, dtype: tf.DType) -> tensor_pb2.TensorProto:
    """A 1-D TensorProto of `values` (bytes/str for strings, numbers otherwise) with the signature's dtype."""
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    proto.tensor_shape.dim.add(size=len(values))
    if dtype == tf.string:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values)
    else:
        proto.tensor_content = np.asarray(values, dtype=dtype.as_numpy_dtype).tobytes()
    return proto


@dataclasses.dataclass
class _Health:
    """Recent failures of one model version label: paused until `down_until` after `last_failure`."""

    down_until: float = 0.0
    timeouts: int = 0  # consecutive DEADLINE_EXCEEDED
    last_failure: Optional[ModelUnavailable] = None


class ModelCaller:
    """Predict on one model (`endpoint`) through `client`; failures become ModelUnavailable. Each version label
    pauses on its own, so an A/B arm's broken label does not take the other arms' version down with it."""

    def __init__(self, endpoint: ModelEndpoint, client: PredictionClient, retry_after_s: float = 1.0,
                 outputs: Sequence[str] = ()):
        self.endpoint, self.client, self.retry_after_s = endpoint, client, retry_after_s
        self.outputs = list(outputs)
        self._lock = threading.Lock()
        self._health: Dict[str, _Health] = {}

    @property
    def name(self) -> str:
        return self.endpoint.name

    def _label(self, version_label: Optional[str]) -> str:
        return version_label or self.endpoint.version_label or ""

    def _check_paused(self, label: str) -> None:
        with self._lock:
            health = self._health.get(label)
            if health is not None and health.last_failure is not None and time.monotonic() < health.down_until:
                failure = health.last_failure
                raise ModelUnavailable(self.name, failure.status, f"{failure.message} (not retried for "
                                       f"{health.down_until - time.monotonic():.1f} s)")

    def _failed(self, status: str, message: str, label: str) -> ModelUnavailable:
        """A failure; the model is paused when it looks down: at once for a missing model or server, after
        TIMEOUTS_BEFORE_PAUSE timeouts in a row for a slow one (one slow call under load is not an outage)."""
        failure = ModelUnavailable(self.name, status, message)
        with self._lock:
            health = self._health.setdefault(label, _Health())
            health.timeouts = health.timeouts + 1 if status == "DEADLINE_EXCEEDED" else 0
            if status != "DEADLINE_EXCEEDED" or health.timeouts >= TIMEOUTS_BEFORE_PAUSE:
                health.last_failure, health.down_until = failure, time.monotonic() + self.retry_after_s
        return failure

    def _succeeded(self, label: str) -> None:
        with self._lock:
            self._health.pop(label, None)

    def input_dtypes(self, version_label: Optional[str] = None) -> Dict[str, tf.DType]:
        """{input: dtype} of the model's serving signature (GetModelMetadata, cached by the client)."""
        label = self._label(version_label)
        self._check_paused(label)
        try:
            return self.client.input_dtypes(self.name)
        except grpc.RpcError as exc:
            raise self._failed(exc.code().name, exc.details() or "metadata call failed", label) from None
        except KeyError as exc:
            raise self._failed("FAILED_PRECONDITION", str(exc), label) from None

    def predict(self, inputs: Mapping[str, Sequence], timeout_s: Optional[float] = None,
                version_label: Optional[str] = None) -> Tuple[Dict[str, np.ndarray], int]:
        """(outputs, the version that answered) for `inputs` ({name: 1-D values}), within `timeout_s` (default:
        the endpoint's timeout), from the version `version_label` names (default: the endpoint's label, else the
        newest version): an A/B arm routes its requests to its label this way."""
        label = self._label(version_label)
        dtypes = self.input_dtypes(label)
        timeout_s = self.endpoint.timeout_ms / 1000.0 if timeout_s is None else timeout_s
        if timeout_s <= 0:
            raise ModelUnavailable(self.name, "DEADLINE_EXCEEDED", "no time left in the request's deadline")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.name
        request.model_spec.signature_name = "serving_default"
        if label:
            request.model_spec.version_label = label
        for name, values in inputs.items():
            request.inputs[name].CopyFrom(tensor_proto(values, dtypes[name]))
        request.output_filter.extend(self.outputs)
        try:
            response = self.client.stub.Predict(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise self._failed(exc.code().name, exc.details() or "Predict failed", label) from None
        self._succeeded(label)
        outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        return outputs, int(response.model_spec.version.value)


def model_callers(config: SearchConfig, clients: Dict[str, PredictionClient]) -> Dict[str, ModelCaller]:
    """{role: ModelCaller} for the configured models (retrieval, and ranker / intent unless null), sharing one
    PredictionClient (one channel) per model-server address in `clients` (filled as needed)."""
    wanted = {"retrieval": (config.models.retrieval, ["item_ids", "scores"]),
              "ranker": (config.models.ranker, []),  # every head: a few floats per candidate
              "intent": (config.models.intent, ["intent", "intent_probability", "category", "brand", "color", "size",
                                                "gender", "material", "price_min", "price_max"])}
    callers = {}
    for role, (endpoint, outputs) in wanted.items():
        if endpoint is None:
            continue
        address = endpoint.address or config.model_server
        if address not in clients:
            clients[address] = PredictionClient(address, timeout=config.metadata_timeout_s)
        pause = 0.0 if role == "retrieval" else config.retry_after_s
        callers[role] = ModelCaller(endpoint, clients[address], pause, outputs)
    return callers
