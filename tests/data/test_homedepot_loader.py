"""Home Depot search loader: hand-made folders for the mapping and every error, the real copy (skipped when absent)
for row counts, and the query split."""

from pathlib import Path

import numpy as np
import pytest

from tfrec.data.errors import DataError
from tfrec.data.public.homedepot import load_homedepot, query_split

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "homedepot-search"
needs_real = pytest.mark.skipif(not (REAL / "judgments.csv").is_file(),
                                reason=f"Home Depot search copy not found at {REAL.resolve()}")

PRODUCTS = "product_uid,product_title\n100001,Simpson Strong-Tie 12-Gauge Angle\n100002,\"BEHR Deck, 1-gal.\"\n" \
           "100003,Drill\n"
JUDGMENTS = "id,product_uid,product_title,search_term,relevance\n1,100001,x,angle bracket,3\n" \
            "2,100002,x,deck over,2.33\n3,100001,x,deck over,1\n4,100003,x,angle bracket,2.67\n"


def folder(tmp_path, products=PRODUCTS, judgments=JUDGMENTS):
    (tmp_path / "products.csv").write_text(products, encoding="utf-8")
    (tmp_path / "judgments.csv").write_text(judgments, encoding="utf-8")
    return tmp_path


def test_mapping_and_relevant_sets(tmp_path):
    data = load_homedepot(folder(tmp_path))
    assert list(data.catalog["item_id"]) == ["100001", "100002", "100003"]
    assert data.catalog["title"][1] == "BEHR Deck, 1-gal."
    assert list(data.query) == ["angle bracket", "deck over", "deck over", "angle bracket"]
    np.testing.assert_allclose(data.relevance, [3.0, 2.33, 1.0, 2.67])
    assert data.queries == ["angle bracket", "deck over"]
    assert data.relevant() == {"angle bracket": {"100001", "100003"}, "deck over": set()}
    assert data.relevant(2.0)["deck over"] == {"100002"}
    assert len(data.subset(["deck over"])) == 2


def test_extra_product_columns_become_brand_and_attributes(tmp_path):
    data = load_homedepot(folder(tmp_path, "product_uid,product_title,brand,color\n1,Drill,DeWalt,yellow\n",
                                 "id,product_uid,product_title,search_term,relevance\n1,1,Drill,drill,3\n"))
    assert data.catalog["brand"][0] == "DeWalt" and data.catalog["color"][0] == "yellow"


@pytest.mark.parametrize("products, judgments, match", [
    (PRODUCTS + "100001,Duplicate\n", JUDGMENTS, r"products\.csv row 4 \(line 5\), field 'product_uid': duplicate"),
    (PRODUCTS + ",No id\n", JUDGMENTS, r"products\.csv row 4 \(line 5\), field 'product_uid': product_uid is empty"),
    (PRODUCTS + "100004,a,b\n", JUDGMENTS, r"products\.csv row 4 \(line 5\): expected 2 comma-separated fields"),
    ("product_uid,title\n1,x\n", JUDGMENTS, r"products\.csv, field 'product_title': missing column"),
    (PRODUCTS, JUDGMENTS + "5,100001,x,drill,high\n", r"judgments\.csv row 5 \(line 6\), field 'relevance'.*'high'"),
    (PRODUCTS, JUDGMENTS + "5,100001,x,drill,3.5\n", r"judgments\.csv row 5 \(line 6\), field 'relevance'"),
    (PRODUCTS, JUDGMENTS + "5,999,x,drill,3\n", r"judgments\.csv row 5 \(line 6\), field 'product_uid': unknown"),
    (PRODUCTS, JUDGMENTS + "5,100001,x, ,3\n", r"judgments\.csv row 5 \(line 6\), field 'search_term'"),
    (PRODUCTS, JUDGMENTS.replace("2,100002,x,", "2,100002,\"multi\nline\",") + "5,1,x,y,3\n",
     r"judgments\.csv row 5 \(line 7\), field 'product_uid'"),
])
def test_malformed_rows_name_file_and_row(tmp_path, products, judgments, match):
    with pytest.raises(DataError, match=match):
        load_homedepot(folder(tmp_path, products, judgments))


def test_missing_files_and_folder(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        load_homedepot(tmp_path / "nope")
    (tmp_path / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    with pytest.raises(DataError, match="missing judgments.csv"):
        load_homedepot(tmp_path)


def test_query_split_is_disjoint_deterministic_and_order_free():
    queries = [f"q{i}" for i in range(100)] + ["q1", "q2"]
    train, test = query_split(queries, 0.2, seed=3)
    assert len(test) == 20 and len(train) == 80
    assert not set(train) & set(test) and set(train) | set(test) == set(queries)
    assert query_split(queries[::-1], 0.2, seed=3) == (train, test)
    assert query_split(queries, 0.2, seed=4) != (train, test)
    with pytest.raises(ValueError, match="test_fraction"):
        query_split(queries, 1.0)


@needs_real
def test_real_copy_row_counts():
    data = load_homedepot(REAL)
    assert (len(data.catalog), len(data), len(data.queries)) == (54_667, 37_539, 5_988)
    assert sum(1 for s in data.relevant().values() if s) == 4_958
