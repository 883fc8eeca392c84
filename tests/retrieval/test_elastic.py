"""ElasticsearchIndex: the pure mapping/query functions, and the HTTP client against an in-process fake server.

No Elasticsearch runs here, so `FakeElastic` (below) answers the few endpoints the client uses over real HTTP on
127.0.0.1, with naive term-overlap scoring. Set TFREC_ELASTIC_URL (and optionally TFREC_ELASTIC_API_KEY) to run the
same round trip against a real Elasticsearch/OpenSearch server.
"""

import json
import os
import re
import socket
import threading
import uuid

import pytest

from tfrec.data.schema import CATALOG_SCHEMA, Table
from tfrec.retrieval import CandidateSource, LexicalConfig, SearchFilters
from tfrec.retrieval.elastic import (ElasticError, ElasticsearchIndex, document, filter_clauses, index_mapping,
                                     search_body)

NAN = float("nan")
ROWS = [
    # item_id, title, category, brand, price, color, material
    ("P1", "DEWALT 20V MAX Cordless Drill DCD771C2", "Tools > Power Tools > Drills", "DEWALT", 99.0, "yellow", ""),
    ("P2", "Milwaukee M18 Cordless Drill Driver 2801-20", "Tools > Power Tools > Drills", "Milwaukee", 129.0, "red",
     ""),
    ("P3", "Ryobi 18V Cordless Impact Driver P235", "Tools > Power Tools > Impact Drivers", "Ryobi", 79.0, "green", ""),
    ("P4", "Everbilt 3/4 in. x 10 ft. Copper Pipe", "Plumbing > Pipes > Copper Pipe", "Everbilt", 35.5, "", "copper"),
    ("P5", "Cordless Drill Holster for DEWALT drills", "Tools > Tool Storage > Holsters", "Husky", NAN, "black", ""),
    ("P6", "Velvet Throw Blanket", "Home > Bedding > Blankets", "Hearthstone", 25.0, "red", "velvet"),
    ("P7", "Hearthstone Style Lantern", "Home > Decorations > Lanterns", "Glowco", 40.0, "", "metal"),
    ("P8", "Oak Bookshelf", "Furniture > Shelves", "Woodly", 150.0, "", "pine"),
    ("P9", "Tall Bookshelf", "Furniture > Shelves", "Woodly", 160.0, "", "oak"),
]
ATTRS = ["color", "material"]


def catalog(rows=ROWS) -> Table:
    cols = list(zip(*rows))
    return Table(CATALOG_SCHEMA, {"item_id": cols[0], "title": cols[1], "category": cols[2], "brand": cols[3],
                                  "price": cols[4]}, attributes={"color": cols[5], "material": cols[6]})


def ids(results):
    return [c.item_id for c in results]


def top(index, query, **kwargs):
    return ids(index.search([query], k=10, **kwargs)[0])


# ------------------------------------------------------------------------------------------------- the fake server
from retrieval.fake_elastic import FakeElastic, error_body  # noqa: E402  (tests/ is on sys.path via conftest)


