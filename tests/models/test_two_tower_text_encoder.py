"""The BERT query embedding plugged into the two-tower query tower (`TowerConfig.text_encoder`): it is frozen by
default, the tower trains around it, it survives get_config/from_config and a SavedModel round trip with raw
strings in. Runs on the small fallback BERT so it stays fast; the packaged MiniLM plugs in the same way."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.config import ConfigError, from_dict
from tfrec.data.examples import impression_examples, take
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.features.spec import FeatureSpec
from tfrec.features.stats import fit_features
from tfrec.models.two_tower import (
    SAMPLING_PROBABILITY, TextEncoderConfig, TowerConfig, TwoTowerConfig, TwoTowerModel, build_two_tower_model,
)

QUERY, CANDIDATE = ["user_id", "query"], ["item_id", "title"]
SPEC = FeatureSpec.from_dicts([dict(name="user_id", encoding="vocabulary"), dict(name="query", kind="text"),
                               dict(name="item_id", encoding="vocabulary"), dict(name="title", kind="text")])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TFREC_BERT_PACKAGE", "none")
    shop = generate(SyntheticConfig.preset("tiny", seed=2))
    examples = impression_examples(shop.dataset)
    clicks = take(examples, np.flatnonzero(examples["click"] == 1)[:512])
    fitted = fit_features(SPEC, clicks, str(tmp_path_factory.mktemp("features")))
    config = TwoTowerConfig(
        TowerConfig(QUERY, embedding_dim=16, hidden=[32], output_dim=16,
                    text_encoder=TextEncoderConfig("query", max_length=16)),
        TowerConfig(CANDIDATE, embedding_dim=16, hidden=[32], output_dim=16))
    with pytest.warns(UserWarning):
        model = build_two_tower_model(config, fitted)
    yield clicks, model
    mp.undo()


def _query(clicks, n=8):
    return {n_: tf.constant(clicks[n_][:n].astype(str)) for n_ in QUERY}


def test_the_text_encoder_is_frozen_and_the_tower_trains_around_it(setup):
    clicks, model = setup
    before = model.query_embedding(_query(clicks)).numpy()  # builds the tower
    encoder_vars = {v.ref() for v in model.query_tower.text_encoder.variables}
    assert encoder_vars and not any(v.ref() in encoder_vars for v in model.query_tower.trainable_variables)
    columns = {n: clicks[n] for n in QUERY + CANDIDATE}
    columns[SAMPLING_PROBABILITY] = np.full(len(clicks["user_id"]), 1e-3, np.float32)
    batch = {k: tf.constant(v.astype(str)) if v.dtype == object else tf.constant(v) for k, v in columns.items()}
    model.compile(tf.keras.optimizers.Adam(0.01), run_eagerly=True)
    frozen = model.query_tower.text_encoder.variables[0].numpy().copy()
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(2), epochs=1, verbose=0)
    assert not np.allclose(model.query_embedding(_query(clicks)).numpy(), before)
    np.testing.assert_array_equal(model.query_tower.text_encoder.variables[0].numpy(), frozen)


def test_the_query_text_reaches_the_embedding(setup):
    clicks, model = setup
    same_user = {"user_id": tf.constant(["u1", "u1"]), "query": tf.constant(["red running shoes", "kitchen sink"])}
    a, b = model.query_embedding(same_user).numpy()
    assert not np.allclose(a, b)


def test_config_round_trip_and_errors(setup):
    _, model = setup
    raw = model.get_config()["config"]
    assert raw["query"]["text_encoder"]["feature"] == "query"
    assert TowerConfig(**raw["query"]).text_encoder == TextEncoderConfig("query", max_length=16)
    with pytest.raises(ConfigError, match="text_encoder.feature"):
        from_dict(TowerConfig, {"features": ["user_id"], "text_encoder": {"feature": "query"}})
    assert TwoTowerModel  # rebuilt from config in the export test below


def test_query_tower_export_takes_raw_strings(setup, tmp_path):
    from tfrec.export.retrieval import export_query_tower

    clicks, model = setup
    query = _query(clicks)
    loaded = tf.saved_model.load(export_query_tower(model, str(tmp_path)))
    got = loaded.signatures["serving_default"](**query)["embedding"].numpy()
    np.testing.assert_allclose(got, model.query_embedding(query).numpy(), rtol=1e-5, atol=1e-6)
