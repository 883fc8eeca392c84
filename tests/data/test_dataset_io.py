"""Dataset directories: finding the table files, referential integrity, skip-mode reports and validation stats."""

import numpy as np
import pytest

from tfrec.data.dataset_io import find_table_files, load_dataset, validate_dataset, write_dataset
from tfrec.data.errors import DataError
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, USERS_SCHEMA, Dataset, Table

CATALOG_CSV = "item_id,title,price\nA,Shoe,10\nB,Bag,\nC,Hat,5.5\n"
EVENTS_HEADER = "user_id,item_id,event_type,timestamp,rating"


def make_dir(tmp_path, files):
    directory = tmp_path / "shop"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def events_text(*rows):
    return "\n".join([EVENTS_HEADER, *rows]) + "\n"


def sample_dataset(with_users=True) -> Dataset:
    catalog = Table(CATALOG_SCHEMA, {"item_id": ["A", "B"], "title": ["Shoe", "Bag"], "price": [10.0, np.nan]})
    events = Table(
        EVENTS_SCHEMA,
        {
            "user_id": ["u1", "u2", "u1"],
            "item_id": ["A", "B", "B"],
            "event_type": ["click", "purchase", "rate"],
            "timestamp": [1_700_000_000, 1_700_000_100, 1_700_086_400],
            "rating": [np.nan, np.nan, 4.0],
        },
        {"device": ["web", "app", ""]},
    )
    users = Table(USERS_SCHEMA, {"user_id": ["u1", "u2"]}, {"segment": ["vip", ""]}) if with_users else None
    return Dataset(catalog, events, users)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet", "csv.gz"])
