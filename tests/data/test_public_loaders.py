"""Public data set loaders: the real local copies (skipped when absent) and small hand-made folders for errors.

The real data lives in `shared/data` beside the repository and is never copied into it (licences forbid that).
"""

from pathlib import Path

import numpy as np
import pytest

from tfrec.data.dataset_io import load_dataset, write_dataset
from tfrec.data.errors import DataError
from tfrec.data.public import load_amazon_sequences, load_movielens

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
MOVIELENS = SHARED_DATA / "movielens-100k"
AMAZON_BEAUTY = SHARED_DATA / "amazon-beauty"

needs_movielens = pytest.mark.skipif(
    not (MOVIELENS / "u.data").is_file(), reason=f"MovieLens 100K copy not found at {MOVIELENS.resolve()}"
)
needs_amazon = pytest.mark.skipif(
    not (AMAZON_BEAUTY / "beauty.txt").is_file(), reason=f"Amazon Beauty copy not found at {AMAZON_BEAUTY.resolve()}"
)

GENRES = "unknown|0\nAction|1\nAdventure|2\n\n"


@pytest.fixture(scope="module")
def movielens():
    return load_movielens(MOVIELENS)


@needs_movielens
def test_movielens_counts_match_the_readme(movielens):
    assert (len(movielens.events), len(movielens.catalog), len(movielens.users)) == (100_000, 1682, 943)
    assert len(set(movielens.events["user_id"])) == 943 and len(set(movielens.events["item_id"])) == 1682
    ratings, counts = np.unique(movielens.events["rating"], return_counts=True)
    assert dict(zip(ratings.tolist(), counts.tolist())) == {1.0: 6110, 2.0: 11370, 3.0: 27145, 4.0: 34174, 5.0: 21201}
    assert (movielens.events["timestamp"].min(), movielens.events["timestamp"].max()) == (874724710, 893286638)
    assert set(movielens.events["event_type"]) == {"rate"}
    assert movielens.events.row(0)["user_id"] == "196" and movielens.events.row(0)["item_id"] == "242"


@needs_movielens
def test_movielens_items_decode_latin1_and_map_genres(movielens):
    items = {row["item_id"]: row for row in movielens.catalog.rows()}
    assert items["543"]["title"] == "Misérables, Les (1995)"
    assert items["1005"]["title"].startswith("Double vie de Véronique, La")
    assert items["1"]["title"] == "Toy Story (1995)"
    assert items["1"]["genres"] == "Animation|Children's|Comedy"
    assert items["1"]["category"] == "Movies > Animation"
    assert (items["1"]["release_date"], items["1"]["year"]) == ("1995-01-01", "1995")
    assert (items["1252"]["release_date"], items["1252"]["year"]) == ("1997-06-27", "1963")  # re-release
    assert items["1128"]["title"] == "Heidi Fleiss: Hollywood Madam (1995)"  # trailing blank trimmed
    assert (items["267"]["title"], items["267"]["release_date"], items["267"]["year"]) == ("unknown", "", "")
    assert items["267"]["category"] == "Movies > unknown"


@needs_movielens
def test_movielens_users(movielens):
    first = movielens.users.row(0)
    assert first == {"user_id": "1", "age": "24", "gender": "M", "occupation": "technician", "zip": "85711"}
    assert dict(zip(*np.unique(movielens.users["gender"], return_counts=True))) == {"F": 273, "M": 670}


@needs_movielens
def test_movielens_passes_dataset_validation(movielens, tmp_path):
    write_dataset(movielens, tmp_path / "ml", format="csv")
    loaded, report = load_dataset(tmp_path / "ml")
    assert report.total_skipped == 0
    assert loaded.catalog.equals(movielens.catalog) and loaded.events.equals(movielens.events)


def make_movielens(tmp_path, item_lines, data_lines="1\t1\t5\t881250949\n", users="1|24|M|technician|85711\n"):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.genre").write_text(GENRES, encoding="latin-1")
    (folder / "u.item").write_bytes(item_lines.encode("latin-1"))
    (folder / "u.data").write_text(data_lines, encoding="latin-1")
    (folder / "u.user").write_text(users, encoding="latin-1")
    return folder


