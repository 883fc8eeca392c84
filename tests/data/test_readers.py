"""read_table: per-format parsing, the exact location in every bad-row message, and skip-mode accounting."""

import gzip
import json
import math
import sys

import numpy as np
import pytest

from tfrec.data.errors import BadRowReport, DataError
from tfrec.data.readers import SkippedRowsWarning, read_table
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, USERS_SCHEMA, Field, TableSchema

EVENTS_HEADER = "user_id,item_id,event_type,timestamp,price,rating,position"
GOOD_EVENT = "u1,i1,click,1700000000,9.99,,3"


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def events_csv(tmp_path, *rows, header=EVENTS_HEADER):
    return write(tmp_path, "events.csv", "\n".join([header, *rows]) + "\n")


def test_csv_types_defaults_and_attributes(tmp_path):
    path = write(
        tmp_path,
        "catalog.csv",
        "item_id,title,price,colour\n"
        'sku-1,"Shoe, red",19.5,red\n'
        "sku-2,Bag,,\n",
    )
    table = read_table(path, CATALOG_SCHEMA)
    assert table["item_id"].tolist() == ["sku-1", "sku-2"]
    assert table["title"].tolist() == ["Shoe, red", "Bag"]
    assert table["price"][0] == 19.5 and math.isnan(table["price"][1])
    assert table["brand"].tolist() == ["", ""]  # absent optional column -> default
    assert table.attributes["colour"].tolist() == ["red", ""]


def test_events_absent_optional_columns_take_defaults(tmp_path):
    table = read_table(events_csv(tmp_path, "u1,i1,Add_To_Cart,1700000000,,,", header=EVENTS_HEADER), EVENTS_SCHEMA)
    row = table.row(0)
    assert row["event_type"] == "add_to_cart"  # case-insensitive
    assert row["position"] == -1 and math.isnan(row["price"]) and row["query"] == ""


# --- one parametrised case per bad-row kind: the message must name file, row, line, field and the problem -----------

BAD_EVENT_ROWS = [
    ("u1,,click,1700000000,,,", "events.csv row 2 (line 3), field 'item_id': missing required value"),
    ("   ,i1,click,1700000000,,,", "events.csv row 2 (line 3), field 'user_id': missing required value"),
    ("u1,i1,click,1700000000,abc,,", "events.csv row 2 (line 3), field 'price': cannot parse 'abc' as a number"),
    ("u1,i1,click,1700000000,inf,,", "events.csv row 2 (line 3), field 'price': 'inf' is not a finite number"),
    ("u1,i1,click,1700000000,,,3.5", "events.csv row 2 (line 3), field 'position': cannot parse '3.5' as an integer"),
    (
        "u1,i1,click,2026-13-45,,,",
        "events.csv row 2 (line 3), field 'timestamp': cannot parse '2026-13-45' as a timestamp "
        "(ISO 8601 or epoch seconds)",
    ),
    (
        "u1,i1,view,1700000000,,,",
        "events.csv row 2 (line 3), field 'event_type': unknown event type 'view'; "
        "valid types are impression, click, add_to_cart, purchase, rate",
    ),
    ("u1,i1,purchase,1700000000,-5.0,,", "events.csv row 2 (line 3), field 'price': negative price -5.0"),
    (
        "u1,i1,click,1700000000,,,-2",
        "events.csv row 2 (line 3), field 'position': position -2 is below -1 (use -1 when the position is unknown)",
    ),
    (
        "u1,i1,rate,1700000000,,,",
        "events.csv row 2 (line 3), field 'rating': a 'rate' event needs a rating, this row has none",
    ),
    ("u1,i1,click,,,,", "events.csv row 2 (line 3), field 'timestamp': missing required value"),
    ("u1,i1,click,1700000000", "events.csv row 2 (line 3): has 4 cells but the header has 7"),
]


@pytest.mark.parametrize("bad_row, message", BAD_EVENT_ROWS)
def test_bad_event_row_raises_with_exact_location(tmp_path, bad_row, message):
    path = events_csv(tmp_path, GOOD_EVENT, bad_row, GOOD_EVENT)
    with pytest.raises(DataError) as caught:
        read_table(path, EVENTS_SCHEMA)
    assert str(caught.value) == message
    assert (caught.value.file, caught.value.row, caught.value.line) == ("events.csv", 2, 3)


