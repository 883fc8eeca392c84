"""The search service's parts on small in-memory catalogs: filters (request checks naming the field, masks,
relaxation of query filters), slots from text, Platt calibration, MMR diversity, the reasons, and when a model
call is paused."""

import math

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data.schema import CATALOG_SCHEMA, USERS_SCHEMA, Table
from tfrec.server.errors import ServingError
from tfrec.server.protos import search_pb2
from tfrec.server.search.calibration import Calibration, fit_platt, log_loss, sigmoid
from tfrec.server.search.catalog import Catalog
from tfrec.config import ConfigError
from tfrec.server.search.config import ModelEndpoint, load_search_config
from tfrec.server.search.diversity import mmr_order, similarity
from tfrec.server.search.explain import ReasonContext, affinity, reasons
from tfrec.server.search.filters import FilterSpec, apply_filters, check_filters, filter_mask, slot_filters
from tfrec.server.search.models import ModelCaller, ModelUnavailable
from tfrec.server.search.text_slots import TextSlots

ITEMS = [  # item_id, title, category, brand, price, color, in_stock
    ("i0", "Nike Red Trail Runner", "Shoes > Running > Trail", "Nike", 79.0, "red", "yes"),
    ("i1", "Nike Blue Road Runner", "Shoes > Running > Road", "Nike", 120.0, "blue", "no"),
    ("i2", "Adidas Red Road Runner", "Shoes > Running > Road", "Adidas", 65.0, "red", "yes"),
    ("i3", "Acme Red Kettle", "Kitchen > Kettles", "Acme", 30.0, "red", "yes"),
    ("i4", "Acme Steel Kettle", "Kitchen > Kettles", "Acme", float("nan"), "silver", "1"),
]


@pytest.fixture(scope="module")
def catalog():
    names = ("item_id", "title", "category", "brand", "price")
    columns = {name: [row[i] for row in ITEMS] for i, name in enumerate(names)}
    items = Table(CATALOG_SCHEMA, columns, {"color": [r[5] for r in ITEMS], "in_stock": [r[6] for r in ITEMS]})
    users = Table(USERS_SCHEMA, {"user_id": ["u1"]}, {"segment": ["runner"]})
    return Catalog(items, users)


def _filter(field, *values, **bounds):
    proto = search_pb2.Filter(field=field, values=list(values))
    for key, value in bounds.items():
        setattr(proto, key, value)
    return proto


ALL = np.arange(len(ITEMS))


def test_catalog_columns_stock_and_users(catalog):
    assert catalog.filterable == ["price", "category", "brand", "in_stock", "color"]
    assert catalog.in_stock.tolist() == [True, False, True, True, True]
    assert catalog.user_attributes == {"u1": {"segment": "runner"}}
    rows, known = catalog.rows(["i3", "nope", "i0"])
    assert rows.tolist() == [3, -1, 0] and known.tolist() == [True, False, True]
    assert catalog.encoded("brand", np.array([0, 2])) == [b"Nike", b"Adidas"]


@pytest.mark.parametrize("proto, message", [
    (_filter("colour", "red"), "filters[0].field: unknown filter field 'colour'"),
    (_filter("price", min=-1.0), "filters[0].min: price must be a finite number >= 0"),
    (_filter("price", min=50.0, max=10.0), "filters[0]: min 50 is above max 10"),
    (_filter("price", "cheap"), "filters[0].values: price takes min and/or max"),
    (_filter("price"), "filters[0]: a price filter needs min and/or max"),
    (_filter("brand"), "filters[0].values: a brand filter needs at least one value"),
    (_filter("brand", "Nike", max=3.0), "filters[0]: min/max apply to price only"),
    (_filter("in_stock", "yes"), "filters[0].values: in_stock takes no values"),
])
def test_bad_filters_are_invalid_argument_naming_the_field(catalog, proto, message):
    with pytest.raises(ServingError) as err:
        check_filters([proto], catalog)
    assert err.value.code.name == "INVALID_ARGUMENT" and message in err.value.message, err.value.message