def test_movielens_small_folder_decodes_latin1(tmp_path):
    folder = make_movielens(tmp_path, "1|Cérémonie, La (1995)|20-Dec-1996||http://x|0|0|1\n")
    dataset = load_movielens(folder)
    assert dataset.catalog.row(0)["title"] == "Cérémonie, La (1995)"
    assert dataset.catalog.row(0)["category"] == "Movies > Adventure"
    assert dataset.catalog.row(0)["release_date"] == "1996-12-20"


def test_movielens_missing_files_are_named(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_text("1\t1\t5\t1\n")
    with pytest.raises(DataError, match=r"missing u.item, u.user, u.genre; an ml-100k folder needs"):
        load_movielens(folder)
    with pytest.raises(DataError, match="MovieLens folder not found"):
        load_movielens(tmp_path / "absent")


@pytest.mark.parametrize(
    "item_lines, data_lines, message",
    [
        ("1|T (1995)|01-Jan-1995||u|0|0|1\n2|Bad|01-Jan-1995||u|0|1\n", None,
         r"u.item row 2 \(line 2\): expected 8 '\|'-separated fields, got 7"),
        ("1|T (1995)|1995-01-01||u|0|0|1\n", None,
         r"u.item row 1 \(line 1\), field 'release_date': release date '1995-01-01' is not DD-Mon-YYYY"),
        ("1|T (1995)|01-Jan-1995||u|0|0|1\n", "1\t1\t5\t881250949\n\n1\t1\t6\t881250949\n",
         r"u.data row 2 \(line 3\), field 'rating': rating must be an integer 1-5, got '6'"),
        ("1|T (1995)|01-Jan-1995||u|0|0|1\n", "1\t9\t5\t881250949\n",
         r"u.data row 1, field 'item_id': unknown item '9' \(not in u.item\)"),
    ],
)
def test_movielens_malformed_files(tmp_path, item_lines, data_lines, message):
    folder = make_movielens(tmp_path, item_lines, **({"data_lines": data_lines} if data_lines else {}))
    with pytest.raises(DataError, match=message):
        load_movielens(folder)


@needs_amazon
def test_amazon_beauty_counts_match_the_readme():
    dataset = load_amazon_sequences(AMAZON_BEAUTY)
    events = dataset.events
    assert len(events) == 353_962
    assert len(set(events["user_id"])) == 40_226
    assert len(dataset.catalog) == 54_542 and len(set(events["item_id"])) == 54_542
    assert dataset.catalog["item_id"][:3].tolist() == ["1", "2", "3"]  # numeric order
    assert dataset.catalog["item_id"][-1] == "54542"
    assert set(events["event_type"]) == {"purchase"} and dataset.users is None
    assert events["timestamp"].tolist() == list(range(353_962))  # synthesised, file order
    assert events.row(0)["user_id"] == "1" and events.row(len(events) - 1)["item_id"] == "29458"
    assert len(load_amazon_sequences(AMAZON_BEAUTY / "beauty.txt").events) == 353_962  # the file itself works too


def test_amazon_small_file_and_start_timestamp(tmp_path):
    path = tmp_path / "seq.txt"
    path.write_text("u1 10\nu1 2\n\nu2 10\n")
    dataset = load_amazon_sequences(path, start_timestamp=1_600_000_000)
    assert dataset.events["timestamp"].tolist() == [1_600_000_000, 1_600_000_001, 1_600_000_002]
    assert dataset.events["item_id"].tolist() == ["10", "2", "10"]
    assert dataset.catalog["item_id"].tolist() == ["2", "10"]
    assert dataset.catalog["title"].tolist() == ["", ""]


def test_amazon_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("u1 1\n\nu1 2 3\n")
    with pytest.raises(DataError, match=r"bad.txt row 2 \(line 3\): expected 'user_id item_id', got 3 fields"):
        load_amazon_sequences(bad)
    (tmp_path / "other.txt").write_text("u1 1\n")
    with pytest.raises(DataError, match="expected exactly one .txt data file in the folder, found bad.txt, other.txt"):
        load_amazon_sequences(tmp_path)
    with pytest.raises(DataError, match="sequence file or folder not found"):
        load_amazon_sequences(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "e.txt").write_text("\n")
    with pytest.raises(DataError, match="no interactions found"):
        load_amazon_sequences(empty)