@pytest.fixture
def server():
    fake = FakeElastic()
    thread = threading.Thread(target=fake.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.shutdown()
    fake.server_close()


@pytest.fixture
def es(server):
    index = ElasticsearchIndex("products", server.url, attributes=ATTRS)
    index.create()
    index.add_items(catalog())
    return index


# ------------------------------------------------------------------------------------------ pure mapping functions
def test_mapping_analyzer_follows_the_stemming_option():
    mapping = index_mapping(LexicalConfig(), ATTRS)
    analyzer = mapping["settings"]["analysis"]["analyzer"]["tfrec_text"]
    assert analyzer["filter"][-1] == "tfrec_stem" and "lowercase" in analyzer["filter"]
    assert mapping["settings"]["analysis"]["filter"]["tfrec_stem"] == {"type": "snowball", "language": "English"}
    unstemmed = index_mapping(LexicalConfig(stemming=False), ATTRS)["settings"]["analysis"]["analyzer"]["tfrec_text"]
    assert "tfrec_stem" not in unstemmed["filter"]


def test_mapping_fields_and_meta():
    mapping = index_mapping(LexicalConfig(), ATTRS)["mappings"]
    props = mapping["properties"]
    for field in ("title", "brand", "category", "attr_color", "attr_material"):
        assert props[field] == {"type": "text", "analyzer": "tfrec_text"}
    for field in ("item_id", "brand_key", "category_path", "category_prefixes"):
        assert props[field] == {"type": "keyword"}
    assert props["price"] == {"type": "float"} and mapping["dynamic"] == "strict"
    assert mapping["_meta"]["tfrec"]["attributes"] == ATTRS
    json.dumps(mapping)  # sendable as is
    with pytest.raises(ValueError, match="unknown fields"):
        index_mapping(LexicalConfig(boosts={"size": 2.0}), ATTRS)


def test_document_normalises_filter_keys_and_drops_missing_values():
    row = catalog().row(4)  # P5: no price, no material
    doc = document(row, ATTRS)
    assert doc == {"item_id": "P5", "title": "Cordless Drill Holster for DEWALT drills",
                   "brand": "Husky", "category": "Tools > Tool Storage > Holsters", "attr_color": "black",
                   "brand_key": "husky", "category_path": "tools > tool storage > holsters",
                   "category_prefixes": ["tools", "tools > tool storage", "tools > tool storage > holsters"]}
    assert document({"item_id": "X", "category": " Home >  Decor ", "price": 3, "size": "XL"}) == {
        "item_id": "X", "category": " Home >  Decor ", "attr_size": "XL", "category_path": "home > decor",
        "category_prefixes": ["home", "home > decor"], "price": 3.0}
    assert document({"item_id": "X", "size": "XL"}, attributes=[]) == {"item_id": "X"}
    with pytest.raises(ValueError, match="item_id"):
        document({"item_id": "", "title": "t"})


def test_search_body_boosts_and_size():
    body = search_body("cordless drill", 7, None, LexicalConfig(boosts={"title": 3.0, "color": 1.5}), ATTRS)
    assert body["size"] == 7 and body["_source"] is False
    match = body["query"]["multi_match"]
    assert match["query"] == "cordless drill" and match["type"] == "most_fields"
    assert match["fields"] == ["title^3", "brand^2", "category^0.5", "attr_color^1.5", "attr_material^0.5"]
    assert body["sort"] == [{"_score": {"order": "desc"}}, {"item_id": {"order": "asc"}}] and body["track_scores"]


def test_zero_boost_leaves_a_field_unsearched():
    fields = search_body("x", 5, None, LexicalConfig(boosts={"brand": 0.0}), [])["query"]["multi_match"]["fields"]
    assert fields == ["title^1", "category^0.5"]
    nothing = LexicalConfig(boosts={"title": 0, "brand": 0, "category": 0, "attributes": 0})
    assert search_body("x", 5, None, nothing, ATTRS) is None  # never an empty field list (= every field)


@pytest.mark.parametrize("text", ['AND ( "', "title:drill", "price:[0 TO 10]", "c++", "drill^3", "\\"])
def test_query_text_is_passed_verbatim(text):
    assert search_body(text, 5, None, LexicalConfig())["query"]["multi_match"]["query"] == text


def test_filters_map_to_filter_clauses():
    f = SearchFilters(category_prefix="Tools >  Power Tools", brands=["DEWALT", " husky", "Dewalt"],
                      min_price=10, max_price=99.5)
    assert filter_clauses(f) == [{"term": {"category_prefixes": "tools > power tools"}},
                                 {"terms": {"brand_key": ["dewalt", "husky"]}},
                                 {"range": {"price": {"gte": 10.0, "lte": 99.5}}}]
    assert filter_clauses({"max_price": 5}) == [{"range": {"price": {"lte": 5.0}}}]
    assert filter_clauses(None) == [] and filter_clauses(SearchFilters()) == []
    query = search_body("drill", 3, f, LexicalConfig())["query"]
    assert query["bool"]["must"][0]["multi_match"]["query"] == "drill"
    assert query["bool"]["filter"] == filter_clauses(f)


def test_blank_query_is_match_all_within_filters_or_nothing():
    assert search_body("", 5, None, LexicalConfig()) is None
    assert search_body("   ", 5, SearchFilters(), LexicalConfig()) is None
    body = search_body(" ", 5, SearchFilters(brands="Woodly"), LexicalConfig())
    assert body["query"] == {"bool": {"filter": [{"terms": {"brand_key": ["woodly"]}}]}}


def test_constructor_validation_and_auth_headers():
    with pytest.raises(ValueError, match="lowercase"):
        ElasticsearchIndex("Products")
    with pytest.raises(ValueError, match="not both"):
        ElasticsearchIndex("p", username="u", api_key="k")
    with pytest.raises(ValueError, match="unknown fields"):
        ElasticsearchIndex("p", config=LexicalConfig(boosts={"size": 1.0}), attributes=ATTRS)
    assert ElasticsearchIndex("p", username="elastic", password="pw")._headers["Authorization"] == \
        "Basic ZWxhc3RpYzpwdw=="
    assert ElasticsearchIndex("p", api_key=("id", "key"))._headers["Authorization"] == "ApiKey aWQ6a2V5"
    assert ElasticsearchIndex("p").url == "http://127.0.0.1:9200"


# --------------------------------------------------------------------------------------- client against the fake
def round_trip(index: ElasticsearchIndex):
    """add -> search -> filter -> replace -> remove; holds for the fake and for a real server."""
    index.create(recreate=True)
    index.add_items(catalog())
    assert isinstance(index, CandidateSource) and len(index) == len(ROWS)
    results = index.search(["dcd771c2", "milwaukee drill", 'AND ( "'], k=3)
    assert results[0][0].item_id == "P1" and results[1][0].item_id == "P2"
    assert {c.source for r in results for c in r} == {"elastic"}
    assert all(len(r) <= 3 and [c.score for c in r] == sorted((c.score for c in r), reverse=True) for r in results)
    assert set(top(index, "cordless", filters=SearchFilters(category_prefix="tools > power tools"))) == {
        "P1", "P2", "P3"}
    assert top(index, "cordless", filters=SearchFilters(category_prefix="Tools > Power")) == []
    assert top(index, "drill", filters={"brands": ["dewalt"]}) == ["P1"]
    assert set(top(index, "cordless", filters=SearchFilters(min_price=79, max_price=99))) == {"P1", "P3"}
    assert top(index, "", filters=SearchFilters(brands=["Woodly"])) == ["P8", "P9"]
    assert index.search(["", "  "], k=5) == [[], []]
    per_query = index.search(["cordless", "cordless"], k=10, filters=[SearchFilters(brands=["Ryobi"]), None])
    assert ids(per_query[0]) == ["P3"] and len(per_query[1]) == 4

    index.add_items(catalog([
        ("P10", "Makita 18V Drill XFD131", "Tools > Power Tools > Drills", "Makita", 89.0, "teal", ""),
        ("P2", "Milwaukee M12 Hammer Drill 2407-20", "Tools > Power Tools > Drills", "Milwaukee", 99.0, "red", "")]))
    assert len(index) == len(ROWS) + 1
    assert top(index, "xfd131") == ["P10"] and top(index, "m18") == [] and top(index, "m12") == ["P2"]
    assert ids(index.search(["milwaukee"], k=10)[0]).count("P2") == 1

    index.remove_items(["P1", "no-such-item"])
    index.remove_items([])
    assert len(index) == len(ROWS) and top(index, "dcd771c2") == []
    index.remove_items(["P1"])  # idempotent
    assert len(index) == len(ROWS)


def test_round_trip_against_the_fake(server):
    round_trip(ElasticsearchIndex("products", server.url, attributes=ATTRS))
    methods = {(m, p.split("?")[0]) for m, p, _ in server.requests}
    assert ("POST", "/products/_msearch") in methods and ("POST", "/products/_bulk") in methods


def test_search_sends_one_msearch_for_a_batch(es, server):
    server.requests.clear()
    es.search(["drill", "", "pipe", "oak"], k=2)
    assert [(m, p) for m, p, _ in server.requests] == [("POST", "/products/_msearch")]
    assert es.search([], k=5) == [] and es.search(["drill"], k=0) == [[]]
    with pytest.raises(TypeError):
        es.search("drill", k=5)
    with pytest.raises(ValueError):
        es.search(["drill"], k=-1)


def test_attribute_boosts_reach_the_server(server):
    es = ElasticsearchIndex("products", server.url, LexicalConfig(boosts={"material": 10.0}), attributes=ATTRS)
    es.create()
    es.add_items(catalog())
    assert top(es, "oak") == ["P9", "P8"]
    assert top(ElasticsearchIndex("products", server.url, attributes=ATTRS), "oak") == ["P8", "P9"]


def test_attributes_are_read_back_from_the_index_meta(es, server):
    reopened = ElasticsearchIndex("products", server.url)
    assert reopened.attributes == ATTRS
    assert top(reopened, "velvet") == ["P6"]  # a material-only word


def test_add_items_rejects_unknown_attribute_columns(es):
    extra = Table(CATALOG_SCHEMA, {"item_id": ["Z"], "title": ["thing"]}, attributes={"size": ["XL"]})
    with pytest.raises(ValueError, match="size"):
        es.add_items(extra)
    with pytest.raises(ValueError, match="non-empty item_id"):
        es.add_items(Table(CATALOG_SCHEMA, {"item_id": [""]}))
    es.add_items(Table(CATALOG_SCHEMA, {"item_id": ["Z"], "title": ["thing"]}))  # missing columns are fine
    assert top(es, "thing") == ["Z"]


def test_create_refuses_an_existing_index_unless_recreate(es):
    with pytest.raises(ElasticError, match="already exists.*recreate=True") as info:
        es.create()
    assert info.value.status == 400 and info.value.error_type == "resource_already_exists_exception"
    es.create(recreate=True)
    assert len(es) == 0 and es.exists()
    es.delete_index()
    es.delete_index()  # a missing index is fine
    assert not es.exists()


def test_server_error_names_operation_index_status_and_reason(es, server):
    server.fail_next.append(error_body(500, "search_phase_execution_exception", "all shards failed",
                                   {"type": "query_shard_exception", "reason": "failed to create query"}))
    with pytest.raises(ElasticError) as info:
        es.search(["drill"], k=5)
    message = str(info.value)
    for part in ("search", "'products'", server.url, "HTTP 500", "search_phase_execution_exception",
                 "all shards failed", "query_shard_exception: failed to create query"):
        assert part in message
    assert isinstance(info.value, RuntimeError) and info.value.status == 500
    server.fail_next.append((502, None))  # a body that is not JSON still gives a clear error
    with pytest.raises(ElasticError, match="count.*HTTP 502"):
        len(es)


def test_missing_index_is_a_clearerror_body(server):
    es = ElasticsearchIndex("nope", server.url, attributes=[])
    with pytest.raises(ElasticError, match="search on index 'nope'.*404 index_not_found_exception"):
        es.search(["drill"], k=5)
    with pytest.raises(ElasticError, match="read_mapping.*no such index"):
        ElasticsearchIndex("nope", server.url).attributes


def test_bulk_item_errors_are_never_dropped(es, server):
    server.reject_ids = {"P3"}
    with pytest.raises(ElasticError) as info:
        es.add_items(catalog())
    message = str(info.value)
    assert "add_items" in message and "1 of 9 bulk actions failed" in message
    assert "'P3'" in message and "mapper_parsing_exception" in message and "failed to parse field" in message


def test_strict_mapping_rejects_fields_the_index_was_not_built_with(server):
    ElasticsearchIndex("products", server.url, attributes=[]).create()
    sneaky = ElasticsearchIndex("products", server.url, attributes=ATTRS)  # disagrees with the index
    with pytest.raises(ElasticError, match="strict_dynamic_mapping_exception"):
        sneaky.add_items(catalog())


def test_msearch_item_error_raises(es, server):
    server.fail_next.append((200, {"responses": [{"status": 200, "hits": {"hits": []}},
                                                 {"status": 400, "error": {"type": "query_shard_exception",
                                                                           "reason": "failed to create query"}}]}))
    with pytest.raises(ElasticError, match="query 'pipe'.*HTTP 400 query_shard_exception: failed to create query"):
        es.search(["drill", "pipe"], k=5)


def test_connection_refused_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    es = ElasticsearchIndex("products", url, attributes=ATTRS, timeout=5)
    with pytest.raises(ElasticError, match=f"cannot reach Elasticsearch/OpenSearch at {re.escape(url)}") as info:
        es.search(["drill"], k=5)
    assert info.value.status is None


def test_auth_header_is_sent(server):
    ElasticsearchIndex("products", server.url, attributes=[], api_key="c2VjcmV0").create()
    assert server.requests[-1][2]["Authorization"] == "ApiKey c2VjcmV0"


def test_bulk_is_sent_in_batches(server):
    es = ElasticsearchIndex("products", server.url, attributes=ATTRS, batch_size=4, refresh_on_write=False)
    es.create()
    es.add_items(catalog())
    paths = [p for _, p, _ in server.requests]
    assert paths.count("/products/_bulk") == 3 and "/products/_refresh" not in paths
    es.refresh()
    assert len(es) == len(ROWS)


# ---------------------------------------------------------------------------------------------- a real server
@pytest.mark.skipif(not os.environ.get("TFREC_ELASTIC_URL"), reason="set TFREC_ELASTIC_URL to test a real server")
def test_round_trip_against_a_real_server():
    es = ElasticsearchIndex(f"tfrec-test-{uuid.uuid4().hex[:8]}", os.environ["TFREC_ELASTIC_URL"],
                            attributes=ATTRS, api_key=os.environ.get("TFREC_ELASTIC_API_KEY"))
    try:
        round_trip(es)
        assert top(es, "throws")[:1] == ["P6"]  # stemming, which the fake does not do
        assert top(es, '"3/4 in. x 10 ft')[0] == "P4"
        assert ElasticsearchIndex(es.index, es.url, api_key=os.environ.get("TFREC_ELASTIC_API_KEY")).attributes == ATTRS
    finally:
        es.delete_index()
