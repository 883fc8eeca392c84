"""Feature spec: validation, parse spec, signature; tokenisation; fitted statistics; the encoder layer."""

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.config import ConfigError, from_dict
from tfrec.features.encoder import FeatureEncoder
from tfrec.features.spec import FeatureConfig, FeatureSpec
from tfrec.features.stats import FittedFeatures, fit_features
from tfrec.features.tokens import MISSING, OOV, bucket_tokens, path_tokens, text_tokens, timestamp_tokens


def _spec():
    return FeatureSpec.from_dicts(
        [
            dict(name="user_id", encoding="vocabulary", min_count=2),
            dict(name="category", kind="path"),
            dict(name="query", kind="text", max_tokens=3),
            dict(name="price", dtype="float", kind="numeric", transform="log1p", buckets=4),
            dict(name="position", dtype="int", kind="numeric", boundaries=[0.5, 2.5], standardize=False),
            dict(name="timestamp", dtype="int", kind="timestamp"),
        ]
    )


def _columns():
    return {
        "user_id": np.array(["a", "a", "b", "b", "c"], dtype=object),
        "category": np.array(["X > Y", "X > Z", "X", "", "W > V > U"], dtype=object),
        "query": np.array(["Red shoes", "", "red", "blue hat large extra", "x"], dtype=object),
        "price": np.array([10.0, 20.0, np.nan, 40.0, 80.0]),
        "position": np.array([0, 1, 2, 3, 4]),
        "timestamp": np.array([0, 3600, 86400, 90000, 100000]),
    }


def test_spec_rejects_bad_features_with_the_key_named():
    with pytest.raises(ConfigError, match=r"features\[0\].*numeric feature needs dtype int or float"):
        from_dict(FeatureSpec, {"features": [{"name": "price", "kind": "numeric"}]}, source="ctr.yaml")
    with pytest.raises(ValueError, match="declared more than once"):
        FeatureSpec.from_dicts([dict(name="a"), dict(name="a")])
    with pytest.raises(ConfigError, match="default 'abc' is not a int"):
        from_dict(FeatureSpec, {"features": [{"name": "n", "dtype": "int", "kind": "numeric", "default": "abc"}]})
    with pytest.raises(KeyError, match="no feature 'nope'"):
        _spec()["nope"]


def test_parse_spec_and_signature_follow_dtypes_and_defaults():
    spec = _spec()
    parse = spec.parse_spec()
    assert parse["price"].dtype == tf.float32 and parse["price"].default_value == 0.0
    assert parse["position"].dtype == tf.int64 and parse["query"].default_value == ""
    sig = spec.signature()
    assert sig["user_id"].shape.as_list() == [None] and sig["timestamp"].dtype == tf.int64


def test_empty_rows_get_the_missing_token_wherever_they_are():
    m = MISSING.encode()
    texts = ["", "red shoe", "  ", "a b c", "", "x"]
    assert text_tokens(tf.constant(texts)).to_list() == [[m], [b"red", b"shoe"], [m], [b"a", b"b", b"c"], [m], [b"x"]]
    assert text_tokens(tf.constant(["", " "])).to_list() == [[m], [m]]
    assert text_tokens(tf.constant([], tf.string)).to_list() == []
    in_graph = tf.function(text_tokens, input_signature=[tf.TensorSpec([None], tf.string)])
    assert in_graph(tf.constant(texts)).to_list() == text_tokens(tf.constant(texts)).to_list()


def test_tokenisers():
    assert path_tokens(tf.constant(["A > B > C", " "])).to_list() == [[b"A", b"A>B", b"A>B>C"], [MISSING.encode()]]
    assert text_tokens(tf.constant(["Crème, BRÛLÉE! 2x"]), 2).to_list() == [["crème".encode(), "brûlée".encode()]]
    # 2026-11-28 19:55:40 UTC is a Saturday (Monday = d0).
    assert timestamp_tokens(tf.constant([1795895740], tf.int64)).to_list() == [[b"h19", b"d5"]]


def test_fit_writes_vocabulary_and_statistics_and_reloads(tmp_path):
    fitted = fit_features(_spec(), _columns(), str(tmp_path))
    # min_count 2 keeps a and b; c (seen once) becomes OOV; MISSING always first.
    assert fitted.vocabulary("user_id") == [MISSING, "a", "b"]
    price = fitted.stats["price"]
    logs = np.log1p([10.0, 20.0, 40.0, 80.0])
    assert price.mean == pytest.approx(logs.mean(), rel=1e-6) and price.std == pytest.approx(logs.std(), rel=1e-5)
    assert len(price.boundaries) == 3
    assert fitted.stats["position"].boundaries == [0.5, 2.5]
    again = FittedFeatures.load(str(tmp_path))
    assert again.stats == fitted.stats and again.spec.names == fitted.spec.names


