"""tfrec's model server, speaking TF Serving's gRPC API (tensorflow-serving-api's stubs work against both).

- `config`: models.config / batching_parameters.txt; `policy`: model_version_policy;
- `servable`: one loaded SavedModel version; `manager`: polling, loading, warm-up (`warmup`), swapping, status;
- `tensors`, `inference`: Predict / Classify / Regress / MultiInference on a version;
- `batching`: server-side batching; `metrics`: Prometheus metrics;
- `prediction_service`, `model_service`: the gRPC servicers; `server`: `build_server`;
- `tfserving`: running TF Serving's own binary with the same flags.
"""

from tfrec.server.config import (BatchingOptions, ConfigError, load_batching_parameters, load_model_server_config,
                                 parse_batching_parameters, parse_model_server_config, single_model_config)
from tfrec.server.server import ModelServer, ServerOptions, build_server

__all__ = ["BatchingOptions", "ConfigError", "ModelServer", "ServerOptions", "build_server",
           "load_batching_parameters", "load_model_server_config", "parse_batching_parameters",
           "parse_model_server_config", "single_model_config"]
