"""LexicalIndex: exact-token hits, boosts, hostile queries, filters, re-indexing, on-disk indexes, synthetic recall."""

import numpy as np
import pytest

from tfrec.data.schema import CATALOG_SCHEMA, Table
from tfrec.retrieval import CandidateSource, LexicalConfig, LexicalIndex, SearchFilters

NAN = float("nan")
ROWS = [
    # item_id, title, category, brand, price, color, material
    ("P1", "DEWALT 20V MAX Cordless Drill DCD771C2", "Tools > Power Tools > Drills", "DEWALT", 99.0, "yellow", ""),
    ("P2", "Milwaukee M18 Cordless Drill Driver 2801-20", "Tools > Power Tools > Drills", "Milwaukee", 129.0, "red", ""),
    ("P3", "Ryobi 18V Cordless Impact Driver P235", "Tools > Power Tools > Impact Drivers", "Ryobi", 79.0, "green", ""),
    ("P4", "Everbilt 3/4 in. x 10 ft. Copper Pipe", "Plumbing > Pipes > Copper Pipe", "Everbilt", 35.5, "", "copper"),
    ("P5", "Cordless Drill Holster for DEWALT drills", "Tools > Tool Storage > Holsters", "Husky", NAN, "black", ""),
    ("P6", "Velvet Throw Blanket", "Home > Bedding > Blankets", "Hearthstone", 25.0, "red", "velvet"),
    ("P7", "Hearthstone Style Lantern", "Home > Decorations > Lanterns", "Glowco", 40.0, "", "metal"),
    ("P8", "Oak Bookshelf", "Furniture > Shelves", "Woodly", 150.0, "", "pine"),
    ("P9", "Tall Bookshelf", "Furniture > Shelves", "Woodly", 160.0, "", "oak"),
]


def catalog(rows=ROWS) -> Table:
    cols = list(zip(*rows))
    return Table(CATALOG_SCHEMA, {"item_id": cols[0], "title": cols[1], "category": cols[2], "brand": cols[3],
                                  "price": cols[4]}, attributes={"color": cols[5], "material": cols[6]})


@pytest.fixture(scope="module")
def index():
    return LexicalIndex(catalog())


def ids(results):
    return [c.item_id for c in results]


def top(index, query, **kwargs):
    return ids(index.search([query], k=10, **kwargs)[0])


def test_is_a_candidate_source_with_scored_sorted_results(index):
    assert isinstance(index, CandidateSource) and len(index) == len(ROWS)
    results = index.search(["cordless drill", "copper pipe"], k=3)
    assert len(results) == 2 and all(len(r) <= 3 for r in results)
    for r in results:
        scores = [c.score for c in r]
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
        assert {c.source for c in r} == {"lexical"}


@pytest.mark.parametrize("query, expected", [("dcd771c2", "P1"), ("DCD771C2 drill", "P1"), ("2801-20", "P2"),
                                             ("p235", "P3"), ("milwaukee drill", "P2"), ("ryobi", "P3")])
def test_model_numbers_and_brands_rank_first(index, query, expected):
    assert top(index, query)[0] == expected


def test_stemming_matches_plural_and_can_be_disabled():
    assert top(LexicalIndex(catalog()), "throws") == ["P6"]
    assert top(LexicalIndex(catalog(), LexicalConfig(stemming=False)), "throws") == []


def test_brand_boost_decides_between_brand_and_title_match():
    # 'hearthstone' is P6's brand and a word of P7's title.
    assert top(LexicalIndex(catalog()), "hearthstone")[:2] == ["P6", "P7"]
    assert top(LexicalIndex(catalog(), LexicalConfig(boosts={"brand": 0.1})), "hearthstone")[:2] == ["P7", "P6"]
    assert top(LexicalIndex(catalog(), LexicalConfig(boosts={"brand": 0.0})), "hearthstone") == ["P7"]


def test_attribute_boosts_per_column_and_by_default():
    # 'oak' is P8's title and P9's material.
    assert top(LexicalIndex(catalog()), "oak") == ["P8", "P9"]
    assert top(LexicalIndex(catalog(), LexicalConfig(boosts={"material": 10.0})), "oak") == ["P9", "P8"]
    assert top(LexicalIndex(catalog(), LexicalConfig(boosts={"attributes": 10.0})), "oak") == ["P9", "P8"]
    assert top(LexicalIndex(catalog(), LexicalConfig(boosts={"title": 0.0})), "oak") == ["P9"]
    # Only the listed attribute columns are searchable.
    assert top(LexicalIndex(catalog(), LexicalConfig(attributes=("color",))), "velvet blanket") == ["P6"]
    assert top(LexicalIndex(catalog(), LexicalConfig(attributes=("color",))), "pine") == []