@pytest.mark.parametrize("bad_row, message", BAD_EVENT_ROWS)
def test_bad_event_row_is_skipped_and_counted(tmp_path, bad_row, message):
    path = events_csv(tmp_path, GOOD_EVENT, bad_row, "u2,i2,rate,1700000001,,4.5,0")
    report = BadRowReport()
    table = read_table(path, EVENTS_SCHEMA, skip_bad_rows=True, report=report)
    assert table["user_id"].tolist() == ["u1", "u2"]
    assert table["rating"][1] == 4.5
    counts = report.files["events.csv"]
    assert (counts.read, counts.kept, counts.skipped) == (3, 2, 1)
    assert [str(e) for e in report.examples] == [message]
    error = report.examples[0]
    assert counts.skipped_by_reason == {(error.field, error.reason): 1}


def test_example_message_from_the_contract(tmp_path):
    rows = [f"u{i},i{i},click,1700000000,,," for i in range(1, 7)] + ["u7,i7,click,2026-13-45,,,"]
    with pytest.raises(DataError) as caught:
        read_table(events_csv(tmp_path, *rows), EVENTS_SCHEMA)
    assert str(caught.value) == (
        "events.csv row 7 (line 8), field 'timestamp': cannot parse '2026-13-45' as a timestamp "
        "(ISO 8601 or epoch seconds)"
    )
    assert caught.value.field == "timestamp" and caught.value.value == "2026-13-45"


def test_duplicate_key_names_both_rows(tmp_path):
    path = write(tmp_path, "catalog.csv", "item_id,title\na,A\nb,B\na,again\n")
    with pytest.raises(DataError) as caught:
        read_table(path, CATALOG_SCHEMA)
    assert str(caught.value) == (
        "catalog.csv row 3 (line 4), field 'item_id': duplicate item_id 'a', already used by row 1 (line 2)"
    )
    report = BadRowReport()
    table = read_table(path, CATALOG_SCHEMA, skip_bad_rows=True, report=report)
    assert table["title"].tolist() == ["A", "B"]  # the first occurrence wins
    assert report.total_skipped == 1


def test_duplicate_of_a_skipped_row_is_kept(tmp_path):
    path = write(tmp_path, "users.csv", "user_id,segment\n\n,x\nu1,vip\nu1,again\n")
    report = BadRowReport()
    table = read_table(path, USERS_SCHEMA, skip_bad_rows=True, report=report)
    assert table["user_id"].tolist() == ["u1"] and table["segment"].tolist() == ["vip"]
    assert report.skipped_by_reason() == {
        ("users.csv", "user_id", "missing required value"): 1,
        ("users.csv", "user_id", "duplicate key"): 1,
    }


def test_first_bad_row_wins_over_later_ones_in_earlier_columns(tmp_path):
    path = events_csv(tmp_path, GOOD_EVENT, "u1,i1,click,not-a-time,,,", ",i1,click,1700000000,,,")
    with pytest.raises(DataError) as caught:
        read_table(path, EVENTS_SCHEMA)
    assert (caught.value.row, caught.value.field) == (2, "timestamp")


def test_missing_required_column_is_a_file_error_in_both_modes(tmp_path):
    path = events_csv(tmp_path, "u1,i1,click", header="user_id,item_id,event_type")
    for skip in (False, True):
        with pytest.raises(DataError) as caught:
            read_table(path, EVENTS_SCHEMA, skip_bad_rows=skip)
        assert str(caught.value) == (
            "events.csv, field 'timestamp': missing required column 'timestamp' "
            "(columns in the file: user_id, item_id, event_type)"
        )
        assert caught.value.row is None
    with pytest.raises(DataError, match=r"missing required columns 'event_type', 'timestamp' \(columns in the file: "):
        read_table(events_csv(tmp_path, "u1,i1", header="user_id,item_id"), EVENTS_SCHEMA)


