"""Starting the search service: catalog, calibration, model callers, pipeline, the live user state (`online`), the
A/B router (`ab`), the metrics port and the gRPC server, bound to 127.0.0.1 unless told otherwise.

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
from tfrec.server.search.arms import load_arm_router
from tfrec.server.search.calibration import Calibration
from tfrec.server.search.catalog import Catalog, load_catalog
from tfrec.server.search.config import SearchConfig
from tfrec.server.search.inputs import model_inputs
from tfrec.server.search.live_state import LiveState, load_live_state
from tfrec.server.search.metrics import SearchMetrics
from tfrec.server.search.models import ModelUnavailable, model_callers
from tfrec.server.search.pipeline import SearchPipeline
from tfrec.server.search.service import SearchServicer

log = logging.getLogger(__name__)


class SearchServer:
    """A running search service: its gRPC server, pipeline, model-server channels, live state (or None) and
    metrics (`metrics_port`: the HTTP port, or None)."""

    def __init__(self, grpc_server: Optional[grpc.Server], port: int, pipeline: SearchPipeline,
                 clients: Dict[str, PredictionClient], servicer: SearchServicer, live: Optional[LiveState] = None,
                 metrics_port: Optional[int] = None):
        self.grpc_server, self.port, self.pipeline, self.clients, self.servicer = (grpc_server, port, pipeline,
                                                                                  clients, servicer)
        self.live, self.metrics, self.metrics_port = live, servicer.metrics, metrics_port
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def stop(self, grace: Optional[float] = 5.0) -> None:
        """Refuses new requests, lets those in flight finish for up to `grace` seconds, then closes the channels."""
        with self._lock:
            if self._stopped.is_set():
                return
            if self.grpc_server is not None:
                self.grpc_server.stop(grace).wait()
            self.pipeline.close()
            for client in self.clients.values():
                client.close()
            self.metrics.close()
            if self.live is not None:
                self.live.close()
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
    (server, bound port). `user_state` and `event_sink` are personalisation and feedback hooks; when not given and
    `config.online.enabled`, both are the live state built from the online config (event log + user-state store,
    restored from the log). The A/B router comes from `config.ab`, the metrics port from `server.metrics_port`."""
    host = config.server.host if host is None else host
    port = config.server.port if port is None else port
    catalog = catalog if catalog is not None else load_catalog(config.catalog, config.users)
    served = {role: getattr(config.models, role) for role in ("retrieval", "ranker", "intent")}
    router = load_arm_router(config, {role: endpoint.name for role, endpoint in served.items() if endpoint})
    metrics = SearchMetrics()
    live = load_live_state(config, catalog, metrics.registry) if user_state is None and event_sink is None else None
    if live is not None:
        user_state, event_sink = live.store, live
    try:
        pipeline, clients = build_pipeline(config, catalog, user_state)
    except BaseException:
        if live is not None:
            live.close()
        raise
    servicer = SearchServicer(pipeline, event_sink, event_factory, router, metrics)
    running = SearchServer(None, 0, pipeline, clients, servicer, live)
    try:
        if config.server.metrics_port is not None:
            running.metrics_port = servicer.metrics.serve(host, config.server.metrics_port)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.server.max_workers,
                                                        thread_name_prefix="tfrec-search"),
                             options=[("grpc.so_reuseport", 0)])
        search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, server)
        address = f"{host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from None
        if not bound:
            raise OSError(f"cannot listen on {address}")
    except BaseException:
        running.stop(0)
        raise
    server.start()
    running.grpc_server, running.port = server, bound
    log.info("search service on %s:%d (model server %s)", host, bound, config.model_server)
    return running, bound