def test_filter_masks(catalog):
    mask = lambda spec: filter_mask(spec, catalog, ALL).tolist()  # noqa: E731
    assert mask(FilterSpec("category", ("shoes > running",))) == [True, True, True, False, False]
    assert mask(FilterSpec("category", ("Road",))) == [False, True, True, False, False]  # a leaf name
    assert mask(FilterSpec("category", ("Shoes > Road",))) == [False] * 5  # not a prefix
    assert mask(FilterSpec("brand", ("nike", "ACME"))) == [True, True, False, True, True]
    assert mask(FilterSpec("price", min=60.0, max=100.0)) == [True, False, True, False, False]  # NaN price: out
    assert mask(FilterSpec("in_stock")) == [True, False, True, True, True]
    assert mask(FilterSpec("color", ("Red",))) == [True, False, True, True, False]
    request = check_filters([_filter("price", max=100.0), _filter("in_stock")], catalog)
    assert request == [FilterSpec("price", (), None, 100.0), FilterSpec("in_stock")]


def test_query_filters_are_relaxed_least_reliable_first_request_filters_never(catalog):
    request = [FilterSpec("brand", ("Nike",))]
    query = slot_filters({"category": "Kitchen > Kettles", "color": "red", "price_max": 100.0}, catalog)
    assert [f.field for f in query] == ["category", "color", "price"] and all(f.source == "query" for f in query)
    result = apply_filters(request, query, catalog, ALL)
    # Nike kettles do not exist: the category goes first, then red Nike under 100 is left.
    assert [f.field for f in result.relaxed] == ["category"]
    assert result.keep.tolist() == [True, False, False, False, False]
    assert [f.field for f in result.applied] == ["brand", "color", "price"]
    nothing = apply_filters([FilterSpec("brand", ("Nobody",))], query, catalog, ALL)
    assert not nothing.keep.any() and nothing.relaxed == []  # request filters hold even when nothing is left
    assert slot_filters({"category": "Shoes", "material": "leather"}, catalog, category=False) == []  # no column


def test_text_slots_find_catalog_words_and_price_rules(catalog):
    slots = TextSlots(catalog).parse("red NIKE running shoes under $80")
    assert slots["brand"] == "Nike" and slots["color"] == "red" and slots["price_max"] == 80.0
    assert math.isnan(slots["price_min"]) and slots["size"] == ""
    assert TextSlots(catalog).parse("nikes")["brand"] == ""  # whole words only


def test_platt_scaling_recovers_the_true_calibration():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, 20000)
    labels = (rng.random(len(logits)) < sigmoid(0.5 * logits - 1.5)).astype(float)
    a, b = fit_platt(logits, labels)
    assert abs(a - 0.5) < 0.05 and abs(b + 1.5) < 0.08, (a, b)
    assert log_loss(sigmoid(a * logits + b), labels) < log_loss(sigmoid(logits), labels) - 0.05
    with pytest.raises(ValueError, match="both clicked and not-clicked"):
        fit_platt(logits[:10], np.zeros(10))


def test_calibration_round_trip_and_errors(tmp_path):
    cal = Calibration("platt", 0.5, -1.5, "ranker", 3, {"fit_rows": 10})
    cal.save(str(tmp_path / "c.json"))
    loaded = Calibration.load(str(tmp_path / "c.json"))
    assert loaded == cal and "fitted on ranker v3" in loaded.describe()
    assert loaded.probability(np.array([3.0]))[0] == pytest.approx(0.5)
    assert Calibration.load(None).probability(np.array([0.0]))[0] == 0.5
    with pytest.raises(FileNotFoundError, match="search-calibrate"):
        Calibration.load(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"method": "isotonic"}')
    with pytest.raises(ValueError, match="method 'isotonic'"):
        Calibration.load(str(tmp_path / "bad.json"))


