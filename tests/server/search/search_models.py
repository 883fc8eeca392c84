"""The real models the search tests serve, trained briefly on a tiny synthetic shop and exported as SavedModels:
two-tower retrieval (the whole catalog in the graph), the DCN ranker and the query-understanding model (on the small
random BERT stand-in, so the session does not fine-tune MiniLM: it parses slots, if less reliably)."""

import contextlib
import os
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[3]
SHOP = {"n_items": 300, "n_users": 120, "n_sessions": 2500}


class SearchModels(NamedTuple):
    shop: Path  # dataset directory (catalog, events, users, ground truth)
    models: Path  # <models>/{retrieval,ranker,intent}/1


@contextlib.contextmanager
def _random_bert():
    """The intent model on the random 2-layer BERT stand-in (tfrec.text.bert_checkpoint), not MiniLM."""
    from tfrec.text.bert_checkpoint import PACKAGE_ENV

    old = os.environ.get(PACKAGE_ENV)
    os.environ[PACKAGE_ENV] = "none"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PACKAGE_ENV, None)
        else:
            os.environ[PACKAGE_ENV] = old


def build_search_models(base: Path, seed: int = 5) -> SearchModels:
    import warnings

    from tfrec.data.dataset_io import write_dataset
    from tfrec.data.synthetic import SyntheticConfig, generate
    from tfrec.export.intent import export_intent
    from tfrec.export.ranker import export_ranker
    from tfrec.export.retrieval import export_retrieval
    from tfrec.training.intent_job import load_intent_config, train_intent
    from tfrec.training.ranker_job import load_ranker_config, train_ranker
    from tfrec.training.retrieval_job import load_retrieval_config, read_catalog, train_retrieval

    shop, models, runs = base / "shop", base / "models", base / "runs"
    data = generate(SyntheticConfig.preset("tiny", seed=seed, **SHOP))
    write_dataset(data.dataset, str(shop), format="csv")
    data.ground_truth.save(str(shop))
    quiet = lambda *_: None  # noqa: E731
    common = {"data.source": "directory", "data.path": str(shop), "training.verbose": 0}

    config = load_retrieval_config(str(REPO / "configs" / "retrieval.yaml"),
                                   {**common, "training.epochs": 3, "run_dir": str(runs / "retrieval")})
    retrieval = train_retrieval(config, log=quiet)
    export_retrieval(retrieval.model, read_catalog(config, config.run_dir), str(models), "retrieval", k=300)

    config = load_ranker_config(str(REPO / "configs" / "ranker.yaml"),
                                {**common, "training.epochs": 2, "baseline": None, "run_dir": str(runs / "ranker")})
    export_ranker(train_ranker(config, log=quiet).model, str(models), "ranker")

    with _random_bert(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        config = load_intent_config(str(REPO / "configs" / "intent.yaml"), {
            "data.dataset.source": "directory", "data.dataset.path": str(shop), "data.max_queries": 600,
            "training.epochs": 2, "training.optimizer.learning_rate": 2e-3,  # a random BERT needs a larger step
            "training.verbose": 0, "zero_shot_baseline": False,
            "run_dir": str(runs / "intent")})
        export_intent(train_intent(config, log=quiet).model, str(models), "intent")
    return SearchModels(shop, models)


def serve_models(models: Path, names, config_name: str = "models.config"):
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


if __name__ == "__main__":  # python tests/server/search/search_models.py /tmp/dir: build once, by hand
    import sys
    import time

    start = time.time()
    print(build_search_models(Path(sys.argv[1])), f"{time.time() - start:.0f} s")