def test_lines_account_for_blank_lines_and_multiline_cells(tmp_path):
    path = write(
        tmp_path,
        "events.csv",
        f'{EVENTS_HEADER},note\n\nu1,i1,click,1700000000,,,,"two\nlines"\n\nu2,i2,click,yesterday,,,,x\n',
    )
    with pytest.raises(DataError) as caught:
        read_table(path, EVENTS_SCHEMA)
    assert (caught.value.row, caught.value.line) == (2, 6)
    table = read_table(path, EVENTS_SCHEMA, skip_bad_rows=True, report=BadRowReport())
    assert table.attributes["note"].tolist() == ["two\nlines"]


def test_skip_mode_report_summary_and_totals(tmp_path):
    path = events_csv(tmp_path, GOOD_EVENT, "u1,i1,view,1,,,", "u1,i1,view,2,,,", "u1,,click,3,,,", GOOD_EVENT)
    report = BadRowReport()
    table = read_table(path, EVENTS_SCHEMA, skip_bad_rows=True, report=report)
    assert len(table) == 2 and report.total_skipped == 3 and report.total_read == 5
    summary = report.summary()
    assert "events.csv: 5 rows read, 2 kept, 3 skipped" in summary
    assert "2 x field 'event_type': unknown event type" in summary
    assert "1 x field 'item_id': missing required value" in summary
    assert "events.csv row 4 (line 5), field 'item_id': missing required value" in summary


def test_skip_mode_without_a_report_warns(tmp_path):
    path = events_csv(tmp_path, GOOD_EVENT, "u1,i1,view,1,,,")
    with pytest.warns(SkippedRowsWarning, match=r"events.csv: skipped 1 of 2 rows as bad .* first: events.csv row 2"):
        table = read_table(path, EVENTS_SCHEMA, skip_bad_rows=True)
    assert len(table) == 1


def test_report_keeps_only_the_first_examples_but_counts_all(tmp_path):
    rows = [f"u{i},i{i},bogus,1700000000,,," for i in range(30)]
    report = BadRowReport(max_examples=5)
    table = read_table(events_csv(tmp_path, *rows), EVENTS_SCHEMA, skip_bad_rows=True, report=report)
    assert len(table) == 0 and report.total_skipped == 30
    assert [e.row for e in report.examples] == [1, 2, 3, 4, 5]
    assert "first 5 of 30 bad rows:" in report.summary()


def test_report_merge_adds_counts():
    a, b = BadRowReport(), BadRowReport()
    a.start_file("x.csv", 3)
    a.add(DataError("x.csv", "bad", row=1, field="f"))
    b.start_file("x.csv", 2)
    b.add(DataError("x.csv", "bad", row=2, field="f"))
    b.start_file("y.csv", 4)
    merged = a.merge(b)
    assert merged is a
    assert (a.files["x.csv"].read, a.files["x.csv"].kept, a.files["x.csv"].skipped) == (5, 3, 2)
    assert a.files["x.csv"].skipped_by_reason == {("f", "bad"): 2}
    assert a.files["y.csv"].kept == 4 and a.total_skipped == 2 and len(a.examples) == 2


# --- timestamps ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "cell, seconds",
    [
        ("1700000000", 1700000000),
        ("1700000000.9", 1700000000),  # fractions are floored
        ("1700000000123", 1700000000),  # milliseconds (>= 1e11)
        ("1700000000123456", 1700000000),  # microseconds
        ("1700000000123456789", 1700000000),  # nanoseconds
        ("2023-11-14", 1699920000),  # date only: midnight UTC
        ("2023-11-14T22:13:20", 1700000000),  # naive = UTC
        ("2023-11-14 22:13:20", 1700000000),
        ("2023-11-14T22:13:20Z", 1700000000),
        ("2023-11-14T22:13:20.75+00:00", 1700000000),
        ("2023-11-15T00:13:20+02:00", 1700000000),  # offsets honoured
        ("2023-11-14T17:13:20-05:00", 1700000000),
        (" 2023-11-14T22:13:20Z ", 1700000000),
        ("-86400", -86400),
        ("99999999999", 99999999999),  # just under the milliseconds threshold: still seconds
    ],
)
def test_timestamp_formats(tmp_path, cell, seconds):
    # Alone (bulk path) and next to a bad row (cell-by-cell path): both must give the same seconds.
    clean = read_table(events_csv(tmp_path, f'u1,i1,click,"{cell}",,,'), EVENTS_SCHEMA)
    assert clean["timestamp"].tolist() == [seconds]
    mixed = read_table(
        events_csv(tmp_path, f'u1,i1,click,"{cell}",,,', "u2,i2,click,never,,,"),
        EVENTS_SCHEMA,
        skip_bad_rows=True,
        report=BadRowReport(),
    )
    assert mixed["timestamp"].tolist() == [seconds]


