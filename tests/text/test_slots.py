"""Slot spans -> structured filters, BIO tags over token offsets (round trip on synthetic queries), byte offsets."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tfrec.data.query_labels import labelled_queries_from_ground_truth, query_training_arrays, slot_spans
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.data.synthetic import vocabulary as V
from tfrec.text.slots import (BIO_TAGS, SLOT_NAMES, TAG_IDS, bio_to_spans, byte_spans_to_char_spans,
                              char_spans_to_byte_spans, char_to_byte_offsets, filters_from_spans, normalize_gender,
                              parse_price, spans_to_bio)

TOKEN = re.compile(r"\w+|[^\w\s]")  # whitespace + punctuation split, like BERT's basic tokenizer


def offsets(text: str):
    matches = list(TOKEN.finditer(text))
    return [m.start() for m in matches], [m.end() for m in matches]


def tags(*names):
    return [TAG_IDS[n] for n in names]


@pytest.fixture(scope="module")
def synthetic():
    data = generate(SyntheticConfig.preset("tiny", seed=5, search_fraction=0.7))
    table = labelled_queries_from_ground_truth(data.ground_truth)
    return table, query_training_arrays(table, strict=False)


def test_bio_tag_vocabulary():
    assert BIO_TAGS[0] == "O" and len(BIO_TAGS) == 1 + 2 * len(SLOT_NAMES) == 15
    assert BIO_TAGS[1:5] == ("B-brand", "I-brand", "B-color", "I-color")
    assert TAG_IDS["I-price_max"] == 14


def test_spans_to_bio_tags_first_token_b_and_the_rest_i():
    q = "nike red running shoes men's under $80"
    spans = slot_spans(q, {"brand": "Nike", "color": "red", "gender": "men", "price_max": 80})
    starts, ends = offsets(q)  # nike red running shoes men ' s under $ 80
    got = spans_to_bio(starts, ends, spans)
    assert got.dtype == np.int32
    assert got.tolist() == tags("B-brand", "B-color", "O", "O", "B-gender", "I-gender", "I-gender", "O",
                                "B-price_max", "I-price_max")
    assert bio_to_spans(starts, ends, got) == spans


def test_zero_length_special_tokens_stay_outside_and_close_spans():
    # [CLS] nike [SEP] [PAD]: specials have (0, 0) offsets
    got = spans_to_bio([0, 0, 0, 0], [0, 4, 0, 0], [(0, 4, "brand")])
    assert got.tolist() == tags("O", "B-brand", "O", "O")
    starts, ends = [0, 0, 5, 0, 9], [0, 4, 8, 0, 12]
    assert bio_to_spans(starts, ends, tags("O", "B-brand", "I-brand", "I-brand", "I-brand")) == [
        (0, 8, "brand"), (9, 12, "brand")]


def test_bio_to_spans_merges_i_and_starts_spans_on_stray_i():
    starts, ends = [0, 5, 10, 15, 20, 25], [4, 9, 14, 19, 24, 29]
    t = tags("I-color", "I-color", "B-brand", "B-brand", "I-gender", "O")
    assert bio_to_spans(starts, ends, t) == [(0, 9, "color"), (10, 14, "brand"), (15, 19, "brand"),
                                             (20, 24, "gender")]
    assert bio_to_spans(starts, ends, tags("B-size", "I-material", "I-material", "O", "O", "B-color")) == [
        (0, 4, "size"), (5, 14, "material"), (25, 29, "color")]
    with pytest.raises(ValueError, match="tag id 99"):
        bio_to_spans([0], [1], [99])
    with pytest.raises(ValueError, match="2 tags for 1 tokens"):
        bio_to_spans([0], [1], [0, 0])
    with pytest.raises(ValueError, match="unknown slot"):
        spans_to_bio([0], [1], [(0, 1, "colour")])


def test_span_inside_one_token_tags_that_token():
    q = "$20-$30 lamps"  # one whitespace token holds both prices: the first span claims it
    spans = [(0, 3, "price_min"), (4, 7, "price_max")]
    words = list(re.finditer(r"\S+", q))
    starts, ends = [m.start() for m in words], [m.end() for m in words]
    assert spans_to_bio(starts, ends, spans).tolist() == tags("B-price_min", "O")
    assert bio_to_spans(starts, ends, spans_to_bio(starts, ends, spans)) == [(0, 7, "price_min")]  # not exact


def test_bio_round_trip_is_exact_on_synthetic_queries(synthetic):
    _, arrays = synthetic
    n_tagged = 0
    for query, spans in zip(arrays.queries, arrays.spans):
        starts, ends = offsets(query)
        tag_ids = spans_to_bio(starts, ends, spans)
        assert bio_to_spans(starts, ends, tag_ids) == spans, query
        n_tagged += bool(spans)
    assert n_tagged > 0.3 * len(arrays)


def test_filters_from_spans_reproduce_the_synthetic_slot_values(synthetic):
    table, arrays = synthetic
    assert not arrays.report.skipped_rows
    for i, (query, spans) in enumerate(zip(arrays.queries, arrays.spans)):
        row = table.row(i)
        want = {k: row[k] for k in ("brand", "color", "gender") if row[k]}
        want.update({k: row[k] for k in ("price_min", "price_max") if not math.isnan(row[k])})
        got = filters_from_spans(query, spans)
        if "brand" in want:
            assert got.pop("brand").lower() == want.pop("brand").lower(), query
        assert got == want, query


def test_filters_from_templated_query():
    q = "Nike Red running shoes MENS under $80"
    spans = slot_spans(q, {"brand": "nike", "color": "red", "gender": "men", "price_max": 80.0})
    assert filters_from_spans(q, spans, category="Clothing > Shoes > Running Shoes") == {
        "category": "Clothing > Shoes > Running Shoes", "brand": "Nike", "color": "red", "gender": "men",
        "price_max": 80.0}


def test_filters_price_rules_and_first_text_value():
    q = "red or blue sofa over 900 under 200 cotton XL"
    spans = [(0, 3, "color"), (7, 11, "color"), (22, 25, "price_min"), (32, 35, "price_max"), (36, 42, "material"),
             (43, 45, "size")]
    assert filters_from_spans(q, spans) == {"color": "red", "material": "cotton", "size": "XL", "price_min": 200.0,
                                            "price_max": 900.0}  # min above max: swapped
    # the first lower limit and the last upper limit win, as in the exported SlotDecoder
    assert filters_from_spans("from 10 from 20 x", [(5, 7, "price_min"), (13, 15, "price_min")]) == {"price_min": 10.0}
    assert filters_from_spans("to 10 to 20 x", [(3, 5, "price_max"), (9, 11, "price_max")]) == {"price_max": 20.0}
    assert filters_from_spans("under abc", [(6, 9, "price_max")]) == {}
    assert filters_from_spans("unisex hat", [(0, 6, "gender")]) == {"gender": "unisex"}
    with pytest.raises(ValueError, match="unknown slot"):
        filters_from_spans("x", [(0, 1, "price")])


@pytest.mark.parametrize("text, value", [
    ("$80", 80.0), ("80", 80.0), ("1,299.99", 1299.99), ("80k", 80000.0), ("1.5K", 1500.0), ("50 €", 50.0),
    ("€50", 50.0), ("£1,000", 1000.0), ("80$", 80.0), ("19.99", 19.99),
])
def test_parse_price(text, value):
    assert parse_price(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "1,2", "12,50", "", "$", "80kg", "-5"])
def test_parse_price_rejects_non_amounts(text):
    assert math.isnan(parse_price(text))


def test_normalize_gender_covers_generator_and_common_forms():
    for table in (V.GENDER_BEFORE_NOUN, V.GENDER_AFTER_NOUN):
        for gender, forms in table.items():
            for form in forms:
                assert normalize_gender(form) == gender, form
    cases = {"MENS": "men", "Men\u2019s": "men", "ladies": "women", "Womens": "women", "boys'": "kids",
             "girls": "kids", "toddler": "kids", "unisex": None, "menswear": None}
    assert {k: normalize_gender(k) for k in cases} == cases


def test_char_and_byte_offsets_for_non_ascii_text():
    text = "café rouge sous 50 €"
    assert char_to_byte_offsets(text).tolist()[:6] == [0, 1, 2, 3, 5, 6]
    spans = [(5, 10, "color"), (16, 18, "price_max"), (0, 4, "brand"), (19, 20, "material")]
    raw = text.encode("utf-8")
    byte_spans = char_spans_to_byte_spans(text, spans)
    assert byte_spans[:3] == [(6, 11, "color"), (17, 19, "price_max"), (0, 5, "brand")]
    for (s, e, _), (bs, be, _) in zip(spans, byte_spans):
        assert raw[bs:be].decode("utf-8") == text[s:e]
    assert byte_spans_to_char_spans(text, byte_spans) == spans
    # BIO over byte offsets (as tensorflow-text reports them) gives the same tags as over characters
    starts, ends = offsets(text)
    b = char_to_byte_offsets(text)
    assert spans_to_bio(b[starts], b[ends], byte_spans).tolist() == spans_to_bio(starts, ends, spans).tolist()
    with pytest.raises(ValueError, match="character boundaries"):
        byte_spans_to_char_spans(text, [(4, 5, "brand")])  # inside the two bytes of "é"
    with pytest.raises(ValueError, match="character boundaries"):
        byte_spans_to_char_spans(text, [(0, 99, "brand")])
    with pytest.raises(ValueError, match="outside"):
        char_spans_to_byte_spans(text, [(0, 21, "brand")])
