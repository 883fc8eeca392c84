"""WANDS query loader: a hand-made file for the mapping and every error, the real copy (skipped when absent) for the
counts, and the stratified split."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tfrec.data.errors import DataError
from tfrec.data.public.wands import WandsQueries, load_wands, wands_split
from tfrec.data.query_labels import LABELLED_QUERIES_SCHEMA

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wands-queries"
needs_real = pytest.mark.skipif(not (REAL / "query.csv").is_file(),
                                reason=f"WANDS query copy not found at {REAL.resolve()}")

HEADER = "query_id\tquery\tquery_class\n"
ROWS = "0\tsalon chair\tMassage Chairs\n1\tsmart coffee table\tCoffee & Cocktail Tables\n" \
       "2\t\"writing desk 48\"\"\"\tDesks\n5\tdull bed\t\n3\tkids wall d\u00e9cor\tKids Wall D\u00e9cor\n"


def write(tmp_path, text=HEADER + ROWS, name="query.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_mapping_quotes_and_unlabelled_rows(tmp_path):
    data = load_wands(write(tmp_path).parent)  # the folder or the file
    assert data.query_id.tolist() == [0, 1, 2, 5, 3] and data.query_id.dtype == np.int64
    assert data.query[2] == 'writing desk 48"' and data.query[4] == "kids wall d\u00e9cor"
    assert data.query_class.tolist() == ["Massage Chairs", "Coffee & Cocktail Tables", "Desks", "",
                                         "Kids Wall D\u00e9cor"]
    assert data.classes == ["Coffee & Cocktail Tables", "Desks", "Kids Wall D\u00e9cor", "Massage Chairs"]
    assert len(data.labelled()) == 4 and "dull bed" not in data.labelled().query.tolist()
    table = data.to_table()
    assert table.schema == LABELLED_QUERIES_SCHEMA and table["category"][3] == "" and table["query_id"][4] == "3"
    assert repr(data) == "WandsQueries(queries=5, classes=4)"


@pytest.mark.parametrize("text, match", [
    (HEADER + ROWS + "6\tbed\n", r"query\.csv row 6 \(line 7\): expected 3 tab-separated fields, got 2"),
    (HEADER + ROWS + "x7\tbed\tBeds\n", r"query\.csv row 6 \(line 7\), field 'query_id': .*'x7'"),
    (HEADER + ROWS + "1\tbed\tBeds\n", r"query\.csv row 6 \(line 7\), field 'query_id': duplicate query_id 1, "
                                       r"already used by row 2"),
    (HEADER + ROWS + "8\t \tBeds\n", r"query\.csv row 6 \(line 7\), field 'query': query is empty"),
    (HEADER + "0\t\"two\nlines\"\tBeds\n1\tbed\tBeds\tx\n", r"query\.csv row 2 \(line 4\): expected 3"),
    ("query_id\tquery\n0\tbed\n", r"query\.csv, field 'query_class': missing column"),
    (HEADER, r"query\.csv: no queries"),
])
def test_malformed_lines_name_file_and_row(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        load_wands(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="WANDS query file not found"):
        load_wands(tmp_path)


def synthetic_queries(sizes, n_unlabelled=3, seed=0):
    classes = [f"c{i}" for i, n in enumerate(sizes) for _ in range(n)] + [""] * n_unlabelled
    order = np.random.default_rng(seed).permutation(len(classes))
    classes = np.array(classes, dtype=object)[order]
    ids = np.arange(len(classes), dtype=np.int64)[::-1].copy()
    return WandsQueries(ids, np.array([f"q{i}" for i in ids], dtype=object), classes)


def test_split_is_stratified_reproducible_and_keeps_singletons_in_train():
    sizes = [20, 10, 7, 4, 2, 2, 2, 1, 1, 1]
    data = synthetic_queries(sizes)
    train, test = wands_split(data, seed=0, test_fraction=0.25)
    assert len(test) == round(0.25 * sum(sizes)) == 12 and len(train) == sum(sizes) - 12
    assert not set(train.query_id.tolist()) & set(test.query_id.tolist())
    assert set(train.query_id.tolist()) | set(test.query_id.tolist()) == set(data.labelled().query_id.tolist())
    assert "" not in set(train.query_class) | set(test.query_class)
    n_test, n_train = Counter(test.query_class.tolist()), Counter(train.query_class.tolist())
    for c, n in zip(data.classes, [20, 10, 7, 4, 2, 2, 2, 1, 1, 1]):
        assert n_train[c] >= 1  # every class keeps a training query; singletons never reach test
        assert n_test[c] == 0 if n == 1 else abs(n_test[c] - 12 * n / 47) < 1, (c, n_test[c])
    assert list(train.query_id) == sorted(train.query_id) and list(test.query_id) == sorted(test.query_id)
    again = wands_split(data.take(np.random.default_rng(1).permutation(len(data))), seed=0, test_fraction=0.25)
    assert again[1].query_id.tolist() == test.query_id.tolist()  # same seed, any row order: same split
    other = wands_split(data, seed=1, test_fraction=0.25)[1]
    assert other.query_id.tolist() != test.query_id.tolist()
    with pytest.raises(ValueError, match="test_fraction"):
        wands_split(data, test_fraction=0.0)


def test_split_caps_the_test_side_at_what_stratification_allows():
    data = synthetic_queries([2, 2, 1, 1], n_unlabelled=0)
    train, test = wands_split(data, seed=0, test_fraction=0.9)
    assert len(test) == 2 and sorted(Counter(test.query_class.tolist()).values()) == [1, 1]


@needs_real
def test_real_copy_counts_and_split():
    data = load_wands(REAL)
    assert len(data) == 480 and len(set(data.query_class.tolist())) == 189  # 189 distinct values, '' among them
    assert len(data.classes) == 188 and int((data.query_class == "").sum()) == 6
    assert len(set(data.query_id.tolist())) == 480 and data.query_id.max() == 487
    assert 'writing desk 48"' in data.query.tolist()
    train, test = wands_split(data, seed=0, test_fraction=0.25)
    assert (len(train), len(test)) == (356, 118)
    singletons = {c for c, n in Counter(data.labelled().query_class.tolist()).items() if n == 1}
    assert len(singletons) == 98 and not singletons & set(test.query_class.tolist())
