"""The logistic CTR model: learns the synthetic shop's click model, and the exported SavedModel matches it exactly."""

import os

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.data.examples import take
from tfrec.export.ctr import export_ctr
from tfrec.export.saved_model import load_model_info
from tfrec.models.ctr import CTRModelConfig, build_ctr_model
from tfrec.training.ctr_job import CTRRun, evaluate_run, predict, restore_ctr_run


@pytest.fixture(scope="module")
def trained(ctr_run):
    """configs/ctr.yaml trained for up to 20 epochs on a dense tiny shop (the session's shared run, see conftest.py):
    its best checkpoint and test report, as `train_ctr` returns them."""
    config, fitted, model = restore_ctr_run(str(ctr_run.run_dir))
    report = evaluate_run(config, str(ctr_run.run_dir), lambda features: predict(model, features))
    return config, CTRRun(str(ctr_run.run_dir), model, fitted, report)


def test_reaches_the_ground_truth_auc_and_beats_popularity(trained):
    _, run = trained
    report = run.report
    print(report.format())
    assert report.ground_truth_auc - report.auc < 0.03, report.format()
    assert report.auc > report.popularity_auc + 0.15, report.format()
    assert report.ece < 0.03, report.format()  # calibrated: the logistic model is the calibrated baseline
    assert abs(report.mean_prediction - report.positive_rate) < 0.02


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    _, run = trained
    return export_ctr(run.model, str(tmp_path_factory.mktemp("models")), "ctr", info={"note": "test"})


@pytest.fixture(scope="module")
def loaded(exported):
    """The export, reloaded once for the tests below (they only call its signatures)."""
    return tf.saved_model.load(exported)


def _request_features(config, n=64):
    from tfrec.data.tfrecord import list_shards, read_columns

    spec = config.feature_spec
    cols = read_columns(list_shards(os.path.join(config.run_dir, "data"), "test"), spec.parse_spec())
    return {k: v[:n] for k, v in take(cols, np.arange(n)).items()}


def _tensors(features):
    return {k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in features.items()}


def test_saved_model_reload_parity_on_both_signatures(trained, exported, loaded):
    config, run = trained
    path = exported
    assert path.endswith(os.path.join("ctr", "1"))
    features = _request_features(config)
    in_memory = run.model(_tensors(features)).numpy()

    serving = loaded.signatures["serving_default"]
    from_disk = serving(**_tensors(features))
    np.testing.assert_allclose(from_disk["click_probability"].numpy(), in_memory, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(tf.sigmoid(from_disk["logit"]).numpy(), in_memory, rtol=1e-5, atol=1e-7)

    examples = []
    for i in range(len(in_memory)):
        feats = {}
        for name, values in features.items():
            v = values[i]
            if isinstance(v, str):
                feats[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
            elif np.issubdtype(type(v), np.integer):
                feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))
            else:
                feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
        examples.append(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    via_examples = loaded.signatures["serving_examples"](examples=tf.constant(examples))
    np.testing.assert_allclose(via_examples["click_probability"].numpy(), in_memory, rtol=1e-6, atol=1e-7)

    info = load_model_info(path)
    assert info["model"] == "logistic_ctr" and info["note"] == "test"
    assert set(info["inputs"]) == set(config.feature_spec.names)
    assert os.listdir(os.path.join(path, "assets"))  # vocabularies travel with the model


def test_examples_signature_fills_missing_features_with_defaults(trained, loaded):
    config, run = trained
    empty = tf.train.Example().SerializeToString()
    got = loaded.signatures["serving_examples"](examples=tf.constant([empty]))["click_probability"].numpy()
    defaults = {f.name: np.array([f.tf_default], dtype=object if f.dtype == "string" else None)
                for f in config.feature_spec.features}
    want = run.model(_tensors(defaults)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_unknown_ids_and_empty_text_still_score(trained):
    config, run = trained
    features = _request_features(config, 2)
    features["user_id"] = np.array(["never-seen-user", ""], dtype=object)
    features["item_id"] = np.array(["new-item", "new-item-2"], dtype=object)
    features["query"] = np.array(["", "zzzz unknown words"], dtype=object)
    p = run.model(_tensors(features)).numpy()
    assert np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1))


def test_wrong_dtype_request_is_rejected_by_the_signature(trained, loaded):
    config, run = trained
    serving = loaded.signatures["serving_default"]
    features = _tensors(_request_features(config, 2))
    features["price"] = tf.constant(["cheap", "dear"])
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError), match="price|float"):
        serving(**features)
    del features["price"]
    with pytest.raises(TypeError, match="price"):
        serving(**features)


def test_config_rejects_crosses_on_unread_features(trained):
    config, run = trained
    bad = CTRModelConfig(features=["user_id"], crosses=[["user_id", "brand"]])
    with pytest.raises(ValueError, match=r"\['brand'\]"):
        build_ctr_model(bad, run.fitted)


def test_model_rebuilds_from_config_and_weights(trained):
    config, run = trained
    from tfrec.models.ctr import LogisticCTR

    clone = LogisticCTR.from_config(run.model.get_config())
    features = _tensors(_request_features(config, 8))
    clone(features)
    clone.set_weights(run.model.get_weights())
    np.testing.assert_allclose(clone(features).numpy(), run.model(features).numpy(), rtol=1e-6)