def test_category_words_are_searchable(index):
    assert set(top(index, "plumbing")) == {"P4"}
    assert set(top(index, "decorations")) == {"P7"}


@pytest.mark.parametrize("query", [
    '"3/4 in. x 10 ft', "c++", "AND", "OR NOT", "NOT drill", '"', "'", "title:drill", "price:[0 TO 10]",
    "(((", ")", "\\", "*", "~2", "drill^3", "a:b:c", "-", "+-+", "{x}", "drill AND (", "IN [a b]", "\x00",
    "ünïcödé dríll", "🔨 drill", "x" * 500,
])
def test_hostile_queries_never_raise(index, query):
    results = index.search([query], k=5)[0]
    assert all(c.item_id in {r[0] for r in ROWS} for c in results)


def test_syntax_is_treated_as_words(index):
    assert top(index, '"3/4 in. x 10 ft')[0] == "P4"
    assert top(index, "copper AND pipe)")[0] == "P4"
    # 'title:' is not field syntax: the words 'title' and 'drill' are searched, so drills are found.
    assert set(top(index, "title:drill")) >= {"P1", "P2", "P5"}
    assert top(index, "price:[1 TO 2]") == []  # no range semantics, and no title has the tokens 1, to or 2


@pytest.mark.parametrize("query", ["", "   ", "!!!", "-", "/"])
def test_query_without_tokens_returns_nothing(index, query):
    assert index.search([query], k=10) == [[]]
    assert index.search([query], k=10, filters=SearchFilters(brands=["DEWALT"])) == [[]]


def test_k_bounds_and_batch_shape(index):
    assert index.search([], k=5) == []
    assert index.search(["drill", "pipe"], k=0) == [[], []]
    assert len(index.search(["cordless"], k=2)[0]) == 2
    with pytest.raises(TypeError):
        index.search("drill", k=5)
    with pytest.raises(ValueError):
        index.search(["drill"], k=-1)


def test_category_prefix_filter_matches_whole_levels_case_insensitively(index):
    assert set(top(index, "cordless", filters=SearchFilters(category_prefix="Tools > Power Tools"))) == {
        "P1", "P2", "P3"}
    assert set(top(index, "cordless", filters={"category_prefix": "tools >  power tools > drills"})) == {"P1", "P2"}
    assert top(index, "cordless", filters=SearchFilters(category_prefix="Tools > Power")) == []
    assert top(index, "cordless", filters=SearchFilters(category_prefix="Home")) == []


def test_brand_and_price_filters(index):
    assert top(index, "drill", filters=SearchFilters(brands="dewalt")) == ["P1"]
    assert set(top(index, "drill", filters=SearchFilters(brands=["DEWALT", "husky"]))) == {"P1", "P5"}
    # Inclusive bounds; P5 has no price so any price filter excludes it.
    assert set(top(index, "cordless", filters=SearchFilters(min_price=79.0, max_price=99.0))) == {"P1", "P3"}
    assert set(top(index, "cordless", filters=SearchFilters(min_price=100))) == {"P2"}
    assert set(top(index, "drill", filters=SearchFilters(max_price=1000))) == {"P1", "P2"}


def test_filters_do_not_change_scores(index):
    plain = {c.item_id: c.score for c in index.search(["cordless drill"], k=10)[0]}
    filtered = index.search(["cordless drill"], k=10, filters=SearchFilters(category_prefix="Tools"))[0]
    assert filtered and all(c.score == pytest.approx(plain[c.item_id]) for c in filtered)


def test_per_query_filters(index):
    results = index.search(["cordless", "cordless"], k=10,
                           filters=[SearchFilters(brands=["Ryobi"]), None])
    assert ids(results[0]) == ["P3"] and len(results[1]) == 4
    with pytest.raises(ValueError, match="2 filters for 1 queries"):
        index.search(["drill"], k=5, filters=[None, None])


