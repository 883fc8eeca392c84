"""Export test helpers (export_helpers.py) made importable, and a real model server whose warm-up counts are
recorded."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def serve_models():
    """`serve_models({name: base_path})` → (server, stub, warm-up records replayed per (name, version)): a real
    tfrec model server on loopback with warm-up on; the servers are stopped after the module."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfrec.server import build_server, manager
    from tfrec.server.config import ModelServerConfig

    started, replayed = [], {}
    real = manager.run_warmup

    def recording(servable, *args, **kwargs):
        count = real(servable, *args, **kwargs)
        replayed[(servable.name, servable.version)] = count
        return count

    patch = pytest.MonkeyPatch()
    patch.setattr(manager, "run_warmup", recording)

    def start(models):
        config = ModelServerConfig()
        for name, base in models.items():
            config.model_config_list.config.add(name=name, base_path=str(base), model_platform="tensorflow")
        server, port = build_server(config, poll_interval_s=0, warmup=True)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return server, prediction_service_pb2_grpc.PredictionServiceStub(channel), replayed

    yield start
    for server, channel in started:
        channel.close()
        server.stop(grace=1)
    patch.undo()
