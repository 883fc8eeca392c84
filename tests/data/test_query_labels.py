"""Labelled queries: character spans of slot values (templated examples, synthetic coverage), the canonical schema
and its reader, errors naming file / row / field, and the trainer arrays."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from tfrec.data.errors import BadRowReport, DataError
from tfrec.data.query_labels import (LABELLED_QUERIES_SCHEMA, SLOT_NAMES, SlotNotFoundError,
                                     labelled_queries_from_ground_truth, query_training_arrays,
                                     read_labelled_queries, slot_spans)
from tfrec.data.readers import SkippedRowsWarning
from tfrec.data.schema import Table, TableSchema
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.text.slots import normalize_gender, parse_price

NAN = float("nan")


def texts(query, values):
    return [(query[s:e], slot) for s, e, slot in slot_spans(query, values)]


@pytest.fixture(scope="module")
def data():
    return generate(SyntheticConfig.preset("tiny", seed=3, search_fraction=0.7))


def test_schema_and_slot_names():
    assert SLOT_NAMES == ("brand", "color", "size", "gender", "material", "price_min", "price_max")
    assert LABELLED_QUERIES_SCHEMA.field_names == ["query", "category"] + list(SLOT_NAMES)
    assert LABELLED_QUERIES_SCHEMA.required == ["query"]
    t = Table(LABELLED_QUERIES_SCHEMA, {"query": ["a"]})
    assert t["brand"][0] == "" and math.isnan(t["price_max"][0])


@pytest.mark.parametrize("query, values, expected", [
    ("nike red running shoes mens under $80", dict(brand="Nike", color="red", gender="men", price_max=80),
     [("nike", "brand"), ("red", "color"), ("mens", "gender"), ("$80", "price_max")]),
    ("sofa between 20 and 30", dict(price_min=20, price_max=30), [("20", "price_min"), ("30", "price_max")]),
    ("lamps $20 to $30", dict(price_min=20, price_max=30), [("$20", "price_min"), ("$30", "price_max")]),
    ("rugs 20-30", dict(price_min=20.0, price_max=30.0), [("20", "price_min"), ("30", "price_max")]),
    ("cookbook $15-$25", dict(price_min=15, price_max=25), [("$15", "price_min"), ("$25", "price_max")]),
    ("desk less than 50", dict(price_max=50), [("50", "price_max")]),
    ("desk up to 30 dollars", dict(price_max=30), [("30", "price_max")]),
    ("chairs over 20", dict(price_min=20), [("20", "price_min")]),
    ("chairs from 20", dict(price_min=20), [("20", "price_min")]),
    ("Pawsome Dog Food From 25 To 40", dict(brand="Pawsome", price_min=25, price_max=40),
     [("Pawsome", "brand"), ("25", "price_min"), ("40", "price_max")]),
    ("tv 1,299.99 or less", dict(price_max=1299.99), [("1,299.99", "price_max")]),
    ("ring under 2k", dict(price_max=2000), [("2k", "price_max")]),
    ("boots for men", dict(gender="men"), [("men", "gender")]),
    ("Men's Boots", dict(gender="men"), [("Men's", "gender")]),
    ("kids' sneakers", dict(gender="kids"), [("kids'", "gender")]),
    ("girls dresses", dict(gender="kids"), [("girls", "gender")]),
    ("ladies watch", dict(gender="women"), [("ladies", "gender")]),
    ("unisex hoodie", dict(gender="unisex"), [("unisex", "gender")]),
    ("penwright press romance novels", dict(brand="Penwright Press"), [("penwright press", "brand")]),
    ("barkley & co dog bed", dict(brand="Barkley & Co"), [("barkley & co", "brand")]),
    ("XL cotton hoodie size 10 under 10", dict(size="xl", material="Cotton", price_max=10),
     [("XL", "size"), ("cotton", "material"), ("10", "price_max")]),
    ("boots size 10 under 10", dict(size="10", price_max=10), [("10", "size"), ("10", "price_max")]),
    ("size 7.5 shoes", dict(size="7.5"), [("7.5", "size")]),
    ('monitor 27" black', dict(size='27"', color="black"), [('27"', "size"), ("black", "color")]),
    ("red fox red jacket", dict(brand="Red Fox", color="red"), [("red fox", "brand"), ("red", "color")]),
    ("shoes over 20 under 80", dict(price_min=20, price_max=80), [("20", "price_min"), ("80", "price_max")]),
    ("lamp 25", dict(price_max=25), [("25", "price_max")]),  # no phrase: a number with the value is the fallback
])
def test_templated_span_texts(query, values, expected):
    assert texts(query, values) == expected


@pytest.mark.parametrize("query, values, missing", [
    ("nike shoes", dict(brand="Nik"), "brand"),  # whole words only
    ("paper shredder", dict(color="red"), "color"),
    ("size 7.5 shoes", dict(size="7"), "size"),
    ("boots for women", dict(gender="men"), "gender"),
    ("mens boots", dict(price_max=80), "price_max"),
    ("chairs over 20", dict(price_max=20), "price_max"),  # the number is a lower limit in the text
    ("sofa 20-30", dict(price_min=20, price_max=40), "price_max"),
])
def test_missing_values_raise(query, values, missing):
    with pytest.raises(SlotNotFoundError, match=missing) as info:
        slot_spans(query, values)
    assert info.value.slot == missing


def test_lenient_slot_spans_keep_what_is_found_and_errors_name_the_row():
    values = dict(brand="Nike", color="blue", price_max=80)
    assert texts("nike red shoes under 80", {**values, "color": ""}) == [("nike", "brand"), ("80", "price_max")]
    assert slot_spans("nike red shoes under 80", values, strict=False) == [(0, 4, "brand"), (21, 23, "price_max")]
    with pytest.raises(SlotNotFoundError, match=r"row 7: color 'blue' not found"):
        slot_spans("nike red shoes under 80", values, row=7)


def test_absent_values_are_ignored():
    assert slot_spans("sofa", {"brand": "", "color": None, "price_min": NAN, "query": "sofa", "category": "x"}) == []


def _check_spans(query, spans, row):
    for (s, e, slot), nxt in zip(spans, spans[1:] + [None]):
        assert 0 <= s < e <= len(query)
        assert nxt is None or e <= nxt[0], f"overlap in {query!r}: {spans}"
        text = query[s:e]
        if slot in ("price_min", "price_max"):
            assert parse_price(text) == row[slot], query
        elif slot == "gender":
            assert normalize_gender(text) == row[slot], query
        else:
            assert text.lower() == row[slot].lower(), query


def test_synthetic_spans_cover_at_least_99_percent_of_slots(data):
    table = labelled_queries_from_ground_truth(data.ground_truth)
    rq = data.ground_truth.requests
    assert len(table) == int((rq["is_search"] == 1).sum()) > 1500
    assert table["request_id"].tolist() == rq["request_id"][rq["is_search"] == 1].tolist()
    arrays = query_training_arrays(table, strict=False)
    report = arrays.report
    assert report.n_queries == len(table) and report.n_slots > 0.5 * len(table)
    assert report.coverage >= 0.99, report.summary()
    assert len(arrays) == len(table) - len(report.skipped_rows)
    kept = np.setdiff1d(np.arange(len(table)), report.skipped_rows)
    assert arrays.intents.tolist() == table["category"][kept].tolist()
    for i, query, spans in zip(kept, arrays.queries, arrays.spans):
        assert query == table["query"][i]
        _check_spans(query, spans, table.row(int(i)))
    by_slot = {slot: sum(sp[2] == slot for s in arrays.spans for sp in s) for slot in SLOT_NAMES}
    assert all(by_slot[s] > 20 for s in ("brand", "color", "gender", "price_min", "price_max")), by_slot


def test_ground_truth_directory_gives_the_same_table(data, tmp_path):
    data.ground_truth.save(str(tmp_path))
    table = labelled_queries_from_ground_truth(data.ground_truth)
    assert labelled_queries_from_ground_truth(tmp_path).equals(table)
    same, request_ids = labelled_queries_from_ground_truth(tmp_path, with_request_ids=True)
    assert same.equals(table) and request_ids.tolist() == table["request_id"].tolist()
    with pytest.raises(DataError, match="no requests.csv"):
        labelled_queries_from_ground_truth(tmp_path / "nope")


def _table(rows):
    return Table.from_rows(LABELLED_QUERIES_SCHEMA, [{**{"price_min": NAN, "price_max": NAN}, **r} for r in rows])


def test_lenient_arrays_count_skips_and_strict_names_the_row_and_field():
    table = _table([{"query": "nike shoes", "brand": "Nike", "category": "Shoes"},
                    {"query": "red shoes", "color": "blue", "category": "Shoes"},
                    {"query": "hats under 20", "price_max": 20.0}])
    arrays = query_training_arrays(table, strict=False)
    assert arrays.queries.tolist() == ["nike shoes", "hats under 20"]
    assert arrays.intents.tolist() == ["Shoes", ""]
    assert arrays.spans == [[(0, 4, "brand")], [(11, 13, "price_max")]]
    r = arrays.report
    assert (r.n_queries, r.n_slots, r.n_found, r.skipped_rows) == (3, 3, 2, [1])
    assert r.missing_by_slot == {"color": 1} and r.coverage == pytest.approx(2 / 3)
    assert "labelled_queries row 2, field 'color'" in r.examples[0]
    with pytest.raises(DataError, match=r"mine\.csv row 2, field 'color': color 'blue' does not occur"):
        query_training_arrays(table, file="mine.csv")
    with pytest.raises(ValueError, match="expected a labelled_queries table"):
        query_training_arrays(Table(TableSchema("other", LABELLED_QUERIES_SCHEMA.fields), {"query": ["x"]}))


CSV = ("query,category,brand,color,size,gender,material,price_min,price_max\n"
       "nike red shoes,Shoes,Nike,red,,,,,\n"
       "mens boots under $80,Boots,,,,men,,,80\n")


def test_read_user_csv_and_parquet(tmp_path):
    path = tmp_path / "queries.csv"
    path.write_text(CSV, encoding="utf-8")
    table = read_labelled_queries(path)
    assert table["query"].tolist() == ["nike red shoes", "mens boots under $80"]
    assert table["price_max"][1] == 80.0 and math.isnan(table["price_min"][0]) and table["size"][0] == ""
    assert query_training_arrays(table).spans == [[(0, 4, "brand"), (5, 8, "color")],
                                                  [(0, 4, "gender"), (17, 20, "price_max")]]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"query": ["queen bed frame"], "size": ["Queen"], "price_max": [None]}),
                   tmp_path / "q.parquet")
    assert query_training_arrays(read_labelled_queries(tmp_path / "q.parquet")).spans == [[(0, 5, "size")]]


@pytest.mark.parametrize("extra, match", [
    ("leather belt,,,,,,wool,,\n", r"queries\.csv row 3 \(line 4\), field 'material'.*'wool' does not occur"),
    ("belt over 20,,,,,,,,20\n", r"queries\.csv row 3 \(line 4\), field 'price_max'"),
    ("belt,,,,,,,-5,\n", r"queries\.csv row 3 \(line 4\), field 'price_min': negative price_min"),
    ("belt 30-20,,,,,,,30,20\n", r"queries\.csv row 3 \(line 4\), field 'price_min': price_min 30.0 is above"),
    ("belt,,,,,,,cheap,\n", r"queries\.csv row 3 \(line 4\), field 'price_min'.*'cheap'"),
    (",Belts,,,,,,,\n", r"queries\.csv row 3 \(line 4\), field 'query'"),
])
def test_bad_user_rows_name_file_row_and_field(tmp_path, extra, match):
    path = tmp_path / "queries.csv"
    path.write_text(CSV + extra, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        read_labelled_queries(path)


def test_skip_mode_records_bad_label_rows(tmp_path):
    path = tmp_path / "queries.csv"
    path.write_text(CSV + "leather belt,,,,,,wool,,\nbelt,,,,,,,x,\n", encoding="utf-8")
    report = BadRowReport()
    table = read_labelled_queries(path, skip_bad_rows=True, report=report)
    assert len(table) == 2 and report.total_read == 4 and report.total_skipped == 2
    assert report.skipped_by_reason() == {("queries.csv", "material", "slot value not in query"): 1,
                                          ("queries.csv", "price_min", "not a number"): 1}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(read_labelled_queries(path, skip_bad_rows=True)) == 2
    assert any(issubclass(w.category, SkippedRowsWarning) for w in caught)
    (tmp_path / "noquery.csv").write_text("brand\nNike\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing required column 'query'"):
        read_labelled_queries(tmp_path / "noquery.csv")
