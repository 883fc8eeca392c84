"""One test suite for both user-state stores (in-process and Redis against a real redis-server on a loopback port):
updates visible in the same call, decay math checked by hand, order independence, bounds, and concurrent writers."""

import math
import threading
from pathlib import Path

import pytest

from tfrec.config import ConfigError
from tfrec.online.config import OnlineConfig, UserStateConfig, load_online_config
from tfrec.online.events import Event
from tfrec.online.ingest import make_user_state_store
from tfrec.online.user_state import InMemoryUserStateStore, ItemInfo, UserState, decay_factor

ONLINE_YAML = str(Path(__file__).resolve().parents[2] / "configs" / "online.yaml")
DAY = 86_400.0
T0 = 1_700_000_000.0
ITEMS = {
    "shoe1": ItemInfo("Shoes > Running", "Swift", 100.0),
    "shoe2": ItemInfo("Shoes > Running", "Stride", 120.0),
    "boot": ItemInfo("Shoes > Hiking", "Swift", 200.0),
    "book": ItemInfo("Books > Fiction", "Lantern", 10.0),
    "nobrand": ItemInfo("Books > Fiction", "", None),
}
CONFIG = UserStateConfig(half_life_seconds=DAY, recent_items=3, recent_queries=2, max_affinities=3)


@pytest.fixture(scope="module")
def redis_url():
    from tfrec.online.redis_local import LocalRedisServer, RedisServerUnavailable

    try:
        server = LocalRedisServer()
        url = server.start()
    except RedisServerUnavailable as exc:
        pytest.skip(f"Redis tests need redis-server: {exc}")
    yield url
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def make_store(request):
    """A factory of fresh, empty stores of one backend (Redis stores get a key prefix of their own per test)."""
    created = []

    def make(config=CONFIG, items=ITEMS, prefix=None):
        if request.param == "memory":
            store = InMemoryUserStateStore(items, config)
        else:
            from tfrec.online.redis_state import RedisUserStateStore

            url = request.getfixturevalue("redis_url")
            store = RedisUserStateStore(url, items, config, key_prefix=prefix or f"test:{request.node.name}:")
            store.delete_all()
        created.append(store)
        return store

    make.backend = request.param
    yield make
    for store in created:
        store.close()


def click(item, t, user="u", **kw):
    return Event("click", user, item, t, **kw)


def test_unknown_user_gets_an_empty_state(make_store):
    state = make_store().get("nobody")
    assert state == UserState("nobody") and state.is_empty and state.price_band is None


def test_a_click_is_visible_to_the_next_get(make_store):
    store = make_store()
    store.apply([Event("impression", "u", "book", T0, query="fantasy novels", position=0)])
    state = store.get("u")
    assert state.recent_items == [] and state.category_affinity == {}  # impressions weigh 0
    assert state.recent_queries == ["fantasy novels"] and state.counts == {"impression": 1}
    store.apply([click("shoe1", T0 + 1, query="running shoes")])
    state = store.get("u")
    assert state.recent_items == ["shoe1"] and state.recent_queries == ["running shoes", "fantasy novels"]
    assert state.category_affinity == {"Shoes > Running": 1.0} and state.brand_affinity == {"Swift": 1.0}
    assert state.updated_at == T0 + 1 and state.first_seen == T0


def test_decayed_affinities_match_the_formula(make_store):
    store = make_store()
    # click at T0, add_to_cart (weight 3) one day later, purchase (weight 5) of another category 3 days later
    store.apply([click("shoe1", T0)])
    store.apply([Event("add_to_cart", "u", "shoe2", T0 + DAY)])
    store.apply([Event("purchase", "u", "book", T0 + 3 * DAY)])
    state = store.get("u")
    # a(T) = sum_i w_i 2^(-(T - t_i)/h) at T = T0 + 3 days
    assert state.category_affinity["Shoes > Running"] == pytest.approx(1 * 2 ** -3 + 3 * 2 ** -2)
    assert state.category_affinity["Books > Fiction"] == pytest.approx(5.0)
    assert state.brand_affinity == pytest.approx({"Swift": 0.125, "Stride": 0.75, "Lantern": 5.0})
    later = store.get("u", now=T0 + 5 * DAY)  # read-time decay, two more half-lives
    assert later.category_affinity["Books > Fiction"] == pytest.approx(1.25)
    assert store.get("u").category_affinity["Books > Fiction"] == pytest.approx(5.0)  # stored state unchanged
    assert decay_factor(DAY, DAY) == 0.5 and decay_factor(-5, DAY) == 1.0


def test_price_band_is_the_weighted_log_price_band(make_store):
    store = make_store(UserStateConfig(half_life_seconds=DAY, min_price_spread=0.1))
    store.apply([click("shoe1", T0)])  # one price: the band is the floor spread around it
    assert store.get("u").price_band == pytest.approx((100 * math.exp(-0.1), 100 * math.exp(0.1)))
    store.apply([Event("add_to_cart", "u", "boot", T0), Event("click", "u", "nobrand", T0, price=50.0)])
    # weights 1 (100), 3 (200), 1 (50, the shown price; the item has no list price)
    x = [math.log(100)] + [math.log(200)] * 3 + [math.log(50)]
    mu = sum(x) / 5
    sigma = math.sqrt(sum((v - mu) ** 2 for v in x) / 5)
    assert store.get("u").price_band == pytest.approx((math.exp(mu - sigma), math.exp(mu + sigma)))


