"""BertEncoder: MiniLM sentence embeddings from raw strings, padding invariance, SavedModel export, freezing."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.text import bert_checkpoint as bc
from tfrec.text.bert_encoder import BertEncoder, masked_mean_embedding

HAS_PACKAGE = bc.packaged_model_dir() is not None  # installed and not disabled by TFREC_BERT_PACKAGE=none
needs_minilm = pytest.mark.skipif(
    not HAS_PACKAGE, reason=f"all-MiniLM-L6-v2 package {bc.PACKAGE_NAME} not installed ({bc.INSTALL_HINT})")

LONG = ("cordless drill driver kit with two 18v batteries, charger and bag; " * 20)[:1000]
QUERIES = ["red running shoes for men", "", "   ", "DW087K 18v", "café crème brûlée", "中文 🍕", LONG]


@pytest.fixture(scope="module")
def minilm():
    if not HAS_PACKAGE:
        pytest.skip(f"all-MiniLM-L6-v2 package not installed ({bc.INSTALL_HINT})")
    return BertEncoder()


@pytest.fixture(scope="module")
def tiny():
    return BertEncoder(bc.fallback_checkpoint(), max_length=16)


def _embed(encoder, texts, **kwargs):
    return encoder(tf.constant(texts), **kwargs)["embedding"].numpy()


@needs_minilm
@pytest.mark.parametrize("anchor,positive,negative", [
    ("red running shoes for men", "Men's Red Running Sneakers", "Stainless Steel Kitchen Sink"),
    ("cordless drill 18v", "DeWalt 18V Cordless Drill Driver Kit", "Women's Floral Summer Dress"),
    ("kitchen sink", "Stainless Steel Undermount Kitchen Sink", "Men's Red Running Sneakers"),
    ("wireless earbuds", "Bluetooth In-Ear Headphones", "Garden Hose 50 ft"),
    ("queen size bed sheets", "Cotton Sheet Set, Queen", "Laptop Backpack 15 inch"),
])
def test_minilm_similarities(minilm, anchor, positive, negative):
    a, p, n = _embed(minilm, [anchor, positive, negative])
    assert float(a @ p) > float(a @ n) + 0.2, (float(a @ p), float(a @ n))


@needs_minilm
def test_minilm_weights_are_the_checkpoints(minilm):
    from safetensors import safe_open

    ckpt = bc.resolve_checkpoint(None)
    by_name = {w.name.split("/", 2)[2]: w for w in minilm.bert.weights}  # drop "tf_bert_model/bert/"
    with safe_open(str(ckpt.weights_path), framework="np") as f:
        np.testing.assert_array_equal(by_name["embeddings/word_embeddings/weight:0"].numpy(),
                                      f.get_tensor("embeddings.word_embeddings.weight"))
        np.testing.assert_array_equal(by_name["encoder/layer_._5/output/dense/kernel:0"].numpy(),
                                      f.get_tensor("encoder.layer.5.output.dense.weight").T)


@needs_minilm
def test_batch_equals_one_by_one(minilm):
    batch = minilm(tf.constant(QUERIES))
    emb = batch["embedding"].numpy()
    assert batch["sequence_output"].shape == (len(QUERIES), 32, 384)  # LONG fills max_length=32
    for i, text in enumerate(QUERIES):
        np.testing.assert_allclose(_embed(minilm, [text])[0], emb[i], atol=1e-5, err_msg=repr(text[:20]))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(batch["sequence_output"].numpy()).all()


def test_masked_mean_ignores_padding():
    states = tf.constant([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    got = masked_mean_embedding(states, tf.constant([[1, 1, 0]])).numpy()
    np.testing.assert_allclose(got, [[2 / np.sqrt(8), 2 / np.sqrt(8)]], rtol=1e-6)
    assert np.isfinite(masked_mean_embedding(states, tf.constant([[0, 0, 0]])).numpy()).all()


def test_empty_and_long_strings_and_batches(tiny):
    out = tiny(tf.constant(["", LONG, "a"]))
    assert out["sequence_output"].shape == (3, 16, 64) and out["embedding"].shape == (3, 64)
    np.testing.assert_array_equal(out["attention_mask"].numpy().sum(axis=1), [2, 16, 3])
    assert np.isfinite(out["sequence_output"].numpy()).all() and np.isfinite(out["embedding"].numpy()).all()
    np.testing.assert_allclose(np.linalg.norm(out["embedding"].numpy(), axis=1), 1.0, atol=1e-5)
    assert tiny(tf.constant([], tf.string))["embedding"].shape == (0, 64)  # an empty batch
    ends = out["token_ends"].numpy()[1]
    assert ends[-2] > 0 and ends[-1] == -1 and ends.max() <= len(LONG)


def _export(encoder, path):
    """Exports like tfrec.export (a tf.Module, a tf.string signature) and returns the reloaded signature."""
    module = tf.Module()
    module.encoder = encoder

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def embed(texts):
        out = encoder(texts)
        return {k: out[k] for k in ("embedding", "sequence_output", "token_starts", "token_ends")}

    module.embed = embed
    tf.saved_model.save(module, str(path), signatures={"serving_default": embed})
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def test_saved_model_round_trip_tiny(tiny, tmp_path):
    serve = _export(tiny, tmp_path / "tiny")
    texts = tf.constant(["red shoes", "", LONG, "café DW087K"])
    want, got = tiny(texts), serve(texts=texts)
    for key in got:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-5, err_msg=key)
    empty = serve(texts=tf.constant([], tf.string))
    assert empty["embedding"].shape == (0, 64) and empty["sequence_output"].shape == (0, 2, 64)


@needs_minilm
def test_saved_model_round_trip_minilm(minilm, tmp_path):
    serve = _export(minilm, tmp_path / "minilm")
    texts = tf.constant(["red running shoes for men", "Men's Red Running Sneakers", ""])
    np.testing.assert_allclose(serve(texts=texts)["embedding"].numpy(), _embed(minilm, texts), atol=1e-5)


@pytest.mark.parametrize("top", [0, 1, 2, -1])
def test_trainable_layers(top):
    encoder = BertEncoder(bc.fallback_checkpoint(), max_length=8, trainable_layers=top)
    names = [w.name for w in encoder.trainable_weights]
    assert not any("pooler" in n for n in names)
    if top == -1:
        assert any("embeddings" in n for n in names)
        assert len(names) == len(encoder.weights) - 2  # all but the pooler's kernel and bias
        return
    assert not any("embeddings" in n for n in names)
    trainable_blocks = {n.split("/")[3] for n in names}
    assert trainable_blocks == {f"layer_._{i}" for i in range(2 - top, 2)}
    if top:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(encoder(tf.constant(["red shoes", "sink"]), training=True)["embedding"][:, 0])
        grads = tape.gradient(loss, encoder.trainable_weights)
        assert all(g is not None for g in grads)


def test_dropout_and_training_flag():
    texts = tf.constant(["red running shoes", "kitchen sink"])
    noisy = BertEncoder(bc.fallback_checkpoint(), max_length=8, dropout=0.5)
    assert noisy.bert.config.hidden_dropout_prob == 0.5
    assert not np.allclose(_embed(noisy, texts, training=True), _embed(noisy, texts), atol=1e-4)
    np.testing.assert_array_equal(_embed(noisy, texts), _embed(noisy, texts))  # inference is deterministic
    quiet = BertEncoder(bc.fallback_checkpoint(), max_length=8, dropout=0.0)
    np.testing.assert_allclose(_embed(quiet, texts, training=True), _embed(quiet, texts), atol=1e-6)


def test_config_and_errors(monkeypatch):
    monkeypatch.setenv(bc.PACKAGE_ENV, "none")
    with pytest.warns(UserWarning, match="randomly initialised"):
        encoder = BertEncoder(max_length=12, trainable_layers=1, dropout=0.2)
    config = encoder.get_config()
    assert {k: config[k] for k in ("checkpoint", "max_length", "trainable_layers", "dropout")} == {
        "checkpoint": None, "max_length": 12, "trainable_layers": 1, "dropout": 0.2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clone = BertEncoder.from_config(config)
    assert clone.is_fallback and clone.tokenizer.max_length == 12 and clone.trainable_layers == 1
    fallback = bc.fallback_checkpoint()
    with pytest.raises(ValueError, match="trainable_layers"):
        BertEncoder(fallback, trainable_layers=3)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        BertEncoder(fallback, max_length=513)
    with pytest.raises(ValueError, match="dropout"):
        BertEncoder(fallback, dropout=1.0)
    with pytest.raises(bc.CheckpointError, match="does not exist"):
        BertEncoder("/nonexistent/bert")
