"""The real models the search tests serve: those the session's `tfrec demo --preset tiny` run trained on its shop and
exported (tests/demo_run.py): two-tower retrieval (the whole 500-item catalog in the graph), the DCN ranker and the
query-understanding model (on the small random BERT stand-in, so the session does not fine-tune MiniLM: it parses
slots, if less reliably); and helpers to serve them and start search services against them."""

from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[3]
CATALOG_SIZE = 500  # the tiny preset's items; retrieval was exported with k = configs/search.yaml's 500 candidates


class SearchModels(NamedTuple):
    shop: Path  # dataset directory (catalog, events, users, ground truth)
    models: Path  # <models>/{retrieval,ranker,intent}/1


def serve_models(models: Path, names, config_name: str = "search_tests.config"):
    """A model server (tfrec serve) for `names` under `models`, on a free loopback port: (server, port)."""
    from tfrec.server import build_server

    entries = "".join(f'  config {{ name: "{n}" base_path: "{models / n}" model_platform: "tensorflow" }}\n'
                      for n in names)
    path = models / config_name
    path.write_text("model_config_list {\n" + entries + "}\n")
    return build_server(str(path), host="127.0.0.1", port=0, poll_interval_s=0)


def search_config(shop: Path, model_port: int, **overrides):
    """configs/search.yaml pointed at the test shop and model server, listening on a free port, retrying failed
    models on every request, with generous timeouts; `overrides` are keys with `__` for dots (models__ranker__name)."""
    from tfrec.server.search.config import load_search_config

    values = {"catalog": str(shop), "model_server": f"127.0.0.1:{model_port}", "server.port": 0,
              "retry_after_s": 0.0, "deadline_ms": 60000.0}
    for model in ("retrieval", "ranker", "intent"):  # a loaded 2-core machine: latency is not what these tests test
        values[f"models.{model}.timeout_ms"] = 20000.0
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load_search_config(str(REPO / "configs" / "search.yaml"), values)


class RunningSearch:
    """A search service and a client to it; `stop()` shuts both."""

    def __init__(self, config, **hooks):
        from tfrec.server.search import SearchClient, build_search_server

        self.config = config
        self.server, self.port = build_search_server(config, **hooks)
        self.client = SearchClient(f"127.0.0.1:{self.port}", timeout=60.0)

    def stop(self):
        self.client.close()
        self.server.stop(0)
