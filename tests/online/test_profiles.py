"""User profiles: weights and activity checked by hand, predicted interests that beat category popularity on the
synthetic shop's later behaviour, the batch job over an event log, and `tfrec profile`."""

import contextlib
import io
import json
import math

import numpy as np
import pytest

from tfrec.cli.main import main
from tfrec.data.dataset_io import write_dataset
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.online.event_log import EventLog
from tfrec.online.events import Event, events_from_table
from tfrec.online.profiles import CategoryCooccurrence, build_all_profiles, build_profile, fold_states, load_profiles
from tfrec.online.user_state import ItemInfo, UserState, item_metadata_from_catalog

T0 = 1_700_000_000.0
ITEMS = {"a1": ItemInfo("A", "X", 10.0), "a2": ItemInfo("A", "Y", 30.0), "b1": ItemInfo("B", "X", 20.0),
         "c1": ItemInfo("C", "Z", 5.0)}


@pytest.fixture(scope="module")
def shop():
    data = generate(SyntheticConfig.preset("tiny", seed=3, n_users=200, n_sessions=4000))
    return data, item_metadata_from_catalog(data.dataset.catalog), list(events_from_table(data.dataset.events))


def test_profile_from_events_by_hand():
    events = [Event("impression", "u", "a1", T0), Event("impression", "u", "b1", T0),
              Event("click", "u", "a1", T0 + 1), Event("add_to_cart", "u", "b1", T0 + 1),
              Event("purchase", "u", "b1", T0 + 1, price=18.0, query="b things")]
    profile = build_profile(events, ITEMS)  # same-second events: no decay between them
    # weights: a1 click 1; b1 cart 3 + purchase 5 = 8 -> shares 1/9, 8/9
    assert profile.top_categories == [("B", round(8 / 9, 6)), ("A", round(1 / 9, 6))]
    assert profile.top_brands == [("X", 1.0)]
    assert profile.activity["events"] == 5 and profile.activity["click_rate"] == 0.5
    assert profile.activity["purchase_per_click"] == 1.0 and profile.activity["last_seen"] == T0 + 1
    x = [math.log(10)] + [math.log(20)] * 3 + [math.log(18)] * 5
    mu = sum(x) / 9
    sigma = math.sqrt(sum((v - mu) ** 2 for v in x) / 9)
    assert profile.price_band == (round(math.exp(mu - sigma), 2), round(math.exp(mu + sigma), 2))
    assert profile.recent_items == ["b1", "a1"] and profile.recent_queries == ["b things"]
    assert profile.predicted_interests == []  # no co-occurrence given
    with pytest.raises(ValueError, match="exactly one user"):
        build_profile(events + [Event("click", "v", "a1", T0)], ITEMS)


def test_cooccurrence_similarity_and_prediction_by_hand():
    states = [UserState("1", category_affinity={"A": 1.0, "B": 1.0}),
              UserState("2", category_affinity={"A": 3.0, "C": 1.0}),
              UserState("3", category_affinity={"B": 2.0})]
    co = CategoryCooccurrence.from_states(states)
    # shares: u1 (A .5, B .5), u2 (A .75, C .25), u3 (B 1)
    a, b, c = np.array([.5, .75, 0]), np.array([.5, 0, 1]), np.array([0, .25, 0])
    cos = lambda x, y: x @ y / (np.linalg.norm(x) * np.linalg.norm(y))  # noqa: E731
    i = co.index
    assert co.similarity[i["A"], i["B"]] == pytest.approx(cos(a, b))
    assert co.similarity[i["A"], i["C"]] == pytest.approx(cos(a, c)) and co.similarity[i["B"], i["C"]] == 0
    # a user who only likes B: B is excluded (known), A scores cos(b, a), C scores 0 and is dropped
    assert co.predict({"B": 4.0}, 5) == [("A", round(cos(a, b), 6))]
    # nothing known: by popularity, the summed shares B 1.5, A 1.25, C 0.25
    assert co.predict({}, 5) == [("B", round(1.5 / 3, 6)), ("A", round(1.25 / 3, 6)), ("C", round(0.25 / 3, 6))]