@pytest.mark.parametrize("cell", ["2026-13-45", "yesterday", "nan", "inf", "14/11/2023", "1.7e9.1"])
def test_unparsable_timestamps(tmp_path, cell):
    expected = r"field 'timestamp': cannot parse .* as a timestamp \(ISO 8601 or epoch seconds\)"
    with pytest.raises(DataError, match=expected):
        read_table(events_csv(tmp_path, f"u1,i1,click,{cell},,,"), EVENTS_SCHEMA)


def test_optional_float_accepts_nan_text(tmp_path):
    table = read_table(events_csv(tmp_path, "u1,i1,click,1700000000,NaN,,"), EVENTS_SCHEMA)
    assert math.isnan(table["price"][0])


def test_required_float_rejects_nan(tmp_path):
    schema = TableSchema("scores", (Field("id", "string", required=True), Field("score", "float", required=True)))
    path = write(tmp_path, "scores.csv", "id,score\na,1.5\nb,nan\n")
    with pytest.raises(DataError, match=r"^scores.csv row 2 \(line 3\), field 'score': missing required value$"):
        read_table(path, schema)


# --- JSON lines ------------------------------------------------------------------------------------------------------

def test_jsonl_typed_values_nested_attributes_and_nulls(tmp_path):
    lines = [
        {"user_id": "u1", "item_id": 7, "event_type": "PURCHASE", "timestamp": "2023-11-14T22:13:20Z", "price": 3,
         "attributes": {"device": "mobile", "is_app": True}},
        {"user_id": "u2", "item_id": "i2", "event_type": "rate", "timestamp": 1700000000000, "rating": 4.5,
         "price": None, "position": 2},
    ]
    path = write(tmp_path, "events.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    table = read_table(path, EVENTS_SCHEMA)
    assert table["item_id"].tolist() == ["7", "i2"]
    assert table["timestamp"].tolist() == [1700000000, 1700000000]
    assert table["price"][0] == 3.0 and math.isnan(table["price"][1])
    assert table["position"].tolist() == [-1, 2]
    assert table.attributes["device"].tolist() == ["mobile", ""]
    assert table.attributes["is_app"].tolist() == ["true", ""]


def test_jsonl_bad_lines(tmp_path):
    path = write(
        tmp_path,
        "events.ndjson",
        '{"user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": 1}\n'
        "\n"
        '{"user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": 1\n'
        '["not", "an", "object"]\n'
        '{"user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": 1, "price": true}\n',
    )
    with pytest.raises(DataError) as caught:
        read_table(path, EVENTS_SCHEMA)
    assert str(caught.value).startswith("events.ndjson row 2 (line 3): invalid JSON (")
    report = BadRowReport()
    table = read_table(path, EVENTS_SCHEMA, skip_bad_rows=True, report=report)
    assert len(table) == 1
    assert [str(e) for e in report.examples[1:]] == [
        "events.ndjson row 3 (line 4): expected a JSON object on each line",
        "events.ndjson row 4 (line 5), field 'price': expected a number, got the boolean true",
    ]


def test_jsonl_nested_attribute_may_not_shadow_a_field(tmp_path):
    path = write(tmp_path, "catalog.jsonl", '{"item_id": "a", "attributes": {"price": "1"}}\n')
    with pytest.raises(DataError, match=r"catalog.jsonl row 1 \(line 1\), field 'attributes': attribute 'price'"):
        read_table(path, CATALOG_SCHEMA)


def test_empty_jsonl_is_an_empty_table(tmp_path):
    table = read_table(write(tmp_path, "events.jsonl", ""), EVENTS_SCHEMA)
    assert len(table) == 0 and table["timestamp"].dtype == np.int64


# --- files and formats -----------------------------------------------------------------------------------------------

def test_gzip_tsv_and_bom(tmp_path):
    path = tmp_path / "catalog.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8-sig") as handle:
        handle.write("item_id\ttitle\nx1\tCafé, crème\n")
    table = read_table(path, CATALOG_SCHEMA)
    assert table["title"].tolist() == ["Café, crème"] and table.column_names[0] == "item_id"


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match=r"catalog.xlsx: unsupported file type; use one of \.csv"):
        read_table(tmp_path / "catalog.xlsx", CATALOG_SCHEMA)
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "catalog.csv", CATALOG_SCHEMA)
    with pytest.raises(DataError, match="the file is empty; expected a header row"):
        read_table(write(tmp_path, "catalog.csv", ""), CATALOG_SCHEMA)
    with pytest.raises(DataError, match=r"header column 1 has no name \(a pandas index"):
        read_table(write(tmp_path, "catalog.csv", ",item_id\n0,a\n"), CATALOG_SCHEMA)
    with pytest.raises(DataError, match=r"repeats column\(s\) \['item_id'\]"):
        read_table(write(tmp_path, "catalog.csv", "item_id,item_id\na,b\n"), CATALOG_SCHEMA)
    latin1 = "item_id,title\na,Toy Story\nb,Mis\xe9rables\n"
    with pytest.raises(DataError, match=r"catalog.csv line 3: the file is not valid UTF-8 \(byte 0xe9\)"):
        read_table(write(tmp_path, "catalog.csv", latin1, encoding="latin-1"), CATALOG_SCHEMA)
    with pytest.raises(DataError, match=r"catalog.jsonl line 2: the file is not valid UTF-8 \(byte 0xe9\)"):
        path = write(tmp_path, "catalog.jsonl", '{"item_id": "a"}\n{"item_id": "\xe9"}\n', encoding="latin-1")
        read_table(path, CATALOG_SCHEMA)


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = write(tmp_path, "catalog.parquet", "not really parquet")
    with pytest.raises(ImportError, match=r"pip install 'tfrec\[parquet\]'"):
        read_table(path, CATALOG_SCHEMA)


