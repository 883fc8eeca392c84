"""TF Serving's PredictionService (tensorflow_serving.apis.prediction_service_pb2_grpc) over the model manager:
Predict, Classify, Regress, MultiInference and GetModelMetadata (see tfrec.server.inference for what each
accepts). Every failure becomes a gRPC status, never an exception out of the handler:
- unknown model, version or version label → NOT_FOUND;
- a missing, unknown, mistyped or misshapen input, an unknown output_filter name, an unsupported metadata field
  → INVALID_ARGUMENT naming it; an unknown signature → FAILED_PRECONDITION (TF Serving's code);
- a full batch queue → RESOURCE_EXHAUSTED; TF errors while running keep their code; anything else → INTERNAL.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

import grpc
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, inference_pb2, model_pb2,
                                     predict_pb2, prediction_service_pb2_grpc, regression_pb2)

from tfrec.server import inference
from tfrec.server.errors import as_serving_error, invalid
from tfrec.server.manager import ModelManager
from tfrec.server.metrics import ServerMetrics
from tfrec.server.servable import Servable

log = logging.getLogger(__name__)
SIGNATURE_DEF = "signature_def"


def handle(api: str, spec: model_pb2.ModelSpec, context, work: Callable, empty: Callable, manager: ModelManager,
           metrics: Optional[ServerMetrics], precheck: Optional[Callable[[], None]] = None, resolve: bool = True):
    """Runs `work(servable)` (or `work(None)` when resolve is False) for a request, turning any failure into the
    context's status (and an empty response) and recording the request's metrics."""
    start, version, code = time.monotonic(), "", "OK"
    try:
        if precheck is not None:
            precheck()
        servable = manager.resolve(spec) if resolve else None
        version = str(servable.version) if servable is not None else ""
        return work(servable)
    except Exception as exc:
        error = as_serving_error(exc)
        code = error.code.name
        if error.code == grpc.StatusCode.INTERNAL:
            log.exception("%s on %s failed", api, spec.name)
        context.set_code(error.code)
        context.set_details(error.message)
        return empty()
    finally:
        if metrics is not None:  # names of unknown models are not labels (clients could grow the registry)
            model = spec.name if manager.has_model(spec.name) else ""
            metrics.request(model, version, api, code, time.monotonic() - start)


def check_metadata_fields(request: get_model_metadata_pb2.GetModelMetadataRequest) -> None:
    """INVALID_ARGUMENT unless the request asks for metadata fields and all are 'signature_def'."""
    if not request.metadata_field:
        raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF:
            raise invalid(f"Metadata field {field!r} is not supported (only {SIGNATURE_DEF!r})")


def model_metadata(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """TF Serving's response: model_spec (name, version) and metadata['signature_def'] = Any(SignatureDefMap)."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature)
    response.metadata[SIGNATURE_DEF].Pack(signature_map)
    return response


class PredictionServiceServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """PredictionService backed by a ModelManager; `runner` is the batch scheduler's run when batching is on."""

    def __init__(self, manager: ModelManager, runner: inference.Runner = inference.direct_runner,
                 metrics: Optional[ServerMetrics] = None):
        self._manager, self._runner, self._metrics = manager, runner, metrics

    def _handle(self, api, spec, context, work, empty, precheck=None):
        return handle(api, spec, context, work, empty, self._manager, self._metrics, precheck)

    def Predict(self, request, context):
        return self._handle("Predict", request.model_spec, context,
                            lambda s: inference.predict(s, request, self._runner), predict_pb2.PredictResponse)

    def Classify(self, request, context):
        return self._handle("Classify", request.model_spec, context,
                            lambda s: inference.classify(s, request, self._runner),
                            classification_pb2.ClassificationResponse)

    def Regress(self, request, context):
        return self._handle("Regress", request.model_spec, context,
                            lambda s: inference.regress(s, request, self._runner), regression_pb2.RegressionResponse)

    def MultiInference(self, request, context):
        spec = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        return self._handle("MultiInference", spec, context,
                            lambda s: inference.multi_inference(s, request, self._runner),
                            inference_pb2.MultiInferenceResponse,
                            precheck=lambda: inference.check_multi_inference(request))

    def GetModelMetadata(self, request, context):
        return self._handle("GetModelMetadata", request.model_spec, context, model_metadata,
                            get_model_metadata_pb2.GetModelMetadataResponse,
                            precheck=lambda: check_metadata_fields(request))