def test_predicted_interests_beat_popularity_on_later_behaviour(shop):
    _, items, events = shop
    cut = int(len(events) * 0.7)  # events are time-ordered: profile on the first 70 %, check on the rest
    past, future = fold_states(events[:cut], items), fold_states(events[cut:], items)
    users = list(past.user_ids())
    co = CategoryCooccurrence.from_states(past.get(u) for u in users)
    popular = [co.categories[j] for j in np.argsort(-co.popularity, kind="stable")]
    hits = {"predicted": 0, "popularity": 0}
    n = 0
    for u in users:
        state = past.get(u)
        seen = set(state.category_affinity)
        new = set(future.get(u).category_affinity) - seen
        if not new or not seen:
            continue
        n += 1
        predicted = {c for c, _ in build_profile(state, cooccurrence=co, predicted=5).predicted_interests}
        assert not predicted & seen
        hits["predicted"] += bool(predicted & new)
        hits["popularity"] += bool(set([c for c in popular if c not in seen][:5]) & new)
    rates = {k: v / n for k, v in hits.items()}
    assert n >= 80
    assert rates["predicted"] >= rates["popularity"] + 0.08 and rates["predicted"] >= 1.3 * rates["popularity"], rates


def test_batch_job_over_the_event_log(shop, tmp_path):
    _, items, events = shop
    log = EventLog(tmp_path / "events.sqlite", clock=lambda: 2e9)
    for i in range(0, 6000, 500):
        log.append(events[i:i + 500])
    out = tmp_path / "out" / "profiles.jsonl"
    n = build_all_profiles(log, items, out, top_k=3, predicted=4, progress=False)
    profiles = load_profiles(out)
    store = fold_states(events[:6000], items)
    assert n == len(profiles) == len(set(store.user_ids()))
    lines = out.read_text().splitlines()
    assert [json.loads(line)["user_id"] for line in lines] == sorted(profiles)
    co = CategoryCooccurrence.from_states(store.get(u) for u in sorted(store.user_ids()))
    for u in list(profiles)[:20]:
        expected = build_profile(store.get(u), cooccurrence=co, top_k=3, predicted=4)
        assert profiles[u] == expected
        assert len(expected.top_categories) <= 3 and len(expected.predicted_interests) <= 4
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n{\"user\": 1}\n")
    with pytest.raises(ValueError, match=r"bad.jsonl: line 2: not a user profile"):
        load_profiles(bad)


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_tfrec_profile_command(shop, tmp_path):
    data, items, events = shop
    shop_dir = tmp_path / "shop"
    write_dataset(data.dataset, str(shop_dir), format="csv")
    log_path = tmp_path / "events.sqlite"
    EventLog(log_path, clock=lambda: 2e9).append(events[:3000])
    user = events[10].user_id

    code, out, err = run_cli("profile", user, "--events", str(log_path), "--catalog", str(shop_dir), "--quiet")
    assert code == 0, err
    printed = json.loads(out)
    store = fold_states(events[:3000], items)
    co = CategoryCooccurrence.from_states(store.get(u) for u in store.user_ids())
    expected = build_profile(store.get(user), cooccurrence=co)
    assert printed == json.loads(json.dumps(expected.to_dict()))

    code, out, err = run_cli("profile", user, "--events", str(shop_dir), "--quiet", "--set", "profiles.top_k=2")
    assert code == 0, err
    assert len(json.loads(out)["top_categories"]) == 2  # a dataset directory works as is, with --set

    profiles_out = tmp_path / "all.jsonl"
    code, out, err = run_cli("profile", "--all", "--events", str(log_path), "--catalog", str(shop_dir),
                             "--out", str(profiles_out), "--quiet")
    assert code == 0, err
    assert f"profiles to {profiles_out}" in out
    assert load_profiles(profiles_out)[user] == expected

    code, _, err = run_cli("profile", "nobody", "--events", str(log_path), "--catalog", str(shop_dir), "--quiet")
    assert code == 2 and "user 'nobody' has no events" in err
    code, _, err = run_cli("profile", "--events", str(log_path), "--catalog", str(shop_dir))
    assert code == 2 and "give either a USER or --all" in err
    code, _, err = run_cli("profile", user, "--events", str(log_path))
    assert code == 2 and "--catalog is required" in err
