"""Session-wide fixtures of the search tests: the tiny shop's exported models (trained once), a model server serving
them over gRPC on 127.0.0.1, and helpers to start search services against it."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from built_once import built_once  # noqa: E402
from search_models import RunningSearch, SearchModels, build_search_models, search_config, serve_models  # noqa: E402


@pytest.fixture(scope="session")
def search_models(tmp_path_factory):
    """Built once per session; TFREC_SEARCH_TEST_MODELS=<dir> keeps them in <dir> and reuses them (for iterating on
    the service, never for checking the models)."""
    keep = os.environ.get("TFREC_SEARCH_TEST_MODELS")
    if keep and (Path(keep) / "models" / "intent" / "1").is_dir():
        return SearchModels(Path(keep) / "shop", Path(keep) / "models")
    if keep:
        return build_search_models(Path(keep))
    base = built_once(tmp_path_factory, "search_models", build_search_models)  # shared by both xdist workers
    return SearchModels(base / "shop", base / "models")


@pytest.fixture(scope="session")
def model_server(search_models):
    server, port = serve_models(search_models.models, ["retrieval", "ranker", "intent"])
    yield port
    server.stop(0)


@pytest.fixture
def start_search(search_models, model_server):
    """start_search(**config_overrides, hooks={...}) → RunningSearch; every service started is stopped after."""
    started = []

    def start(hooks=None, **overrides):
        running = RunningSearch(search_config(search_models.shop, model_server, **overrides), **(hooks or {}))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
