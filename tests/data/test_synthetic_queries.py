"""Synthetic searches: query text mentions the intent, slots are reflected in the text, recommendations have none."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tfrec.data.schema import category_levels
from tfrec.data.synthetic import SyntheticConfig, generate

CONFIG = SyntheticConfig.preset("tiny", seed=11, search_fraction=0.7)
NUMBER = r"\$?(\d+(?:\.\d+)?)"
GENDER_WORDS = {"men": ("men's", "mens", "men"), "women": ("women's", "womens", "women"),
                "kids": ("kids", "kids'", "children's")}


@pytest.fixture(scope="module")
def data():
    return generate(CONFIG)


@pytest.fixture(scope="module")
def searches(data):
    rq = data.ground_truth.requests
    return rq.take(rq["is_search"] == 1)


def parse_price(query: str):
    """Independent reference parser for the price phrases a shopper may type."""
    q = query.lower()
    for pattern in (rf"between {NUMBER} and {NUMBER}", rf"from {NUMBER} to {NUMBER}", rf"{NUMBER}-{NUMBER}"):
        m = re.search(pattern, q)
        if m:
            return float(m.group(1)), float(m.group(2))
    m = re.search(rf"(?:under|less than|below|max) {NUMBER}", q)
    if m:
        return np.nan, float(m.group(1))
    m = re.search(rf"(?:over|above|more than) {NUMBER}", q)
    if m:
        return float(m.group(1)), np.nan
    return np.nan, np.nan


def _stem(word: str) -> str:
    return re.sub(r"(es|s)$", "", word.lower().strip("'"))


def test_search_share_follows_config_and_recommendations_have_no_query_or_slots(data):
    rq = data.ground_truth.requests
    assert len(rq) == CONFIG.n_sessions
    assert abs(np.mean(rq["is_search"]) - CONFIG.search_fraction) < 0.03
    rec = rq.take(rq["is_search"] == 0)
    for col in ("query", "category", "brand", "color", "gender"):
        assert np.all(rec[col] == ""), col
    assert np.all(np.isnan(rec["price_min"])) and np.all(np.isnan(rec["price_max"]))


def test_every_search_has_text_and_a_real_intent_leaf(data, searches):
    assert np.all(searches["query"] != "")
    assert set(searches["category"]) <= set(data.dataset.catalog["category"])
    assert len(set(searches["category"])) > 50


def test_query_text_names_the_intent_leaf_for_most_searches(searches):
    all_words, head_noun = [], []
    for query, path in zip(searches["query"], searches["category"]):
        typed = {_stem(w) for w in query.split()}
        leaf = [_stem(w) for w in category_levels(path)[-1].split()]
        all_words.append(all(w in typed for w in leaf))
        head_noun.append(leaf[-1] in typed)
    assert np.mean(all_words) > 0.8
    assert np.mean(head_noun) > 0.88
    assert np.mean(all_words) < 1.0  # some noise: synonyms and dropped modifiers


def test_query_text_is_noisy_in_casing_and_word_order(searches):
    queries = list(searches["query"])
    assert any(q != q.lower() for q in queries) and np.mean([q == q.lower() for q in queries]) > 0.6
    branded = searches.take(searches["brand"] != "")
    brand_first = [q.lower().startswith(b.lower()) for q, b in zip(branded["query"], branded["brand"])]
    assert 0.1 < np.mean(brand_first) < 0.9


def test_brand_colour_and_gender_slots_appear_in_the_text(data, searches):
    cat = data.dataset.catalog
    for field in ("brand", "color", "gender"):
        assert 0.03 < np.mean(searches[field] != "") < 0.5, field
    for row in searches.rows():
        q = row["query"].lower()
        if row["brand"]:
            assert row["brand"].lower() in q
            sold = (cat["category"] == row["category"]) & (cat["brand"] == row["brand"])
            assert sold.any(), "brand slots name brands that sell in the intent leaf"
        if row["color"]:
            assert re.search(rf"\b{row['color']}\b", q)
        if row["gender"]:
            assert any(re.search(rf"(^|\s){re.escape(w)}(\s|$)", q) for w in GENDER_WORDS[row["gender"]]), q


def test_price_limits_parse_back_to_the_slot_values(searches):
    with_price = 0
    for row in searches.rows():
        lo, hi = parse_price(row["query"])
        np.testing.assert_equal((lo, hi), (row["price_min"], row["price_max"]), err_msg=row["query"])
        with_price += not (np.isnan(lo) and np.isnan(hi))
        if not np.isnan(row["price_min"]) and not np.isnan(row["price_max"]):
            assert row["price_min"] < row["price_max"]
    assert with_price > 0.1 * len(searches)


def test_price_limits_are_near_the_leaf_prices(data, searches):
    cat = data.dataset.catalog
    limits = searches.take(~np.isnan(searches["price_max"]))
    ratio = [hi / np.median(cat["price"][cat["category"] == c]) for hi, c in zip(limits["price_max"], limits["category"])]
    assert 0.5 < np.median(ratio) < 2.0


def test_search_clicks_land_mostly_in_the_intent_leaf(data, searches):
    ev = data.dataset.events
    clicks = ev.take((ev["event_type"] == "click") & (ev["query"] != ""))
    intent = dict(zip(searches["request_id"], searches["category"]))
    leaf_of = dict(zip(data.dataset.catalog["item_id"], data.dataset.catalog["category"]))
    in_leaf = np.mean([leaf_of[i] == intent[r] for r, i in zip(clicks["request_id"], clicks["item_id"])])
    assert in_leaf > 0.65


def test_slot_matches_raise_click_rates(data, searches):
    """Items agreeing with a query's colour slot are clicked more often than contradicting ones."""
    ev = data.dataset.events
    imp = ev.take((ev["event_type"] == "impression") & (ev["query"] != ""))
    clicked = set(zip(*[ev[c][ev["event_type"] == "click"] for c in ("request_id", "item_id")]))
    slot = dict(zip(searches["request_id"], searches["color"]))
    color_of = dict(zip(data.dataset.catalog["item_id"], data.dataset.catalog["color"]))
    match, clash = [], []
    for r, i in zip(imp["request_id"], imp["item_id"]):
        want, have = slot[r], color_of[i]
        if want and have:
            (match if want == have else clash).append((r, i) in clicked)
    assert len(match) > 100 and len(clash) > 100
    assert np.mean(match) > 1.5 * np.mean(clash)