def test_load_without_fit_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="features.json not found"):
        FittedFeatures.load(str(tmp_path))


def test_encoder_outputs_and_config_round_trip(tmp_path):
    fitted = fit_features(_spec(), _columns(), str(tmp_path))
    encoder = FeatureEncoder.from_fitted(fitted)
    inputs = {k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in _columns().items()}
    inputs["price"] = tf.cast(inputs["price"], tf.float32)
    out = encoder(inputs)
    assert out["user_id"]["tokens"].to_list() == [[b"a"], [b"a"], [b"b"], [b"b"], [OOV.encode()]]
    assert out["user_id"]["ids"].to_list() == [[2], [2], [3], [3], [0]]
    assert out["query"]["tokens"].to_list()[3] == [b"blue", b"hat", b"large"]  # max_tokens 3
    value = out["price"]["value"].numpy()
    assert value[2] == 0.0  # NaN → the training mean → 0 after standardising
    assert out["price"]["tokens"].to_list()[2] == [MISSING.encode()]
    assert out["position"]["value"].numpy().tolist() == [0, 1, 2, 3, 4]  # standardize: false
    assert out["position"]["tokens"].to_list() == [[b"b0"], [b"b1"], [b"b1"], [b"b2"], [b"b2"]]
    assert out["position"]["ids"].to_list() == [[0], [1], [1], [2], [2]]  # bucket ids for embeddings
    price_ids = [r[0] for r in out["price"]["ids"].to_list()]
    assert price_ids[2] == encoder.id_space("price") - 1 == len(fitted.stats["price"].boundaries) + 1  # missing
    assert all(0 <= i < encoder.id_space("price") for i in price_ids)
    assert max(max(r) for r in out["category"]["ids"].to_list()) < 100_000
    clone = FeatureEncoder.from_config(encoder.get_config())
    again = clone(inputs)
    assert again["query"]["ids"].to_list() == out["query"]["ids"].to_list()
    assert again["user_id"]["ids"].to_list() == out["user_id"]["ids"].to_list()


def test_encoder_names_missing_inputs(tmp_path):
    encoder = FeatureEncoder.from_fitted(fit_features(_spec(), _columns(), str(tmp_path)))
    with pytest.raises(KeyError, match=r"missing input features \['timestamp'\]"):
        encoder({k: tf.constant(["x"]) for k in ["user_id", "category", "query", "price", "position"]})


def test_char_ngrams_and_sequence_tokens():
    from tfrec.features.tokens import sequence_tokens

    tokens = text_tokens(tf.constant(["Drill 18V", "", "a"]), max_tokens=16, char_ngrams=3).to_list()
    assert tokens[0] == [b"drill", b"#dr", b"dri", b"ril", b"ill", b"ll#", b"18v", b"#18", b"18v", b"8v#"]
    assert tokens[1] == [b"<missing>"] and tokens[2] == [b"a", b"#a#"]
    assert sequence_tokens(tf.constant(["i1 i2 i3 i4", "", " i9 "]), 3).to_list() == [
        [b"i2", b"i3", b"i4"], [b"<missing>"], [b"i9"]]
    with pytest.raises(ValueError, match="char_ngrams"):
        FeatureConfig("brand", char_ngrams=3).validate()
    with pytest.raises(ValueError, match="sequence feature needs dtype string"):
        FeatureConfig("recent", dtype="int", kind="sequence").validate()


def test_timestamp_and_bucket_tokens_match_their_definitions():
    import datetime

    seconds = [0, 1, 3599, 3600, 86399, 86400, 1795895740, -1, -86401, 2_000_000_000]
    want = [[f"h{d.hour}".encode(), f"d{d.weekday()}".encode()]
            for d in (datetime.datetime.fromtimestamp(s, datetime.timezone.utc) for s in seconds)]
    assert timestamp_tokens(tf.constant(seconds, tf.int64)).to_list() == want
    boundaries = [0.0, 1.5, 10.0]
    values = [-3.0, 0.0, 1.0, 1.5, 9.99, 10.0, 1e9, float("nan")]
    want = [[b"b0"], [b"b1"], [b"b1"], [b"b2"], [b"b2"], [b"b3"], [b"b3"], [MISSING.encode()]]
    assert bucket_tokens(tf.constant(values), boundaries).to_list() == want