def test_similarity_shares_category_depth_and_brand():
    levels = [["shoes", "running", "trail"], ["shoes", "running", "road"], ["kitchen", "kettles"]]
    sim = similarity(levels, ["nike", "nike", "acme"], category_weight=1.0, brand_weight=1.0)
    assert sim[0, 1] == pytest.approx((2 / 3 + 1) / 2) and sim[0, 2] == 0.0 and sim[2, 2] == 1.0
    assert np.allclose(sim, sim.T)


def test_mmr_keeps_score_order_at_one_and_spreads_below():
    levels = [["a", "x"]] * 4 + [["b", "y"]] * 2
    brands = ["p"] * 4 + ["q"] * 2
    scores = np.array([1.0, 0.95, 0.9, 0.85, 0.5, 0.45])
    sim = similarity(levels, brands)
    assert mmr_order(scores, sim, 4, 1.0) == [0, 1, 2, 3]
    spread = mmr_order(scores, sim, 4, 0.5)
    assert spread[0] == 0 and 4 in spread and len(set(spread)) == 4
    titles = ["same", "same", "other", "x", "y", "z"]
    assert mmr_order(scores, sim, 3, 1.0, titles) == [0, 2, 3]  # the second "same" is a duplicate
    assert mmr_order(np.zeros(0), similarity([], []), 3, 0.7) == []


def test_reasons_and_affinity(catalog):
    item = catalog.item(0)
    ctx = ReasonContext(query="nike trail shoes under 80",
                        query_filters=[FilterSpec("brand", ("Nike",), source="query")],
                        brand_affinity={"Nike": 0.4}, category_affinity={"Running": 0.2},
                        recent=[("Shoes > Running > Trail", "Old Trail Shoe")], candidates=40)
    got = reasons(item, ctx, retrieval_rank=3, contributions={"query": 1.5, "user": -0.2}, max_reasons=10)
    assert got[0] == "matches 'nike trail shoes' from your search"  # title, brand and category words
    assert "Nike, the brand you searched for" in got and "Nike is a brand you like" in got
    assert "like 'Old Trail Shoe', which you looked at recently" in got
    assert got[-1] == "the ranker's strongest signal: your search (+1.50 logit)"
    assert reasons(item, ReasonContext(ranker_used=False, candidates=40), 7)[0] == \
        "retrieval rank 7 of 40 (ranker unavailable)"
    assert affinity("Shoes > Running > Trail", "Nike", {"Shoes": 0.3, "Trail": 0.5}, {"Nike": 0.25}) == 0.75


def test_price_band_and_recent_searches_boost_and_explain(catalog):
    from tfrec.server.search.config import PersonalisationConfig, SearchConfig
    from tfrec.server.search.pipeline import SearchPipeline, _UserView

    ctx = ReasonContext(price_band=(60.0, 90.0), recent_queries=["red trail shoes", "kettle"])
    got = reasons(catalog.item(0), ctx, 1, max_reasons=10)  # i0: $79, "Nike Red Trail Runner"
    assert got == ["$79.00, in your usual price range ($60-$90)",
                   "matches 'red trail shoes' from your recent search 'red trail shoes'"]  # title + category
    assert reasons(catalog.item(4), ctx, 1) == ["matches 'kettle' from your recent search 'kettle'"]  # no price
    searched = reasons(catalog.item(0), ReasonContext(query="kettle", recent_queries=["red trail"]), 1)
    assert not any("recent search" in r for r in searched)  # a search explains itself by its own query
    pipeline = SearchPipeline(SearchConfig(catalog="<memory>"), catalog, {})
    try:
        user = _UserView([], {"Kitchen": 1.0}, {}, price_band=(60.0, 90.0))
        boost = pipeline._personal_boost(np.arange(5), user, PersonalisationConfig(affinity_boost=0.5,
                                                                                  price_band_boost=0.25))
        np.testing.assert_allclose(boost, [0.25, 0.0, 0.25, 0.5, 0.5])  # in band: i0, i2; Kitchen: i3, i4
        off = pipeline._personal_boost(np.arange(5), user, PersonalisationConfig(affinity_boost=0, price_band_boost=0))
        assert not off.any()
    finally:
        pipeline.close()


