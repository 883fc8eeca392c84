"""TF Serving's ModelService (tensorflow_serving.apis.model_service_pb2_grpc): GetModelStatus (each version's state
and load error, as the manager recorded it) and HandleReloadConfigRequest (serve a new model_config_list)."""

from __future__ import annotations

from typing import Optional

import grpc
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2, model_pb2, model_service_pb2_grpc

from tfrec.server.config import ConfigError
from tfrec.server.errors import ServingError
from tfrec.server.manager import ModelManager
from tfrec.server.metrics import ServerMetrics
from tfrec.server.prediction_service import handle


def model_status(manager: ModelManager, spec) -> get_model_status_pb2.GetModelStatusResponse:
    """Statuses of a model's versions (newest first), or of the version (or label) the spec names."""
    version: Optional[int] = None
    if spec.HasField("version"):
        version = spec.version.value
    elif spec.version_label:
        version = manager.resolve(spec).version
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, status in manager.version_statuses(spec.name, version):
        entry = response.model_version_status.add(version=number, state=status.state)
        entry.status.error_code = status.error_code.value[0]
        entry.status.error_message = status.error_message
    return response


def reload_config(manager: ModelManager, request) -> model_management_pb2.ReloadConfigResponse:
    """Applies the request's ModelServerConfig; an unservable one is INVALID_ARGUMENT and changes nothing."""
    try:
        manager.reload_config(request.config)
    except ConfigError as exc:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
    response = model_management_pb2.ReloadConfigResponse()
    response.status.error_code = 0
    return response


class ModelServiceServicer(model_service_pb2_grpc.ModelServiceServicer):
    """ModelService backed by a ModelManager."""

    def __init__(self, manager: ModelManager, metrics: Optional[ServerMetrics] = None):
        self._manager, self._metrics = manager, metrics

    def GetModelStatus(self, request, context):
        return handle("GetModelStatus", request.model_spec, context,
                      lambda _: model_status(self._manager, request.model_spec),
                      get_model_status_pb2.GetModelStatusResponse, self._manager, self._metrics, resolve=False)

    def HandleReloadConfigRequest(self, request, context):
        return handle("HandleReloadConfigRequest", model_pb2.ModelSpec(), context,
                      lambda _: reload_config(self._manager, request),
                      model_management_pb2.ReloadConfigResponse, self._manager, self._metrics, resolve=False)
