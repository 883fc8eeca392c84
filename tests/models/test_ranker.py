"""The DCN ranker as a model: serving scores ignore the display position, explanations are complete, every trunk
structure builds, the model rebuilds from its config, and config errors name the field.

Weights are random (no training): these are properties of the graph, which must hold for any weights. Learning is
tested in tests/training/test_ranker_job.py.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.config import ConfigError, from_dict
from tfrec.data.examples import impression_examples
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.features.stats import fit_features
from tfrec.layers.dcn import DCNBody
from tfrec.models.ranker import DCNRanker, RankerConfig, build_ranker
from tfrec.training.ranker_job import load_ranker_config

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "ranker.yaml")
ROWS = 16


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    config = load_ranker_config(CONFIG)
    data = generate(SyntheticConfig.preset("tiny", seed=5, n_sessions=200))
    columns = impression_examples(data.dataset)
    spec = config.feature_spec
    fitted = fit_features(spec, {n: columns[n] for n in spec.names}, str(tmp_path_factory.mktemp("features")))
    model = build_ranker(config.model, fitted)
    rng = np.random.default_rng(0)
    searches = np.flatnonzero(columns["query"] != "")[: ROWS // 2]
    rows = np.concatenate([searches, np.flatnonzero(columns["query"] == "")[: ROWS - len(searches)]])
    features = next(spec.tensor_batches({n: columns[n][rows] for n in spec.names}, ROWS))
    model(features)
    # Keras's initial trunk, larger embeddings (so features matter) and a random position tower (zero-initialised).
    for weight in model.embeddings.weights + model.position_tower.weights:
        weight.assign(rng.normal(0.0, 0.3, weight.shape).astype(np.float32))
    return config, fitted, model, features


def _with_position(features, value):
    return dict(features, position=tf.fill(tf.shape(features["position"]), tf.constant(value, tf.int64)))


def test_serving_scores_do_not_depend_on_the_position(setup):
    config, _, model, features = setup
    assert "position" not in model.encoder.spec  # the trunk never sees it; the export does not take it
    served = {p: model(_with_position(features, p)) for p in (0, 3, 19, 500)}
    for p, out in served.items():
        assert set(out) == {"click_probability", "purchase_probability"}
        for name, value in out.items():
            np.testing.assert_array_equal(value.numpy(), served[0][name].numpy(), err_msg=f"{name} at position {p}")
    without = {k: v for k, v in features.items() if k != "position"}
    np.testing.assert_array_equal(model(without)["click_probability"].numpy(), served[0]["click_probability"].numpy())
    # ...while the training-time click model does use the position tower.
    top = model.logits(_with_position(features, 0), with_position=True)["click"].numpy()
    low = model.logits(_with_position(features, 9), with_position=True)["click"].numpy()
    assert np.abs(top - low).max() > 1e-3


def test_explanations_are_complete(setup):
    _, _, model, features = setup
    explanation = model.explain(features, head="click", steps=32)
    logits = model.logits(features)["click"].numpy()
    np.testing.assert_allclose(explanation.logit, logits, rtol=1e-5, atol=1e-5)
    assert explanation.contributions.shape == (ROWS, len(explanation.groups))
    assert {"user", "context", "query_match", "item_id", "category", "price"} <= set(explanation.groups)
    assert not {"user_id", "device", "query__title"} & set(explanation.groups)  # folded into their groups
    # Completeness: the groups' contributions add up to logit - baseline logit (ReLU kinks leave an O(1/steps) error).
    delta = explanation.logit - explanation.baseline_logit
    gap = np.abs(explanation.completeness_gap)
    print("completeness gap", gap, "logit - baseline", delta)
    assert np.all(gap <= 0.01 + 0.02 * np.abs(delta)), (gap, delta)
    assert np.abs(delta).max() > 0.1  # not trivially complete
    finer = model.explain(features, head="click", steps=128)
    assert np.abs(finer.completeness_gap).mean() < gap.mean()  # the error shrinks with more steps
    purchase = model.explain(features, head="purchase", steps=8)
    np.testing.assert_allclose(purchase.logit, model.logits(features)["purchase"].numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="rating"):
        model.explain(features, head="rating")
    top = explanation.top(0, k=3)
    assert len(top) == 3 and abs(top[0][1]) >= abs(top[-1][1])


def test_first_order_terms_add_to_the_logit_and_are_credited_exactly(setup):
    config, fitted, _, features = setup
    wide = dataclasses.replace(config.model, bias_features=["user_id", "item_id"], crosses=[["user_id", "category"]],
                               explain_groups={})
    model = build_ranker(wide, fitted, {"click": 0.08, "purchase": 0.01})
    model(features)
    assert model.heads["click"].bias.numpy()[0] == pytest.approx(np.log(0.08 / 0.92))  # starts at the base rate
    terms = model.embed(features).numpy()[:, model.embeddings.output_dim:].reshape(ROWS, 3, 2)
    np.testing.assert_array_equal(terms, 0.0)  # no offset before training
    without = model.logits(features)["click"].numpy()
    rng = np.random.default_rng(1)
    for weight in model.biases.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(np.float32))
    terms = model.embed(features).numpy()[:, model.embeddings.output_dim:].reshape(ROWS, 3, 2)
    np.testing.assert_allclose(model.logits(features)["click"].numpy() - without, terms[:, :, 0].sum(axis=1),
                               rtol=1e-5, atol=1e-5)
    explanation = model.explain(features, head="click", steps=8)
    cross = explanation.groups.index("user_id_x_category")  # a linear term: its own value, no quadrature error
    np.testing.assert_allclose(explanation.contributions[:, cross], terms[:, 2, 0], rtol=1e-5, atol=1e-6)
    assert np.abs(terms[:, 2, 0]).max() > 0.1


def test_interaction_terms_add_their_products_and_are_credited_to_both_sides(setup):
    config, fitted, _, features = setup
    fm = dataclasses.replace(config.model, bias_features=[], crosses=[], explain_groups={}, interaction_dim=4,
                             interactions=[["user_id", "category"], ["user_id", "item_id"]], wide_only=["user_id"])
    model = build_ranker(fm, fitted)
    model(features)
    assert "user_id" not in model.embeddings.tables and "item_id" in model.embeddings.tables  # wide_only: no trunk
    rng = np.random.default_rng(2)
    for weight in model.interactions.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(np.float32))
    x0 = model.embed(features)
    width = model.embeddings.output_dim
    assert x0.shape[1] == width + model.interactions.vector_dim
    products = model.interactions.products(x0[:, width:]).numpy().reshape(ROWS, 2, 2)  # [row, pair, head]
    trunk_only = model.logits(dict(features))["click"].numpy() - products[:, :, 0].sum(axis=1)
    np.testing.assert_allclose(trunk_only, np.reshape(model.heads["click"](model.body(x0[:, :width])), [-1]),
                               rtol=1e-5, atol=1e-5)
    assert np.abs(products).max() > 0.1
    explanation = model.explain(features, head="click", steps=16)
    assert {"user_id", "category", "item_id"} <= set(explanation.groups)
    gap = np.abs(explanation.completeness_gap)
    assert np.all(gap <= 0.01 + 0.02 * np.abs(explanation.logit - explanation.baseline_logit)), gap


def test_purchase_given_click_multiplies_the_click_probability(setup):
    config, fitted, _, features = setup
    esmm = dataclasses.replace(config.model, purchase_given_click=True)
    model = build_ranker(esmm, fitted, {"click": 0.08, "purchase": 0.01})
    model(features)
    own = model.heads["purchase"].bias.numpy()[0]
    assert own == pytest.approx(np.log(0.125 / 0.875))  # starts at P(purchase | click) = 0.01 / 0.08
    assert model.position_tower.outputs == 1  # click only: purchase inherits the click's position effect
    rng = np.random.default_rng(3)
    for weight in model.trainable_weights:
        weight.assign(rng.normal(0.0, 0.3, weight.shape).astype(np.float32))
    raw = model._own_logits(model.embed(features))
    served = model(features)
    expected = tf.sigmoid(raw["click"]) * tf.sigmoid(raw["purchase"])
    np.testing.assert_allclose(served["purchase_probability"].numpy(), expected.numpy(), rtol=1e-4, atol=1e-7)
    assert np.all(served["purchase_probability"].numpy() <= served["click_probability"].numpy())
    logged = model.logits(_with_position(features, 7), with_position=True)
    click_logged = raw["click"] + model.position_logits(_with_position(features, 7))["click"]
    np.testing.assert_allclose(tf.sigmoid(logged["purchase"]).numpy(),
                               (tf.sigmoid(click_logged) * tf.sigmoid(raw["purchase"])).numpy(), rtol=1e-4, atol=1e-7)
    click_only = build_ranker(dataclasses.replace(esmm, tasks={"click": 1.0}), fitted)  # nothing to factorise
    assert set(click_only(features)) == {"click_probability"} and click_only.position_tower.outputs == 1


def test_model_rebuilds_from_config_and_weights(setup):
    _, _, model, features = setup
    clone = DCNRanker.from_config(model.get_config())
    clone(features)
    clone.set_weights(model.get_weights())
    for name, value in model(features).items():
        np.testing.assert_allclose(clone(features)[name].numpy(), value.numpy(), rtol=1e-6)
    assert model.body.get_config()["cross_layers"] == 2
    assert model.position_tower.get_config()["max_position"] == 20


@pytest.mark.parametrize(
    "structure, cross_layers, projection_dim, deep_units, width",
    [("stacked", 2, None, [16, 8], 8), ("parallel", 2, 4, [16], 20 + 16), ("stacked", 3, None, [], 20),
     ("parallel", 0, None, [16], 16)],
    ids=["stacked", "parallel-low-rank", "cross-only", "dnn"],
)
def test_dcn_body_structures(structure, cross_layers, projection_dim, deep_units, width):
    body = DCNBody(cross_layers, projection_dim, deep_units, structure)
    x0 = tf.random.normal([5, 20], seed=1)
    assert body(x0).shape == (5, width)
    assert len(body.crosses) == cross_layers
    if projection_dim:  # low rank: W = U V with U d×r
        kernels = sorted(tuple(w.shape) for w in body.crosses[0].weights if "kernel" in w.name)
        assert kernels == [(4, 20), (20, 4)]
    rebuilt = DCNBody.from_config(body.get_config())
    assert rebuilt(x0).shape == (5, width)


def test_cross_layer_is_the_dcn_v2_formula():
    body = DCNBody(1, None, [], "stacked")
    x0 = tf.random.normal([3, 4], seed=2)
    out = body(x0).numpy()
    kernel, bias = (w.numpy() for w in body.crosses[0].weights)
    np.testing.assert_allclose(out, x0.numpy() * (x0.numpy() @ kernel + bias) + x0.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "override, field",
    [
        ({"cross_layers": -1}, "cross_layers"),
        ({"projection_dim": 0}, "projection_dim"),
        ({"tasks": {"ctr": 1.0}}, "tasks.ctr"),
        ({"tasks": {"click": 0.0}}, "tasks.click"),
        ({"tasks": {}}, "tasks"),
        ({"dropout": 1.5}, "dropout"),
        ({"deep_units": [], "cross_layers": 0}, "cross_layers"),
        ({"structure": "zigzag"}, "structure"),
        ({"features": ["user_id", "position"]}, "features"),
        ({"matches": [["query"]]}, "matches[0]"),
        ({"crosses": [["user_id"]]}, "crosses[0]"),
        ({"bias_l2": -1.0}, "bias_l2"),
        ({"cross_buckets": 0}, "cross_buckets"),
        ({"bias_features": ["item_id", "position"]}, "bias_features"),
        ({"interactions": [["user_id", "user_id"]]}, "interactions[0]"),
        ({"interaction_dim": 0}, "interaction_dim"),
        ({"interaction_l2": -1.0}, "interaction_l2"),
        ({"wide_only": ["user_id"]}, "wide_only"),
        ({"interactions": [["user_id", "position"]]}, "bias_features"),
    ],
)
def test_config_errors_name_the_field(override, field):
    with pytest.raises(ConfigError) as info:
        from_dict(RankerConfig, override, source="ranker.yaml", path="model")
    assert info.value.path == f"model.{field}", str(info.value)
    assert f"model.{field}" in str(info.value)


def test_explain_groups_must_name_inputs(setup):
    config, fitted, _, _ = setup
    bad = RankerConfig(explain_groups={"user": ["user_id", "shoe_size"]}, tasks={"click": 1.0})
    with pytest.raises(ConfigError, match=r"explain_groups.user.*shoe_size"):
        build_ranker(bad, fitted)
