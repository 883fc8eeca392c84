"""Synthetic generator: determinism, config/presets, schema validity of catalog, users and events, click behaviour."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tfrec.data.schema import CATALOG_SCHEMA, EVENT_TYPES, EVENTS_SCHEMA, USERS_SCHEMA, Dataset, category_levels
from tfrec.data.synthetic import PRESETS, Effects, SyntheticConfig, SyntheticData, generate, impression_labels

TINY = SyntheticConfig.preset("tiny", seed=7)


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(TINY)


def _events_of(data, kind):
    ev = data.dataset.events
    return ev.take(ev["event_type"] == kind)


# --- config and presets ---


def test_presets_scale_up_and_accept_overrides():
    sizes = [SyntheticConfig.preset(name) for name in ("tiny", "small", "medium", "large")]
    assert PRESETS == ("tiny", "small", "medium", "large")
    for smaller, larger in zip(sizes, sizes[1:]):
        assert larger.n_items > smaller.n_items and larger.n_sessions > smaller.n_sessions
    cfg = SyntheticConfig.preset("small", seed=3, n_users=123)
    assert (cfg.seed, cfg.n_users, cfg.n_items) == (3, 123, 5_000)
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        SyntheticConfig.preset("huge")


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(list_size=40, candidates_per_request=30), "candidates_per_request"),
        (dict(n_items=10), "n_items"),
        (dict(search_fraction=1.5), "search_fraction"),
        (dict(target_ctr=0.0), "target_ctr"),
        (dict(days=0), "days"),
    ],
)
def test_invalid_config_is_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**changes)


def test_config_dict_round_trip_keeps_effects():
    cfg = TINY.replace(effects=dataclasses.replace(Effects(), quality=0.0), search_fraction=0.7)
    again = SyntheticConfig.from_dict(cfg.to_dict())
    assert again == cfg and isinstance(again.effects, Effects) and again.effects.quality == 0.0
    with pytest.raises(ValueError, match="unknown SyntheticConfig fields"):
        SyntheticConfig.from_dict({**cfg.to_dict(), "colour": 1})


def test_too_few_items_for_the_category_tree_is_an_error():
    with pytest.raises(ValueError, match="leaf categories"):
        generate(SyntheticConfig(n_items=60, n_users=20, n_sessions=20))


# --- determinism ---


def test_same_seed_gives_identical_tables_and_truth(data):
    again = generate(TINY)
    for name in ("catalog", "events", "users"):
        assert getattr(again.dataset, name).equals(getattr(data.dataset, name)), name
    assert again.ground_truth.requests.equals(data.ground_truth.requests)
    assert again.ground_truth.model.intercept == data.ground_truth.model.intercept
    np.testing.assert_array_equal(again.ground_truth.model.users.leaf_pref, data.ground_truth.model.users.leaf_pref)


def test_different_seed_gives_different_data(data):
    other = generate(TINY.replace(seed=8))
    assert not other.dataset.catalog.equals(data.dataset.catalog)
    assert not other.dataset.events.equals(data.dataset.events)
    assert not np.array_equal(other.dataset.catalog["price"], data.dataset.catalog["price"])


def test_progress_callback_reports_every_stage_and_prints_nothing(capsys):
    seen = []
    generate(TINY.replace(n_sessions=200), progress=lambda stage, done, total: seen.append((stage, done, total)))
    stages = [s for s, _, _ in seen]
    assert stages[0] == "catalog" and stages[-1] == "outcomes"
    assert {"users", "requests", "logging"} <= set(stages)
    assert ("logging", 200, 200) in seen
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# --- schema validity ---


def test_tables_follow_the_schema(data):
    ds = data.dataset
    assert isinstance(ds, Dataset)
    assert ds.catalog.schema == CATALOG_SCHEMA and ds.events.schema == EVENTS_SCHEMA and ds.users.schema == USERS_SCHEMA
    assert (len(ds.catalog), len(ds.users)) == (TINY.n_items, TINY.n_users)
    assert len(set(ds.catalog["item_id"])) == len(ds.catalog)
    assert len(set(ds.users["user_id"])) == len(ds.users)
    assert sorted(ds.catalog.attributes) == ["color", "gender", "material", "size"]
    assert sorted(ds.users.attributes) == ["age_band", "preferred_device", "segment"]
    assert sorted(ds.events.attributes) == ["device"]


def test_catalog_values_are_plausible(data):
    cat = data.dataset.catalog
    paths = cat["category"]
    assert all(len(category_levels(p)) == 3 for p in paths)
    assert len({category_levels(p)[0] for p in paths}) == 8
    assert len(set(paths)) > 80
    price = cat["price"]
    assert np.all(price > 0) and np.allclose(price, np.round(price, 2))
    assert np.all(cat["brand"] != "") and np.all(cat["title"] != "")
    for i in range(0, len(cat), 25):
        row = cat.row(i)
        if not row["category"].startswith("Books"):
            assert row["title"].startswith(row["brand"])
        if row["color"]:
            assert row["color"].capitalize() in row["title"]
    # brands keep a price tier: a luxury brand's median price relative to its leaf beats a budget brand's
    leaf_median = {p: np.median(price[paths == p]) for p in set(paths)}
    rel = np.log(price / np.array([leaf_median[p] for p in paths]))
    assert np.median(rel[cat["brand"] == "Velora"]) > np.median(rel[cat["brand"] == "Basicly"]) + 0.5


def test_shoes_have_sizes_colours_and_genders_books_do_not(data):
    cat = data.dataset.catalog
    shoes = np.array([p.startswith("Clothing > Shoes") for p in cat["category"]])
    books = np.array([p.startswith("Books") for p in cat["category"]])
    assert shoes.any() and books.any()
    assert np.all(cat["size"][shoes] != "") and np.all(cat["color"][shoes] != "") and np.all(cat["gender"][shoes] != "")
    assert np.all(cat["color"][books] == "") and np.all(cat["gender"][books] == "")


def test_events_reference_known_ids_and_valid_values(data):
    ds = data.dataset
    ev = ds.events
    assert set(ev["item_id"]) <= set(ds.catalog["item_id"])
    assert set(ev["user_id"]) <= set(ds.users["user_id"])
    assert set(ev["event_type"]) == {"impression", "click", "add_to_cart", "purchase"} and set(EVENT_TYPES) >= set(
        ev["event_type"]
    )
    assert np.all(ev["request_id"] != "")
    assert np.all((ev["position"] >= 0) & (ev["position"] < TINY.list_size))
    assert np.all(np.isnan(ev["rating"]))
    assert set(ev["device"]) == {"mobile", "desktop", "tablet"}
    price_of = dict(zip(ds.catalog["item_id"], ds.catalog["price"]))
    assert np.array_equal(ev["price"], np.array([price_of[i] for i in ev["item_id"]]))


def test_timestamps_are_sorted_and_inside_the_window(data):
    ts = data.dataset.events["timestamp"]
    assert np.all(np.diff(ts) >= 0)
    assert ts.min() >= TINY.start and ts.max() < TINY.end
    hours = (ts % 86_400) // 3_600
    assert np.mean((hours >= 18) & (hours <= 22)) > 2 * np.mean((hours >= 1) & (hours <= 5))


def test_each_request_shows_list_size_distinct_items_at_positions_0_to_k(data):
    imp = _events_of(data, "impression")
    assert len(imp) == TINY.n_sessions * TINY.list_size
    order = np.lexsort((imp["position"], imp["request_id"]))
    positions = imp["position"][order].reshape(TINY.n_sessions, TINY.list_size)
    assert np.all(positions == np.arange(TINY.list_size))
    items = imp["item_id"][order].reshape(TINY.n_sessions, TINY.list_size)
    assert all(len(set(row)) == TINY.list_size for row in items)
    for col in ("user_id", "timestamp", "query", "device"):
        values = imp[col][order].reshape(TINY.n_sessions, TINY.list_size)
        assert np.all(values == values[:, :1]), col


def test_follow_up_events_continue_an_earlier_step_of_the_same_impression(data):
    columns = ("timestamp", "position", "user_id", "query", "device")
    for kind_before, kind in (("impression", "click"), ("click", "add_to_cart"), ("add_to_cart", "purchase")):
        before, after = _events_of(data, kind_before), _events_of(data, kind)
        assert 0 < len(after) < len(before)
        earlier = {(r, i): k for k, (r, i) in enumerate(zip(before["request_id"], before["item_id"]))}
        assert len(earlier) == len(before)  # each step happens at most once per impression
        for k, (r, i) in enumerate(zip(after["request_id"], after["item_id"])):
            j = earlier[(r, i)]
            assert after["timestamp"][k] > before["timestamp"][j]
            assert all(after[c][k] == before[c][j] for c in columns[1:])


# --- behaviour ---


def test_click_rate_and_funnel_are_in_realistic_ranges(data):
    n = {k: len(_events_of(data, k)) for k in ("impression", "click", "add_to_cart", "purchase")}
    ctr = n["click"] / n["impression"]
    assert 0.05 <= ctr <= 0.15
    assert abs(ctr - TINY.target_ctr) < 0.015
    assert 0.1 < n["add_to_cart"] / n["click"] < 0.6
    assert 0.2 < n["purchase"] / n["add_to_cart"] < 0.8


def test_empirical_ctr_falls_with_position(data):
    lab = impression_labels(data.dataset.events)
    ctr = np.array([lab.clicked[lab.positions == p].mean() for p in range(TINY.list_size)])
    assert ctr[0] > ctr[1] > ctr[3] > ctr[9]
    assert ctr[:3].mean() > 2 * ctr[6:].mean()


def _ctr_by_position(cfg):
    lab = impression_labels(generate(cfg).dataset.events)
    return np.array([lab.clicked[lab.positions == p].mean() for p in range(cfg.list_size)])


def test_position_bias_is_causal_not_only_ranking():
    """With a random logging ranker, CTR still falls with position only when the position bias is switched on."""
    random_ranking = dataclasses.replace(Effects(), logging_noise=1e6)
    base = TINY.replace(n_sessions=4_000, seed=1)
    biased = _ctr_by_position(base.replace(effects=random_ranking))
    flat = _ctr_by_position(base.replace(effects=dataclasses.replace(random_ranking, position_bias=0.0)))
    assert biased[:2].mean() > 1.7 * biased[8:].mean()
    se = np.sqrt(0.08 * 0.92 / (2 * 4_000))
    assert abs(flat[:2].mean() - flat[8:].mean()) < 4 * se * np.sqrt(2)


def test_users_have_segments_heavy_users_and_segment_driven_tastes(data):
    ds = data.dataset
    segment = dict(zip(ds.users["user_id"], ds.users["segment"]))
    assert len(set(segment.values())) == 8
    imp = _events_of(data, "impression")
    _, per_user = np.unique(imp["user_id"], return_counts=True)
    per_user = np.sort(per_user)[::-1]
    assert per_user[: len(per_user) // 10].sum() > 0.3 * per_user.sum()  # top 10% of users: > 30% of traffic

    clicks = _events_of(data, "click")
    dept_of = dict(zip(ds.catalog["item_id"], [category_levels(c)[0] for c in ds.catalog["category"]]))
    dept = np.array([dept_of[i] for i in clicks["item_id"]])
    seg = np.array([segment[u] for u in clicks["user_id"]])
    for name, department in (("techie", "Electronics"), ("athlete", "Sports & Outdoors"),
                             ("pet_owner", "Pet Supplies"), ("fashionista", "Clothing"), ("homebody", "Home")):
        inside = np.mean(dept[seg == name] == department)
        outside = np.mean(dept[seg != name] == department)
        assert inside > 1.5 * outside, (name, inside, outside)