def test_arrival_order_does_not_change_the_state(make_store):
    events = [click("shoe1", T0), Event("purchase", "u", "book", T0 + DAY, query="novel"),
              Event("add_to_cart", "u", "boot", T0 + 2 * DAY), click("shoe2", T0 + 0.5 * DAY, query="trail"),
              click("shoe1", T0 + 3 * DAY)]
    in_order, shuffled = make_store(prefix="a:"), make_store(prefix="b:")
    for e in events:
        in_order.apply([e])
    for i in (4, 1, 3, 0, 2):  # late events arrive after newer ones
        shuffled.apply([events[i]])
    a, b = in_order.get("u"), shuffled.get("u")
    assert a.recent_items == b.recent_items == ["shoe1", "boot", "book"]  # bounded to 3, newest first, deduplicated
    assert a.recent_queries == b.recent_queries == ["novel", "trail"]
    assert a.category_affinity == pytest.approx(b.category_affinity)
    assert a.brand_affinity == pytest.approx(b.brand_affinity)
    assert a.price_band == pytest.approx(b.price_band) and a.counts == b.counts == {
        "click": 3, "purchase": 1, "add_to_cart": 1}


def test_lists_and_affinities_stay_bounded(make_store):
    items = {f"i{k}": ItemInfo(f"C{k}", f"B{k}", 10.0) for k in range(10)}
    store = make_store(items=items)
    store.apply([click(f"i{k}", T0 + k) for k in range(10)] + [click("i0", T0 + 20)])
    state = store.get("u")
    assert state.recent_items == ["i0", "i9", "i8"] and len(state.recent_item_times) == 3
    assert set(state.category_affinity) == {"C0", "C9", "C8"}  # the 3 strongest
    assert len(state.brand_affinity) == 3


def test_batches_spanning_users_and_unknown_items(make_store):
    store = make_store()
    store.apply([click("shoe1", T0, user="a"), click("mystery", T0, user="b", price=30.0), click("book", T0, user="a")])
    a, b = store.get("a"), store.get("b")
    assert a.recent_items == ["book", "shoe1"] and set(a.category_affinity) == {"Shoes > Running", "Books > Fiction"}
    assert b.recent_items == ["mystery"] and b.category_affinity == {} and b.price_band is not None
    assert sorted(store.user_ids()) == ["a", "b"]
    assert [s.user_id for s in store.get_many(["b", "zz"])] == ["b", "zz"] and store.get_many(["zz"])[0].is_empty


def test_both_backends_give_identical_states(redis_url):
    from tfrec.online.redis_state import RedisUserStateStore

    events = [Event(t, f"u{k % 3}", item, T0 + 3600 * k, query=f"q{k % 4}", price=None if k % 2 else 15.0 + k)
              for k, (t, item) in enumerate([("click", "shoe1"), ("purchase", "book"), ("impression", "boot"),
                                             ("add_to_cart", "boot"), ("click", "shoe2"), ("click", "nobrand")] * 3)]
    memory = InMemoryUserStateStore(ITEMS, CONFIG)
    redis_store = RedisUserStateStore(redis_url, ITEMS, CONFIG, key_prefix="parity:")
    for i in range(0, len(events), 4):
        memory.apply(events[i:i + 4])
        redis_store.apply(events[i:i + 4])
    for u in ("u0", "u1", "u2"):
        assert redis_store.get(u) == memory.get(u)  # the JSON round trip is exact, floats included
    redis_store.close()


def test_concurrent_writers_lose_no_update(make_store):
    stores = [make_store(prefix="shared:") for _ in range(3)]  # three replicas on the same keys
    per_thread = 60

    def write(store, k):
        for i in range(per_thread):
            store.apply([click("shoe1" if i % 2 else "book", T0 + i, user="hot"),
                         click("boot", T0 + i, user=f"cold{k}")])

    if make_store.backend == "memory":
        stores = [stores[0]] * 3  # the in-process store is shared by the service's threads
    threads = [threading.Thread(target=write, args=(s, k)) for k, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].get("hot").counts == {"click": 3 * per_thread}
    assert all(stores[0].get(f"cold{k}").counts == {"click": per_thread} for k in range(3))


def test_redis_ttl_expires_idle_users(redis_url):
    from tfrec.online.redis_state import RedisUserStateStore

    store = RedisUserStateStore(redis_url, ITEMS, CONFIG, key_prefix="ttl:", ttl_seconds=100)
    store.apply([click("shoe1", T0)])
    assert 0 < store.client.ttl("ttl:u") <= 100
    store.close()


def test_config_validation_and_store_factory(tmp_path, redis_url):
    config = load_online_config(ONLINE_YAML)
    assert config == OnlineConfig()  # the YAML spells out exactly the defaults
    assert isinstance(make_user_state_store(config.user_state, ITEMS), InMemoryUserStateStore)
    redis_config = load_online_config(ONLINE_YAML, {"user_state.backend": "redis",
                                                              "user_state.redis_url": redis_url})
    store = make_user_state_store(redis_config.user_state, ITEMS)
    assert type(store).__name__ == "RedisUserStateStore" and store.get("x").is_empty
    store.close()
    bad = tmp_path / "online.yaml"
    bad.write_text("user_state:\n  event_weights: {click: 1.0, like: 2.0}\n")
    with pytest.raises(ConfigError, match=r"online.yaml: user_state.event_weights: unknown event type 'like'"):
        load_online_config(str(bad))
    bad.write_text("user_state:\n  half_life_seconds: 0\n")
    with pytest.raises(ConfigError, match=r"user_state.half_life_seconds: must be positive"):
        load_online_config(str(bad))