@pytest.mark.parametrize("kwargs", [dict(min_price=10, max_price=5), dict(min_price=NAN), dict(category_prefix=" > ")])
def test_invalid_filters_raise(kwargs):
    with pytest.raises(ValueError):
        SearchFilters(**kwargs)


def test_add_items_makes_new_items_retrievable_and_replaces_old_versions():
    index = LexicalIndex(catalog())
    assert top(index, "xfd131") == []
    new = catalog([("P10", "Makita 18V Drill XFD131", "Tools > Power Tools > Drills", "Makita", 89.0, "teal", ""),
                   ("P2", "Milwaukee M12 Hammer Drill 2407-20", "Tools > Power Tools > Drills", "Milwaukee", 99.0,
                    "red", "")])
    index.add_items(new)
    assert len(index) == len(ROWS) + 1
    assert top(index, "xfd131") == ["P10"]
    assert top(index, "2407-20")[0] == "P2"
    assert top(index, "m18") == []  # the old title of P2 is gone, not duplicated
    assert ids(index.search(["milwaukee"], k=10)[0]).count("P2") == 1


def test_remove_items_drops_items_and_ignores_unknown_ids():
    index = LexicalIndex(catalog())
    index.remove_items(["P1", "no-such-item"])
    assert len(index) == len(ROWS) - 1
    assert top(index, "dcd771c2") == []
    assert "P1" not in top(index, "dewalt drill")
    index.remove_items([])
    assert len(index) == len(ROWS) - 1


def test_add_items_rejects_unknown_attribute_columns():
    index = LexicalIndex(catalog())
    extra = Table(CATALOG_SCHEMA, {"item_id": ["Z"], "title": ["thing"]}, attributes={"size": ["XL"]})
    with pytest.raises(ValueError, match="size"):
        index.add_items(extra)
    index.add_items(Table(CATALOG_SCHEMA, {"item_id": ["Z"], "title": ["thing"]}))  # missing columns are fine
    assert top(index, "thing") == ["Z"]


def test_index_in_a_directory_persists_and_reopens(tmp_path):
    path = tmp_path / "lexical"
    built = LexicalIndex(catalog(), LexicalConfig(boosts={"brand": 0.1}), path=str(path))
    assert any(path.iterdir())
    before = built.search(["hearthstone", "cordless drill"], k=5)
    del built
    reopened = LexicalIndex.open(str(path))
    assert reopened.config.boosts == {"brand": 0.1} and reopened.attributes == ["color", "material"]
    assert reopened.search(["hearthstone", "cordless drill"], k=5) == before
    reopened.remove_items(["P7"])
    assert top(LexicalIndex.open(str(path)), "lantern") == []


@pytest.mark.parametrize("config", [dict(boosts={"colour": 1.0}), dict(boosts={"title": -1.0}),
                                    dict(boosts={"title": NAN})])
def test_invalid_config_raises(config):
    with pytest.raises(ValueError):
        LexicalIndex(catalog(), LexicalConfig(**config))


def test_explain_mentions_the_matched_term(index):
    assert "dcd771c2" in index.explain("dcd771c2", "P1").lower()
    with pytest.raises(KeyError):
        index.explain("drill", "missing")


def test_synthetic_search_requests_find_their_intent_category():
    from tfrec.data.synthetic import SyntheticConfig, generate

    data = generate(SyntheticConfig.preset("tiny"))
    items = data.dataset.catalog
    category_of = dict(zip(items["item_id"], items["category"]))
    requests = data.ground_truth.requests
    search = np.asarray(requests["is_search"]) == 1
    queries = [str(q) for q in np.asarray(requests["query"])[search]]
    intents = [str(c) for c in np.asarray(requests["category"])[search]]
    assert len(queries) > 100
    results = LexicalIndex(items).search(queries, k=10)
    hit = [any(category_of[c.item_id] == intent for c in r) for r, intent in zip(results, intents)]
    rate = float(np.mean(hit))
    assert rate >= 0.9, f"only {rate:.1%} of searches retrieve an item of the intent category in the top 10"
    # The same index with the text fields switched off retrieves nothing: the hits come from matching, not chance.
    off = LexicalIndex(items, LexicalConfig(boosts={"title": 0, "brand": 0, "category": 0, "attributes": 0}))
    assert all(r == [] for r in off.search(queries[:50], k=10))
