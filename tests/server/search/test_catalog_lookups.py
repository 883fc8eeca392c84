"""The catalog's vectorised lookups (ids to rows, category masks) against the plain per-item definitions they
replace, on a random catalog with deep and shallow paths, unknown and non-ASCII ids."""

import numpy as np
import pytest

from tfrec.data.schema import CATALOG_SCHEMA, Table
from tfrec.server.search.catalog import Catalog
from tfrec.server.search.filters import FilterSpec, filter_mask

LEVELS = [["Shoes", "Boots", "Kitchen", "Garden"], ["Running", "Road", "Kettles", "Tools", "Boots"],
          ["Trail", "Road", "Électrique", "Hand"]]


@pytest.fixture(scope="module")
def random_catalog():
    rng = np.random.default_rng(7)
    n = 400
    paths = []
    for _ in range(n):
        depth = int(rng.integers(0, 4))
        paths.append(" > ".join(str(rng.choice(LEVELS[d])) for d in range(depth)))
    ids = [f"ítem-{i}" if i % 7 == 0 else str(1000 + 3 * i) for i in range(n)]
    columns = {"item_id": ids, "title": [f"t{i}" for i in range(n)], "category": paths,
               "brand": [str(rng.choice(["A", "B"])) for _ in range(n)], "price": rng.uniform(1, 99, n).tolist()}
    return Catalog(Table(CATALOG_SCHEMA, columns, {}))


def test_rows_match_a_dict_lookup_for_known_unknown_and_repeated_ids(random_catalog):
    rng = np.random.default_rng(1)
    known_ids = random_catalog.item_ids.tolist()
    asked = [known_ids[i] for i in rng.integers(0, len(known_ids), 300)] + ["nope", "ítem-", "", "1000 ", "999999"]
    asked = [asked[i] for i in rng.permutation(len(asked))]
    rows, known = random_catalog.rows(asked)
    row_of = {item: row for row, item in enumerate(known_ids)}
    expected = [row_of.get(i, -1) for i in asked]
    assert rows.tolist() == expected
    assert known.tolist() == [r >= 0 for r in expected]
    as_bytes = np.array([i.encode("utf-8") for i in asked], dtype="S")  # what a model's string output gives
    bytes_rows, bytes_known = random_catalog.rows(as_bytes)
    assert bytes_rows.tolist() == expected and bytes_known.tolist() == known.tolist()
    empty_rows, empty_known = random_catalog.rows([])
    assert empty_rows.shape == (0,) and empty_known.shape == (0,)


def test_a_repeated_item_id_is_refused_naming_it():
    columns = {"item_id": ["a", "b", "a"], "title": ["x", "y", "z"], "category": ["", "", ""],
               "brand": ["", "", ""], "price": [1.0, 2.0, 3.0]}
    with pytest.raises(ValueError, match="cat.csv: item ids are not unique \\('a' appears more than once\\)"):
        Catalog(Table(CATALOG_SCHEMA, columns, {}), source="cat.csv")


def _reference_mask(catalog, rows, values):
    """The per-item definition: the wanted levels are a prefix of the item's path, or one wanted level is its leaf."""
    wanted = [[level.strip().lower() for level in v.split(">") if level.strip()] for v in values]
    levels = catalog.category_levels()
    return [any(levels[r][: len(w)] == w or (len(w) == 1 and levels[r] and levels[r][-1] == w[0])
                for w in wanted if w) for r in rows.tolist()]


@pytest.mark.parametrize("values", [("shoes",), ("Shoes > Running",), ("shoes>running>trail",), ("road",),
                                    ("BOOTS",), ("électrique",), ("Kitchen > Kettles", "garden"),
                                    ("Shoes > Road",), (" > ",), ("nothing",), ("boots > road > hand > x",)])
def test_category_mask_matches_the_per_item_definition(random_catalog, values):
    rows = np.random.default_rng(3).permutation(len(random_catalog))[:250]
    got = filter_mask(FilterSpec("category", values), random_catalog, rows).tolist()
    assert got == _reference_mask(random_catalog, rows, values)
