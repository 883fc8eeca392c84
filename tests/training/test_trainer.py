"""The shared training loop: optimizers, strategies (the CPU side of the GPU paths), callbacks and their files."""

import os

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.data.tfrecord import memory_dataset
from tfrec.features.spec import FeatureSpec
from tfrec.features.stats import fit_features
from tfrec.models.ctr import CTRModelConfig, build_ctr_model
from tfrec.training.trainer import (
    OptimizerConfig,
    TrainingConfig,
    configure_mixed_precision,
    fit,
    make_optimizer,
    make_strategy,
)


def _data(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    cat = rng.integers(0, 4, n)
    pos = rng.integers(0, 10, n)
    logit = -2.0 + 1.5 * (cat == 0) - 1.0 * (cat == 3) - 0.2 * pos
    return {
        "category": np.array([f"C{c}" for c in cat], dtype=object),
        "position": pos,
        "click": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64),
    }


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    spec = FeatureSpec.from_dicts(
        [dict(name="category"), dict(name="position", dtype="int", kind="numeric", boundaries=[0.5, 2.5, 5.5])]
    )
    return fit_features(spec, _data(), str(tmp_path_factory.mktemp("features")))


@pytest.mark.parametrize("name,cls", [("ftrl", "Ftrl"), ("adam", "Adam"), ("adagrad", "Adagrad"), ("sgd", "SGD")])
def test_make_optimizer(name, cls):
    opt = make_optimizer(OptimizerConfig(name=name, learning_rate=0.05))
    assert type(opt).__name__ == cls
    assert type(opt).__module__.startswith("tf_keras")


def test_optimizer_config_validation():
    with pytest.raises(ValueError, match="FTRL settings"):
        OptimizerConfig(name="adam", l1=0.1).validate()
    with pytest.raises(ValueError, match="learning_rate"):
        OptimizerConfig(learning_rate=0).validate()


def test_strategies_on_cpu(monkeypatch):
    assert isinstance(make_strategy("mirrored"), tf.distribute.MirroredStrategy)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(RuntimeError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    assert configure_mixed_precision("auto") is False  # no GPU here: stays float32
    assert tf.keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("optimizer,strategy", [("ftrl", "default"), ("adam", "mirrored")])
def test_fit_learns_and_writes_logs_and_checkpoints(fitted, tmp_path, optimizer, strategy):
    config = TrainingConfig(
        epochs=4, batch_size=256, strategy=strategy, verbose=0,
        optimizer=OptimizerConfig(name=optimizer, learning_rate=0.1 if optimizer == "ftrl" else 0.02),
    )
    train = memory_dataset(_data(), 256, ["click"], shuffle_buffer=6000, seed=1)
    val = memory_dataset(_data(seed=1), 1024, ["click"])
    model, history = fit(lambda: build_ctr_model(CTRModelConfig(), fitted), train, val, config, str(tmp_path))
    aucs = history.history["val_auc"]
    assert aucs[-1] > 0.70, aucs  # the true model's AUC on this data is about 0.75
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert os.path.exists(tmp_path / "checkpoints" / "best.index")
    assert os.listdir(tmp_path / "logs" / "train") and os.listdir(tmp_path / "logs" / "validation")
    assert (tmp_path / "history.csv").read_text().count("\n") == len(aucs) + 1


def test_early_stopping_stops(fitted, tmp_path):
    # A learning rate this small cannot improve val_auc measurably, so patience 1 ends training early.
    config = TrainingConfig(
        epochs=20, batch_size=512, verbose=0, early_stopping_patience=1,
        optimizer=OptimizerConfig(name="sgd", learning_rate=1e-9),
    )
    train = memory_dataset(_data(), 512, ["click"])
    val = memory_dataset(_data(seed=1), 1024, ["click"])
    _, history = fit(lambda: build_ctr_model(CTRModelConfig(), fitted), train, val, config, str(tmp_path))
    assert len(history.history["val_auc"]) < 20


def test_mixed_precision_keeps_the_ctr_model_float32(fitted):
    try:
        assert configure_mixed_precision("on") is True
        model = build_ctr_model(CTRModelConfig(), fitted)
        out = model({"category": tf.constant(["C0", "C3"]), "position": tf.constant([0, 9], tf.int64)})
        assert out.dtype == tf.float32
    finally:
        configure_mixed_precision("off")