class _RpcError(grpc.RpcError):
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return f"fake {self._code.name}"


class _FakeClient:
    """Stands in for PredictionClient: one float input, Predict failing with the queued status codes."""

    def __init__(self, codes):
        self.codes, self.calls = list(codes), 0
        self.stub = self

    def input_dtypes(self, name):
        return {"x": tf.float32}

    def Predict(self, request, timeout):  # noqa: N802 - the stub's name
        self.calls += 1
        raise _RpcError(self.codes.pop(0))


def test_a_per_call_version_label_overrides_the_endpoint_label_and_pauses_on_its_own():
    client = _FakeClient([grpc.StatusCode.NOT_FOUND] * 4)
    sent = []
    client.Predict = lambda request, timeout: (sent.append(request.model_spec.version_label),  # noqa: E731
                                               _FakeClient.Predict(client, request, timeout))
    caller = ModelCaller(ModelEndpoint("ranker", version_label="stable"), client, retry_after_s=60.0)
    paused = []
    for label in ("canary", None, "canary", "", "other"):  # a failed label is paused; the others are still tried
        with pytest.raises(ModelUnavailable) as err:
            caller.predict({"x": [1.0]}, version_label=label)
        paused.append("not retried for" in err.value.message)
    assert sent == ["canary", "stable", "other"]  # None and "": the endpoint's label
    assert paused == [False, False, True, True, False]


def test_a_model_pauses_at_once_when_down_and_after_three_timeouts_when_slow():
    slow = _FakeClient([grpc.StatusCode.DEADLINE_EXCEEDED] * 4)
    caller = ModelCaller(ModelEndpoint("ranker"), slow, retry_after_s=60.0)
    for expected_calls in (1, 2, 3, 3):  # the third timeout in a row pauses it: the fourth request is not sent
        with pytest.raises(ModelUnavailable) as err:
            caller.predict({"x": [1.0]})
        assert slow.calls == expected_calls and err.value.status == "DEADLINE_EXCEEDED"
    assert "not retried for" in err.value.message
    down = _FakeClient([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE])
    caller = ModelCaller(ModelEndpoint("ranker"), down, retry_after_s=60.0)
    for _ in range(2):
        with pytest.raises(ModelUnavailable, match="UNAVAILABLE"):
            caller.predict({"x": [1.0]})
    assert down.calls == 1
    never = _FakeClient([grpc.StatusCode.UNAVAILABLE] * 2)
    caller = ModelCaller(ModelEndpoint("retrieval"), never, retry_after_s=0.0)  # retrieval: always tried
    for _ in range(2):
        with pytest.raises(ModelUnavailable):
            caller.predict({"x": [1.0]})
    assert never.calls == 2


def test_contributions_follow_the_config_and_the_request_s_explain_field(catalog):
    from tfrec.server.search.request import parse_request

    config = load_search_config("configs/search.yaml")
    explain = config.explain
    assert explain.contributions == "on_request"  # the extra ranker call only for requests that ask
    assert [explain.wants_contributions(r) for r in (None, True, False)] == [False, True, False]
    explain.contributions = True
    assert [explain.wants_contributions(r) for r in (None, True, False)] == [True, True, False]
    explain.contributions = False
    assert [explain.wants_contributions(r) for r in (None, True, False)] == [False, False, False]
    asked = parse_request(search_pb2.SearchRequest(query="red shoes", explain=True), "search", config, catalog)
    unset = parse_request(search_pb2.RecommendRequest(user_id="u"), "recommend", config, catalog)
    assert (asked.explain, unset.explain) == (True, None)
    with pytest.raises(ConfigError, match="explain.contributions.*'sometimes'"):
        load_search_config("configs/search.yaml", {"explain.contributions": "sometimes"})
