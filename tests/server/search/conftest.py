"""Session-wide fixtures of the search tests: the tiny shop's exported models (the session's shared demo run), a model
server serving them over gRPC on 127.0.0.1, and helpers to start search services against it."""

import os
import sys
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from search_models import RunningSearch, SearchModels, search_config, serve_models  # noqa: E402


@pytest.fixture(scope="session")
def search_models(demo_run):
    """The shop and models of the session's shared `tfrec demo` run (tests/conftest.py `demo_run`)."""
    return SearchModels(demo_run.shop, demo_run.models)


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
