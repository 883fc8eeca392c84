"""tfrec's model server: TF Serving's gRPC PredictionService and ModelService on a ModelManager, with optional
server-side batching, TLS and a Prometheus metrics port. `build_server` returns it started:

    server, port = build_server("serving/models.config", port=8500, batching=BatchingOptions(max_batch_size=64))
    ...
    server.stop(grace=5)   # refuse new requests, let in-flight ones finish (up to `grace` s), then stop

Requests larger than `max_request_bytes` are refused by gRPC itself with RESOURCE_EXHAUSTED ("Received message
larger than max"), as a TF Serving started with a smaller grpc.max_receive_message_length does (TF Serving's own
default is 2 GiB - 1; ours is 64 MiB).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from concurrent import futures
from typing import Optional, Tuple, Union

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tfrec.server import inference
from tfrec.server.batching import BatchScheduler
from tfrec.server.config import BatchingOptions, ConfigError, ModelServerConfig, load_model_server_config
from tfrec.server.manager import ModelManager
from tfrec.server.metrics import ServerMetrics
from tfrec.server.model_service import ModelServiceServicer
from tfrec.server.prediction_service import PredictionServiceServicer

log = logging.getLogger(__name__)
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass
class ServerOptions:
    """Everything `build_server` takes besides the model config (the CLI's flags map one to one)."""

    host: str = "127.0.0.1"
    port: int = 0
    batching: Optional[BatchingOptions] = None  # None: no server-side batching
    poll_interval_s: float = 1.0  # TF Serving's --file_system_poll_wait_seconds; 0: load once, never poll
    monitoring_port: Optional[int] = None  # Prometheus text on http://host:port/ (0: any free port)
    ssl_cert_file: Optional[str] = None
    ssl_key_file: Optional[str] = None
    ssl_ca_file: Optional[str] = None  # when set, clients must present a certificate signed by it
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_workers: int = 64  # gRPC handler threads (bound the concurrent requests a batch can merge)
    warmup: bool = True
    # TF Serving's --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism: TensorFlow's thread
    # pools in this process (0: TensorFlow's default, one thread per core); set before any model loads.
    intra_op_threads: int = 0
    inter_op_threads: int = 0


def apply_tf_threads(intra_op: int = 0, inter_op: int = 0) -> None:
    """Sizes TensorFlow's thread pools (0 leaves one as it is); ConfigError naming the flag when TensorFlow has
    already started in this process with another size (the pools cannot change after that)."""
    import tensorflow as tf

    threading_api = tf.config.threading
    for value, get, put, flag in (
            (intra_op, threading_api.get_intra_op_parallelism_threads, threading_api.set_intra_op_parallelism_threads,
             "tensorflow_intra_op_parallelism"),
            (inter_op, threading_api.get_inter_op_parallelism_threads, threading_api.set_inter_op_parallelism_threads,
             "tensorflow_inter_op_parallelism")):
        if value < 0:
            raise ConfigError(f"--{flag}: must be >= 0 (0: TensorFlow's default), got {value}")
        if value and get() != value:
            try:
                put(value)
            except RuntimeError:
                raise ConfigError(f"--{flag}={value}: TensorFlow already runs in this process with "
                                  f"{get() or 'its default'} threads; set it before any model loads") from None


def _read(path: str, what: str) -> bytes:
    if not os.path.isfile(path):
        raise ConfigError(f"{what} {path}: no such file")
    with open(path, "rb") as f:
        return f.read()


def server_credentials(options: ServerOptions) -> Optional[grpc.ServerCredentials]:
    """TLS credentials from the cert/key (and optional client CA) files, or None for plaintext."""
    if not options.ssl_cert_file and not options.ssl_key_file:
        return None
    if not (options.ssl_cert_file and options.ssl_key_file):
        raise ConfigError("TLS needs both a certificate file and a key file")
    pair = (_read(options.ssl_key_file, "TLS key"), _read(options.ssl_cert_file, "TLS certificate"))
    ca = _read(options.ssl_ca_file, "TLS client CA") if options.ssl_ca_file else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


class ModelServer:
    """A running server: the gRPC server, its model manager, batch scheduler and metrics."""

    def __init__(self, grpc_server: grpc.Server, port: int, manager: ModelManager, metrics: ServerMetrics,
                 batcher: Optional[BatchScheduler], monitoring_port: Optional[int]):
        self.grpc_server, self.port, self.manager, self.metrics = grpc_server, port, manager, metrics
        self.batcher, self.monitoring_port = batcher, monitoring_port
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    def stop(self, grace: Optional[float] = 5.0) -> None:
        """Graceful shutdown: new requests are refused, requests in flight get `grace` seconds to finish (None:
        as long as they need; 0: cancelled now), then batching, polling and the metrics port stop."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self.grpc_server.stop(grace).wait()
            if self.batcher is not None:
                self.batcher.stop()
            self.manager.stop()
            self.metrics.close()
            self._stopped.set()

    def wait_for_termination(self, timeout: Optional[float] = None) -> bool:
        """Blocks until stop() completed (or the timeout passed); True when stopped."""
        return self._stopped.wait(timeout)


def build_server(config: Union[ModelServerConfig, str], host: str = "127.0.0.1", port: int = 0,
                 options: Optional[ServerOptions] = None, **overrides) -> Tuple[ModelServer, int]:
    """Starts a server for `config` (a ModelServerConfig or a models.config path) on host:port (0: a free port)
    and returns (server, bound port). The configured models' current versions are loaded before it returns.
    Keyword overrides set ServerOptions fields (batching=..., monitoring_port=..., ...)."""
    options = dataclasses.replace(options or ServerOptions(), host=host, port=port, **overrides)
    if isinstance(config, str):
        config = load_model_server_config(config)
    apply_tf_threads(options.intra_op_threads, options.inter_op_threads)
    credentials = server_credentials(options)
    metrics = ServerMetrics()
    manager = ModelManager(config, options.poll_interval_s, warmup=options.warmup, on_load=metrics.model_load)
    batcher = None
    grpc_server = None
    try:
        manager.start()
        batcher = BatchScheduler(options.batching, metrics.batch) if options.batching is not None else None
        runner = batcher.run if batcher is not None else inference.direct_runner
        grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=options.max_workers, thread_name_prefix="tfrec-grpc"),
            options=[("grpc.max_receive_message_length", int(options.max_request_bytes)),
                     ("grpc.max_send_message_length", -1),
                     ("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServiceServicer(manager, runner, metrics), grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServiceServicer(manager, metrics), grpc_server)
        address = f"{options.host}:{options.port}"
        try:
            bound = (grpc_server.add_secure_port(address, credentials) if credentials is not None
                     else grpc_server.add_insecure_port(address))
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from None
        if not bound:
            raise OSError(f"cannot listen on {address}")
        monitoring_port = metrics.serve(options.host, options.monitoring_port) if options.monitoring_port is not None \
            else None
        grpc_server.start()
    except BaseException:
        if grpc_server is not None:
            grpc_server.stop(0)
        if batcher is not None:
            batcher.stop()
        manager.stop()
        metrics.close()
        raise
    log.info("serving %s on %s:%d%s", sorted(manager.loaded()), options.host, bound,
             " (TLS)" if credentials is not None else "")
    return ModelServer(grpc_server, bound, manager, metrics, batcher, monitoring_port), bound
