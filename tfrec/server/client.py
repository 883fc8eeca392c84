"""A PredictionService client at the numpy level: dicts of arrays in, dicts of arrays out.

It speaks TF Serving's gRPC API through tensorflow-serving-api's stubs, so it works against `tfrec serve` and
`tensorflow_model_server` alike. Inputs are cast to the dtypes the model's signature declares (read once per
model and signature with GetModelMetadata), so callers can pass Python strings, int or float columns as they come.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

__all__ = ["PredictionClient"]


def _tensor_proto(values, dtype: tf.DType):
    array = np.asarray(values)
    if dtype == tf.string:
        flat = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.ravel().tolist()]
        return tf.make_tensor_proto(np.array(flat, dtype=object).reshape(array.shape), dtype=tf.string)
    return tf.make_tensor_proto(array.astype(dtype.as_numpy_dtype), dtype=dtype)


class PredictionClient:
    """`predict(model, inputs)` over one channel to `target` ("127.0.0.1:8500")."""

    def __init__(self, target: str, timeout: float = 30.0, credentials: Optional[grpc.ChannelCredentials] = None):
        self.channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.timeout = timeout
        self._signatures: Dict[tuple, Dict[str, tf.DType]] = {}

    def input_dtypes(self, model: str, signature: str = "serving_default") -> Dict[str, tf.DType]:
        """{input name: dtype} of a model's signature, from GetModelMetadata (cached)."""
        key = (model, signature)
        if key not in self._signatures:
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            request.model_spec.name = model
            response = self.stub.GetModelMetadata(request, timeout=self.timeout)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signatures)
            if signature not in signatures.signature_def:
                raise KeyError(f"model {model!r} has no signature {signature!r}: {sorted(signatures.signature_def)}")
            inputs = signatures.signature_def[signature].inputs
            self._signatures[key] = {name: tf.as_dtype(info.dtype) for name, info in inputs.items()}
        return self._signatures[key]

    def predict(self, model: str, inputs: Mapping[str, Sequence], signature: str = "serving_default",
                version: Optional[int] = None, version_label: Optional[str] = None,
                output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        """Runs Predict; raises grpc.RpcError with the server's status (e.g. INVALID_ARGUMENT naming an input)."""
        dtypes = self.input_dtypes(model, signature)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = int(version)
        elif version_label:
            request.model_spec.version_label = version_label
        for name, values in inputs.items():
            request.inputs[name].CopyFrom(_tensor_proto(values, dtypes.get(name, tf.string)))
        request.output_filter.extend(output_filter)
        response = self.stub.Predict(request, timeout=self.timeout)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "PredictionClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
