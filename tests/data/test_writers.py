"""write_table: exact round trips through read_table for every format, and atomic replacement of existing files."""

import json

import numpy as np
import pytest

from tfrec.data import writers
from tfrec.data.readers import read_table
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, USERS_SCHEMA, Table
from tfrec.data.writers import write_table

FORMATS = ["csv", "tsv", "jsonl", "ndjson", "csv.gz", "tsv.gz", "jsonl.gz", "parquet"]
NAN = float("nan")
TRICKY_TEXT = [
    "Café crème brûlée",
    'quote " comma , tab \t and\nnewline',
    "  padded  ",
    "日本語 🛒 emoji",
    "nan",
    "",
    "carriage\rreturn",
]


def tricky_events() -> Table:
    n = len(TRICKY_TEXT)
    return Table(
        EVENTS_SCHEMA,
        {
            "user_id": [f"user {i}" for i in range(n)],
            "item_id": [f"ïtem-{i}" for i in range(n)],
            "event_type": ["impression", "click", "add_to_cart", "purchase", "rate", "click", "rate"],
            "timestamp": [0, -1, 1_700_000_000, -99_999_999_999, 99_999_999_999, 1, 2],
            "query": TRICKY_TEXT,
            "position": [-1, 0, 3, 2**31, 7, -1, 0],
            "price": [0.1 + 0.2, NAN, 1e-300, 123456789.123456789, 5e300, -0.0, 19.99],
            "request_id": ["r1", "", "r2", "", "r3", "", "r4"],
            "rating": [NAN, NAN, NAN, NAN, 4.5, NAN, 1 / 3],
        },
        {"device": TRICKY_TEXT[::-1], "segment": ["a", "", "b", "", "c", "", "d"]},
    )


def tricky_catalog() -> Table:
    return Table(
        CATALOG_SCHEMA,
        {
            "item_id": ["A1", "b-2", "Ç3"],
            "title": ["Misérables, Les (1995)", 'The "Best" Bag', ""],
            "category": ["Movies > Drama", "", "Home > Kitchen > Pans"],
            "brand": ["", "Acme", "ÄÖÜ"],
            "price": [NAN, 2.5, 1 / 7],
        },
        {"colour": ["red", "", "blue"]},
    )


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("make_table", [tricky_events, tricky_catalog], ids=["events", "catalog"])
def test_round_trip_is_exact(tmp_path, fmt, make_table):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    table = make_table()
    path = write_table(table, tmp_path / f"{table.schema.name}.{fmt}")
    back = read_table(path, table.schema)
    assert back.equals(table)
    for name, column in table.columns.items():
        if column.dtype == np.float64:  # bit-exact, so -0.0 stays -0.0 (equals() treats it as 0.0)
            assert back[name].tobytes() == column.tobytes(), name
        else:
            assert back[name].tolist() == column.tolist(), name
    assert back.column_names == table.column_names


def test_users_round_trip(tmp_path):
    table = Table(USERS_SCHEMA, {"user_id": ["1", "2"]}, {"age": ["24", ""], "zip": ["00501", "94043"]})
    for fmt in ("csv", "jsonl"):
        assert read_table(write_table(table, tmp_path / f"users.{fmt}"), USERS_SCHEMA).equals(table)


def test_empty_table_round_trip(tmp_path):
    table = Table(EVENTS_SCHEMA, {f.name: [] for f in EVENTS_SCHEMA.fields}, {"device": []})
    back = read_table(write_table(table, tmp_path / "events.csv"), EVENTS_SCHEMA)
    assert back.equals(table)


def test_csv_cells_for_missing_values(tmp_path):
    table = Table(CATALOG_SCHEMA, {"item_id": ["a"], "price": [NAN]}, {"note": [""]})
    text = write_table(table, tmp_path / "catalog.csv").read_bytes().decode("utf-8")
    assert text == "item_id,title,category,brand,price,note\r\na,,,,,\r\n"


def test_jsonl_writes_null_for_nan_and_native_numbers(tmp_path):
    table = Table(EVENTS_SCHEMA, {
        "user_id": ["u"], "item_id": ["i"], "event_type": ["rate"], "timestamp": [5], "rating": [4.0],
    })
    record = json.loads(write_table(table, tmp_path / "events.jsonl").read_text(encoding="utf-8"))
    assert record["price"] is None and record["rating"] == 4.0 and record["timestamp"] == 5 and record["position"] == -1


def test_parquet_writes_nan_as_null_and_ints_as_int64(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    write_table(tricky_events(), tmp_path / "events.parquet")
    arrow = pq.read_table(tmp_path / "events.parquet")
    assert arrow.column("price").null_count == 1
    assert arrow.schema.field("timestamp").type == pa.int64()
    assert arrow.schema.field("device").type == pa.string()


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = write_table(tricky_catalog(), tmp_path / "catalog.csv")
    before = path.read_bytes()

    def explode(table, name):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writers, "_text_cells", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        write_table(tricky_catalog(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.csv"]


def test_overwrite_replaces_content(tmp_path):
    path = tmp_path / "nested" / "catalog.jsonl"
    write_table(tricky_catalog(), path)
    smaller = tricky_catalog().take(np.array([0]))
    write_table(smaller, path)
    assert read_table(path, CATALOG_SCHEMA).equals(smaller)


def test_unsupported_extension(tmp_path):
    from tfrec.data.errors import DataError

    with pytest.raises(DataError, match="unsupported file type"):
        write_table(tricky_catalog(), tmp_path / "catalog.parquet.gz")
    assert not any(tmp_path.iterdir())


def test_floats_are_written_with_repr_precision(tmp_path):
    table = Table(CATALOG_SCHEMA, {"item_id": ["a"], "price": [0.1 + 0.2]})
    text = write_table(table, tmp_path / "catalog.csv").read_text(encoding="utf-8")
    assert text.splitlines()[1] == "a,,,,0.30000000000000004"


@pytest.mark.parametrize("seconds", [10**11, -(10**11), 2**40])
def test_refuses_timestamps_that_would_read_back_as_milliseconds(tmp_path, seconds):
    table = Table(EVENTS_SCHEMA, {"user_id": ["u"], "item_id": ["i"], "event_type": ["click"], "timestamp": [seconds]})
    with pytest.raises(ValueError, match=rf"events row 1 has timestamp {seconds}, beyond \+-100000000000 seconds"):
        write_table(table, tmp_path / "events.csv")
    assert not any(tmp_path.iterdir())