def test_parquet_native_types(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    arrow = pa.table({
        "user_id": pa.array(["u1", "u2"]),
        "item_id": pa.array([1, 2], type=pa.int32()),
        "event_type": pa.array(["Click", "purchase"]),
        "timestamp": pa.array([1_700_000_000_000, None], type=pa.timestamp("ms", tz="UTC")),
        "price": pa.array([1.25, None]),
        "attributes": pa.array([{"device": "web"}, {"device": None}]),
    })
    pq.write_table(arrow, tmp_path / "events.parquet")
    with pytest.raises(DataError, match=r"events.parquet row 2, field 'timestamp': missing required value"):
        read_table(tmp_path / "events.parquet", EVENTS_SCHEMA)
    table = read_table(tmp_path / "events.parquet", EVENTS_SCHEMA, skip_bad_rows=True, report=BadRowReport())
    row = table.row(0)
    assert math.isnan(row.pop("rating"))
    assert row == {
        "user_id": "u1", "item_id": "1", "event_type": "click", "timestamp": 1_700_000_000, "query": "",
        "position": -1, "price": 1.25, "request_id": "", "device": "web",
    }


def test_corrupt_parquet_is_a_data_error(tmp_path):
    pytest.importorskip("pyarrow")
    with pytest.raises(DataError, match="catalog.parquet: not a readable Parquet file"):
        read_table(write(tmp_path, "catalog.parquet", "garbage"), CATALOG_SCHEMA)


def test_data_error_survives_pickling():
    import pickle

    error = DataError("e.csv", "bad", row=3, line=4, field="f", value="v", detail="bad 'v'")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) == "e.csv row 3 (line 4), field 'f': bad 'v'"
    assert (copy.row, copy.line, copy.field, copy.value, copy.reason) == (3, 4, "f", "v", "bad")
