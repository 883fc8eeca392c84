"""`models.ranker_parallel_calls`: the candidates are scored in concurrent ranker calls over row slices whose outputs
are put back in row order (the same answer as one call, over real gRPC too); few rows stay one call; slices answered
by two versions are refused; bad settings name the key."""

import numpy as np
import pytest

from tfrec.config import ConfigError
from tfrec.data.schema import CATALOG_SCHEMA, Table
from tfrec.server.search.catalog import Catalog
from tfrec.server.search.config import SearchConfig, load_search_config
from tfrec.server.search.models import ModelUnavailable
from tfrec.server.search.pipeline import SearchPipeline
from search_models import REPO


class _Ranker:
    """A ranker stand-in: click_logit = 2·price + row position in its call; records each call's rows."""

    name = "ranker"

    def __init__(self, versions=None):
        self.calls, self.versions = [], list(versions or [])

    def predict(self, inputs, timeout_s=None, label=None):
        price = np.asarray(inputs["price"], dtype=np.float64)
        self.calls.append(len(price))
        version = self.versions.pop(0) if self.versions else 1
        return {"click_logit": 2.0 * price, "tag": np.array([b"x"] * len(price))}, version


def _pipeline(**models):
    items = Table(CATALOG_SCHEMA, {"item_id": ["i0"], "title": ["t"], "category": ["c"], "brand": ["b"],
                                   "price": [1.0]})
    config = SearchConfig(catalog="<memory>")
    for key, value in models.items():
        setattr(config.models, key, value)
    return SearchPipeline(config, Catalog(items), {})


def test_slices_are_scored_concurrently_and_put_back_in_row_order():
    pipeline = _pipeline(ranker_parallel_calls=3, ranker_min_rows_per_call=64)
    try:
        inputs = {"price": np.arange(200, dtype=np.float32), "query": [b"q%d" % i for i in range(200)]}
        ranker = _Ranker()
        outputs, version = pipeline._rank_calls(ranker, inputs, 200, 5.0, None)
        assert sorted(ranker.calls) == [66, 67, 67] and version == 1  # 200 // 64 = 3 slices
        np.testing.assert_array_equal(outputs["click_logit"], 2.0 * np.arange(200))
        assert len(outputs["tag"]) == 200
        few = _Ranker()
        pipeline._rank_calls(few, {"price": np.arange(100, dtype=np.float32)}, 100, 5.0, None)
        assert few.calls == [100]  # under 2 x 64 rows: one call
    finally:
        pipeline.close()


def test_slices_answered_by_two_versions_are_refused():
    pipeline = _pipeline(ranker_parallel_calls=2, ranker_min_rows_per_call=1)
    try:
        with pytest.raises(ModelUnavailable) as err:
            pipeline._rank_calls(_Ranker(versions=[1, 2]), {"price": np.arange(4.0)}, 4, 5.0, None)
        assert err.value.status == "ABORTED" and "versions [1, 2]" in err.value.message
    finally:
        pipeline.close()


@pytest.mark.parametrize("key,value", [("ranker_parallel_calls", 0), ("ranker_min_rows_per_call", 0)])
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"models.{key}"):
        load_search_config(str(REPO / "configs" / "search.yaml"), {f"models.{key}": value})


def test_parallel_calls_give_the_one_call_answer_over_grpc(search_models, model_server, start_search):
    one = start_search()
    split = start_search(models__ranker_parallel_calls=3, models__ranker_min_rows_per_call=1)
    for query in ("red running shoes", "kettle under 50"):
        a = one.client.search(query, user_id="U1", k=10, context={"timestamp": 1_700_000_000})
        b = split.client.search(query, user_id="U1", k=10, context={"timestamp": 1_700_000_000})
        assert not a.degraded and not b.degraded, (a.degradations, b.degradations)
        assert [i.item_id for i in a.items] == [i.item_id for i in b.items] and a.items
        np.testing.assert_allclose([i.score for i in a.items], [i.score for i in b.items], rtol=1e-6)
