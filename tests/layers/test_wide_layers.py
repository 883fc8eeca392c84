"""HashedLinear computes exactly the documented sum; TokenMatch and PriceLimitFit emit the documented tokens."""

import numpy as np
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.layers.hashed_linear import HashedLinear
from tfrec.layers.price_fit import PriceLimitFit
from tfrec.layers.token_match import WORD_SPACE, TokenMatch, dense_words


def _encoded():
    return {
        "user": {"tokens": tf.ragged.constant([["u1"], ["u2"]])},
        "query": {"tokens": tf.ragged.constant([["red", "shoe"], ["<missing>"]])},
        "price": {"value": tf.constant([1.5, -0.5])},
    }


def test_hashed_linear_is_the_documented_sum():
    buckets = 1 << 12
    layer = HashedLinear(buckets, ["user", "query"], ["price"], crosses=[["user", "query"]])
    layer(_encoded())  # build
    rng = np.random.default_rng(0)
    table = rng.normal(size=buckets).astype(np.float32)
    layer.set_weights([table, np.array([0.25], np.float32), np.array(0.5, np.float32)])
    got = layer(_encoded()).numpy()

    def fp(token):
        return int(tf.strings.to_hash_bucket_fast(token, 1 << 62).numpy())

    def w(token):
        return table[fp(token) % buckets]

    def w_cross(a, b):
        pair = [tf.sparse.from_dense(tf.constant([[fp(a)]], tf.int64)), tf.sparse.from_dense(tf.constant([[fp(b)]], tf.int64))]
        return table[int(tf.sparse.cross_hashed(pair, num_buckets=buckets).values.numpy()[0])]

    row0 = (w("user=u1") + w("query=red") + w("query=shoe") + w_cross("user=u1", "query=red")
            + w_cross("user=u1", "query=shoe") + 0.25 * 1.5 + 0.5)
    row1 = w("user=u2") + w("query=<missing>") + w_cross("user=u2", "query=<missing>") + 0.25 * -0.5 + 0.5
    np.testing.assert_allclose(got, [row0, row1], rtol=1e-5)


def test_hashed_linear_l2_only_in_training_and_config_round_trip():
    layer = HashedLinear(64, ["user"], [], l2=0.1)
    layer(_encoded(), training=True)
    assert len(layer.losses) == 1
    clone = HashedLinear.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_token_match_counts_words_case_insensitively():
    layer = TokenMatch([["query", "brand"], ["query", "title"]])
    out = layer(
        {
            "query": tf.constant(["Northwind red shoes", "", "acme"]),
            "brand": tf.constant(["northwind", "Acme", ""]),
            "title": tf.constant(["Red Running Shoes X1", "Hat", "Acme Hat"]),
        }
    )
    assert out["query~brand"]["tokens"].to_list() == [[b"1/1"], [b"na"], [b"na"]]
    assert out["query~title"]["tokens"].to_list() == [[b"2/3"], [b"na"], [b"1/2"]]
    assert TokenMatch.from_config(layer.get_config()).pairs == layer.pairs


def test_token_match_caps_both_counts_at_three():
    layer = TokenMatch([["query", "title"]])
    out = layer({"query": tf.constant(["a b c d e", "a b c d e", "a b", "  "]),
                 "title": tf.constant(["a b c d e f", "q r s t u", "a x", "a"])})
    assert out["query~title"]["tokens"].to_list() == [[b"3/3"], [b"0/3"], [b"1/2"], [b"na"]]


def test_dense_words_are_the_fingerprints_of_each_rows_first_words_padded_with_missing():
    rows = ["Red  RED-shoe!", "", "a b c d", "Ünï 42", "a b c d"]
    got = dense_words(tf.constant(rows), max_tokens=3).numpy()

    def fingerprint(word):
        return int(tf.strings.to_hash_bucket_fast(word, WORD_SPACE))

    pad = fingerprint("<missing>")
    want = [["red", "red", "shoe"], [], ["a", "b", "c"], ["ünï", "42"], ["a", "b", "c"]]
    assert got.tolist() == [[fingerprint(w) for w in words] + [pad] * (3 - len(words)) for words in want]
    assert dense_words(tf.constant(["", " "]), max_tokens=3).numpy().tolist() == [[pad], [pad]]
    assert dense_words(tf.constant([], tf.string)).shape == (0, 0)


def test_price_limit_fit_tokens():
    layer = PriceLimitFit("query", "price")
    out = layer(
        {
            "query": tf.constant(["shoes under 80", "shoes under 80", "hat over $50", "hat", "x between 10 and 20",
                                  "shoes under 80"]),
            "price": tf.constant([60.0, 95.0, 20.0, 20.0, 15.0, 81.0]),
        }
    )
    tokens = [t[0].decode() for t in out["query~price_limit"]["tokens"].to_list()]
    assert tokens[0] == "within" and tokens[3] == "na" and tokens[4] == "within"
    assert tokens[1] == "above_max:2"  # log(95/80) = 0.17 falls in (0.15, 0.3]
    assert tokens[2] == "below_min:4"  # log(50/20) = 0.92, over the last boundary (0.6)
    assert tokens[5] == "above_max:0"  # log(81/80) = 0.012, under the first (0.05)
