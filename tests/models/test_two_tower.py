"""Two-tower retrieval on the synthetic shop: trained on clicks, it retrieves the clicked item from the whole catalog
far better than popularity, and both towers are rebuilt-from-config safe."""

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.data.examples import impression_examples, take
from tfrec.data.splits import time_split
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.data.tfrecord import memory_dataset
from tfrec.features.spec import FeatureSpec
from tfrec.features.stats import fit_features
from tfrec.models.two_tower import SAMPLING_PROBABILITY, TowerConfig, TwoTowerConfig, build_two_tower_model

QUERY = ["user_id", "segment", "query", "device"]
CANDIDATE = ["item_id", "title", "category", "brand", "price"]
SPEC = FeatureSpec.from_dicts(
    [
        dict(name="user_id", encoding="vocabulary"),
        dict(name="segment"),
        dict(name="query", kind="text", hash_bins=20_000),
        dict(name="device"),
        dict(name="item_id", encoding="vocabulary"),
        dict(name="title", kind="text", hash_bins=20_000),
        dict(name="category", kind="path", hash_bins=5_000),
        dict(name="brand", encoding="vocabulary"),
        dict(name="price", dtype="float", kind="numeric", transform="log1p"),
    ]
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    shop = generate(SyntheticConfig.preset("tiny", seed=5, n_sessions=8000))
    examples = impression_examples(shop.dataset)
    clicks = take(examples, np.flatnonzero(examples["click"] == 1))
    train_idx, _, test_idx = time_split(clicks["timestamp"], 0.0, 0.2, groups=clicks["request_id"])
    train, test = take(clicks, train_idx), take(clicks, test_idx)
    fitted = fit_features(SPEC, train, str(tmp_path_factory.mktemp("features")))
    items, counts = np.unique(train["item_id"], return_counts=True)
    frequency = dict(zip(items, counts / counts.sum()))
    columns = {n: train[n] for n in QUERY + CANDIDATE}
    columns[SAMPLING_PROBABILITY] = np.array([frequency[i] for i in train["item_id"]], dtype=np.float32)
    config = TwoTowerConfig(
        TowerConfig(QUERY, embedding_dim=32, hidden=[64], output_dim=32),
        TowerConfig(CANDIDATE, embedding_dim=32, hidden=[64], output_dim=32),
        temperature=0.1,
    )
    tf.keras.utils.set_random_seed(0)
    model = build_two_tower_model(config, fitted)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    model.fit(memory_dataset(columns, 256, shuffle_buffer=len(train_idx), seed=0), epochs=8, verbose=0)
    return shop, train, test, model


def _catalog_features(catalog):
    return {n: tf.constant(catalog[n].astype(str)) if catalog[n].dtype == object else tf.constant(catalog[n], tf.float32)
            for n in CANDIDATE}


def _recall(scores, item_ids, targets, k):
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean([t in set(item_ids[row]) for row, t in zip(top, targets)]))


def test_two_tower_beats_popularity_on_full_catalog_recall(trained):
    shop, train, test, model = trained
    catalog = shop.dataset.catalog
    item_ids = catalog["item_id"]
    candidates = model.candidate_embedding(_catalog_features(catalog)).numpy()
    queries = model.query_embedding({n: tf.constant(test[n].astype(str)) for n in QUERY}).numpy()
    scores = queries @ candidates.T
    popular = np.array([np.sum(train["item_id"] == i) for i in item_ids], dtype=np.float64)
    for k in (10, 50):
        ours = _recall(scores, item_ids, test["item_id"], k)
        baseline = _recall(np.tile(popular, (len(queries), 1)), item_ids, test["item_id"], k)
        print(f"recall@{k}: two-tower {ours:.3f}, popularity {baseline:.3f}")
        assert ours > max(1.5 * baseline, baseline + 0.2), (k, ours, baseline)
    # Search requests: the best-scored item should come from the clicked item's leaf category (~5 items of 500
    # per leaf in this catalog, so chance is about 1%).
    searches = np.flatnonzero(test["query"] != "")
    top1 = np.argmax(scores[searches], axis=1)
    same_leaf = catalog["category"][top1] == test["category"][searches]
    print(f"searches whose top item is in the clicked item's leaf: {same_leaf.mean():.3f}")
    assert same_leaf.mean() > 0.6, same_leaf.mean()


def test_embeddings_are_normalised_and_towers_rebuild_from_config(trained):
    _, _, test, model = trained
    features = {n: tf.constant(test[n][:4].astype(str)) for n in QUERY}
    q = model.query_embedding(features).numpy()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-5)
    tower = model.query_tower
    clone = type(tower).from_config(tower.get_config())
    clone(features)
    clone.set_weights(tower.get_weights())
    np.testing.assert_allclose(clone(features).numpy(), q, rtol=1e-5, atol=1e-6)


def test_config_validation():
    with pytest.raises(ValueError, match="candidate_id"):
        TwoTowerConfig(TowerConfig(QUERY), TowerConfig(["title"])).validate()
    with pytest.raises(ValueError, match="temperature"):
        TwoTowerConfig(TowerConfig(QUERY), TowerConfig(CANDIDATE), temperature=0).validate()


def test_exported_retrieval_matches_in_memory_top_k_and_reindexes(trained, tmp_path):
    from tfrec.export.retrieval import embed_candidates, export_retrieval

    shop, _, test, model = trained
    catalog = shop.dataset.catalog
    features = {n: catalog[n] for n in CANDIDATE}
    path = export_retrieval(model, features, str(tmp_path), k=20)
    serving = tf.saved_model.load(path).signatures["serving_default"]
    request = {n: tf.constant(test[n][:16].astype(str)) for n in QUERY}
    out = serving(**request)
    scores = model.query_embedding(request).numpy() @ embed_candidates(model, features).T
    want = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    got_ids = out["item_ids"].numpy().astype(str)
    np.testing.assert_allclose(out["scores"].numpy(), np.take_along_axis(scores, want, 1), rtol=1e-5, atol=1e-5)
    assert (got_ids[:, 0] == catalog["item_id"][want[:, 0]]).all()

    # Re-index without retraining: query 0's best item removed, and its content re-listed under a never-seen id
    # (the id embedding is the OOV one, so retrieval rests on title, category, brand and price).
    best = int(want[0, 0])
    keep = np.arange(len(catalog)) != best
    features2 = {n: np.concatenate([v[keep], v[best : best + 1]]) for n, v in features.items()}
    features2["item_id"][-1] = "NEW-ITEM"
    path2 = export_retrieval(model, features2, str(tmp_path), k=20)
    assert path2.endswith("2")
    top = tf.saved_model.load(path2).signatures["serving_default"](**request)["item_ids"].numpy().astype(str)
    assert "NEW-ITEM" in top[0]
    assert catalog["item_id"][best] not in top


def test_tower_exports_reload_with_identical_embeddings(trained, tmp_path):
    from tfrec.export.retrieval import export_candidate_tower, export_query_tower

    shop, _, test, model = trained
    query = {n: tf.constant(test[n][:8].astype(str)) for n in QUERY}
    items = _catalog_features(shop.dataset.catalog.take(np.arange(8)))
    q_path = export_query_tower(model, str(tmp_path))
    c_path = export_candidate_tower(model, str(tmp_path))
    q = tf.saved_model.load(q_path).signatures["serving_default"](**query)["embedding"].numpy()
    c = tf.saved_model.load(c_path).signatures["serving_default"](**items)["embedding"].numpy()
    np.testing.assert_allclose(q, model.query_embedding(query).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, model.candidate_embedding(items).numpy(), rtol=1e-5, atol=1e-6)