def test_write_then_load_round_trip(tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    dataset = sample_dataset()
    written = write_dataset(dataset, tmp_path / "out", format=fmt)
    assert sorted(p.name for p in written.values()) == sorted(f"{t}.{fmt}" for t in ("catalog", "events", "users"))
    loaded, report = load_dataset(tmp_path / "out")
    assert loaded.catalog.equals(dataset.catalog)
    assert loaded.events.equals(dataset.events)
    assert loaded.users.equals(dataset.users)
    assert report.total_skipped == 0 and report.files[f"events.{fmt}"].read == 3


def test_users_file_is_optional(tmp_path):
    write_dataset(sample_dataset(with_users=False), tmp_path / "out")
    loaded, _ = load_dataset(tmp_path / "out")
    assert loaded.users is None and len(loaded.events) == 3


def test_unknown_item_raises_with_location(tmp_path):
    rows = [f"u{i},A,click,1700000000," for i in range(1, 12)] + ["u12,X,click,1700000000,"]
    directory = make_dir(tmp_path, {"catalog.csv": CATALOG_CSV, "events.csv": events_text(*rows)})
    with pytest.raises(DataError) as caught:
        load_dataset(directory)
    assert str(caught.value) == "events.csv row 12 (line 13), field 'item_id': unknown item 'X' (not in catalog.csv)"


def test_skip_mode_reports_unknown_items_and_file_errors_together(tmp_path):
    directory = make_dir(
        tmp_path,
        {
            "catalog.csv": CATALOG_CSV + "D,Broken,-1\n",  # D is skipped (negative price) ...
            "events.csv": events_text(
                "u1,A,click,1700000000,",
                "u1,X,click,1700000001,",
                "u2,D,purchase,1700000002,",  # ... so this event names an unknown item
                "u2,B,rate,1700000003,",  # rate without rating
                "u3,C,rate,1700000004,5",
            ),
            "users.csv": "user_id,segment\nu1,a\nu1,b\n",
        },
    )
    dataset, report = load_dataset(directory, skip_bad_rows=True)
    assert dataset.catalog["item_id"].tolist() == ["A", "B", "C"]
    assert dataset.events["item_id"].tolist() == ["A", "C"]
    assert dataset.users["segment"].tolist() == ["a"]
    assert report.total_skipped == 5
    events = report.files["events.csv"]
    assert (events.read, events.kept, events.skipped) == (5, 2, 3)
    assert report.skipped_by_reason() == {
        ("events.csv", "item_id", "unknown item"): 2,
        ("catalog.csv", "price", "negative price"): 1,
        ("events.csv", "rating", "rate event without a rating"): 1,
        ("users.csv", "user_id", "duplicate key"): 1,
    }
    messages = [str(e) for e in report.examples]
    assert "events.csv row 2 (line 3), field 'item_id': unknown item 'X' (not in catalog.csv)" in messages
    assert "events.csv row 3 (line 4), field 'item_id': unknown item 'D' (not in catalog.csv)" in messages


def test_directory_layout_errors(tmp_path):
    with pytest.raises(DataError, match="dataset directory not found"):
        load_dataset(tmp_path / "nope")
    directory = make_dir(tmp_path, {"events.csv": events_text()})
    with pytest.raises(DataError, match=r"no catalog file: expected catalog.<ext> with ext one of \.csv"):
        load_dataset(directory)
    (directory / "catalog.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"found catalog.xlsx, which is not a supported format"):
        load_dataset(directory)
    (directory / "catalog.csv").write_text(CATALOG_CSV)
    (directory / "catalog.jsonl").write_text('{"item_id": "A"}\n')
    with pytest.raises(DataError) as caught:
        load_dataset(directory)
    assert str(caught.value) == f"{directory}: catalog.csv, catalog.jsonl all hold catalog; keep only one"
    (directory / "catalog.jsonl").unlink()
    (directory / "events.csv").unlink()
    with pytest.raises(DataError, match="no events file"):
        load_dataset(directory)


def test_find_table_files_ignores_hidden_temporaries(tmp_path):
    directory = make_dir(
        tmp_path, {"catalog.csv": CATALOG_CSV, "events.jsonl": "", ".events.csv.1234.tmp": "", "notes.txt": ""}
    )
    files = find_table_files(directory)
    assert {k: (v.name if v else None) for k, v in files.items()} == {
        "catalog": "catalog.csv", "events": "events.jsonl", "users": None,
    }


def test_missing_required_column_fails_even_in_skip_mode(tmp_path):
    directory = make_dir(tmp_path, {"catalog.csv": CATALOG_CSV, "events.csv": "user_id,item_id,timestamp\nu,A,1\n"})
    with pytest.raises(DataError, match=r"events.csv, field 'event_type': missing required column 'event_type'"):
        load_dataset(directory, skip_bad_rows=True)


def test_write_dataset_refuses_to_create_ambiguous_directories(tmp_path):
    write_dataset(sample_dataset(), tmp_path / "out", format="jsonl")
    with pytest.raises(DataError, match="catalog.jsonl already exists and would conflict"):
        write_dataset(sample_dataset(), tmp_path / "out", format="csv")
    assert not (tmp_path / "out" / "catalog.csv").exists()  # nothing written
    with pytest.raises(DataError, match="users.jsonl already exists"):
        write_dataset(sample_dataset(with_users=False), tmp_path / "out", format="jsonl")
    with pytest.raises(ValueError, match="unsupported format 'xlsx'"):
        write_dataset(sample_dataset(), tmp_path / "other", format="xlsx")


def test_validate_dataset_stats(tmp_path):
    write_dataset(sample_dataset(), tmp_path / "out")
    with (tmp_path / "out" / "events.csv").open("a", encoding="utf-8") as handle:
        handle.write("u9,A,teleport,1700000000,,-1,,,,x\r\n")
    report, stats = validate_dataset(tmp_path / "out")
    assert report.total_skipped == 1
    assert stats == {
        "rows": {"catalog": 2, "events": 3, "users": 2},
        "event_types": {"impression": 0, "click": 1, "add_to_cart": 0, "purchase": 1, "rate": 1},
        "time_range": {
            "first": "2023-11-14T22:13:20Z",
            "last": "2023-11-15T22:13:20Z",
            "first_epoch": 1_700_000_000,
            "last_epoch": 1_700_086_400,
        },
        "distinct_users_in_events": 2,
        "distinct_items_in_events": 2,
    }
    with pytest.raises(DataError, match="unknown event type 'teleport'"):
        validate_dataset(tmp_path / "out", skip_bad_rows=False)
