"""Starting the search service: catalog, calibration, model callers, pipeline and the gRPC server, bound to
127.0.0.1 unless told otherwise.

    server, port = build_search_server(load_search_config("configs/search.yaml"))
    ...
    server.stop(grace=5)
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from typing import Dict, Optional, Tuple

import grpc

from tfrec.server.client import PredictionClient
from tfrec.server.protos import search_pb2_grpc
from tfrec.server.search.calibration import Calibration
from tfrec.server.search.catalog import Catalog, load_catalog
from tfrec.server.search.config import SearchConfig
from tfrec.server.search.inputs import model_inputs
from tfrec.server.search.models import ModelUnavailable, model_callers
from tfrec.server.search.pipeline import SearchPipeline
from tfrec.server.search.service import SearchServicer

log = logging.getLogger(__name__)


class SearchServer:
    """A running search service: its gRPC server, pipeline and model-server channels."""

    def __init__(self, grpc_server: grpc.Server, port: int, pipeline: SearchPipeline,
                 clients: Dict[str, PredictionClient], servicer: SearchServicer):
        self.grpc_server, self.port, self.pipeline, self.clients, self.servicer = (grpc_server, port, pipeline,
                                                                                  clients, servicer)
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def stop(self, grace: Optional[float] = 5.0) -> None:
        """Refuses new requests, lets those in flight finish for up to `grace` seconds, then closes the channels."""
        with self._lock:
            if self._stopped.is_set():
                return
            self.grpc_server.stop(grace).wait()
            self.pipeline.close()
            for client in self.clients.values():
                client.close()
            self._stopped.set()

    def wait_for_termination(self, timeout: Optional[float] = None) -> bool:
        return self._stopped.wait(timeout)


def build_pipeline(config: SearchConfig, catalog: Optional[Catalog] = None, user_state=None,
                   clients: Optional[Dict[str, PredictionClient]] = None) -> Tuple[SearchPipeline, Dict]:
    """(pipeline, {address: PredictionClient}) for `config`. Each model is warmed up now with one request of
    missing values (its signature fetched, its first, slowest call made), so the first shopper does not pay for it;
    a model that does not answer is only logged, and retried on requests."""
    catalog = catalog if catalog is not None else load_catalog(config.catalog, config.users)
    clients = {} if clients is None else clients
    callers = model_callers(config, clients)
    for role, caller in callers.items():
        try:
            caller.predict(model_inputs(caller.input_dtypes(), {})[0], timeout_s=config.warmup_timeout_s)
        except ModelUnavailable as exc:
            log.warning("%s model not reachable yet: %s", role, exc)
    pipeline = SearchPipeline(config, catalog, callers, Calibration.load(config.calibration), user_state)
    return pipeline, clients


def build_search_server(config: SearchConfig, host: Optional[str] = None, port: Optional[int] = None,
                        catalog: Optional[Catalog] = None, user_state=None, event_sink=None,
                        event_factory=None) -> Tuple[SearchServer, int]:
    """Starts the service on host:port (default: the config's server section; port 0: a free port) and returns
    (server, bound port). `user_state` and `event_sink` are the optional personalisation and feedback hooks."""
    host = config.server.host if host is None else host
    port = config.server.port if port is None else port
    pipeline, clients = build_pipeline(config, catalog, user_state)
    servicer = SearchServicer(pipeline, event_sink, event_factory)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.server.max_workers,
                                                    thread_name_prefix="tfrec-search"),
                         options=[("grpc.so_reuseport", 0)])
    search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, server)
    address = f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        bound = 0
        log.error("cannot listen on %s: %s", address, exc)
    if not bound:
        pipeline.close()
        for client in clients.values():
            client.close()
        raise OSError(f"cannot listen on {address}")
    server.start()
    log.info("search service on %s:%d (model server %s)", host, bound, config.model_server)
    return SearchServer(server, bound, pipeline, clients, servicer), bound
