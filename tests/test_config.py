"""tfrec.config: strict typed conversion and its error messages (file + dotted key path)."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from tfrec.config import ConfigError, from_dict
from config_schemas import HasPostInit, Layer, Mode, Model, Root, Training


def _error(cls, data) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        from_dict(cls, data, "configs/ctr.yaml")
    return info.value


# ------------------------------------------------------------------------------------------------------- types
def test_nested_values_are_converted_to_declared_types():
    cfg = from_dict(
        Root,
        {
            "training": {"batch_size": 32, "learning_rate": 1, "mode": "eval", "seed": 7},
            "model": {
                "layers": [{"units": 8}, {"units": 4, "activation": "gelu"}],
                "vocab": {"user_id": 10},
                "shape": [3, "b"],
                "towers": [16, 8, 4],
                "head": {"units": 1, "activation": "linear"},
                "anything": {"free": ["form", 1]},
            },
        },
    )
    assert cfg.training.learning_rate == 1.0 and type(cfg.training.learning_rate) is float
    assert cfg.training.mode is Mode.EVAL
    assert cfg.training.seed == 7
    assert cfg.model.layers == [Layer(8, "relu"), Layer(4, "gelu")]
    assert cfg.model.vocab == {"user_id": 10}
    assert cfg.model.shape == (3, "b")
    assert cfg.model.towers == (16, 8, 4)
    assert cfg.model.head == Layer(1, "linear")
    assert cfg.model.anything == {"free": ["form", 1]}


def test_defaults_fill_missing_optional_keys():
    cfg = from_dict(Root, {"training": {"batch_size": 1}})
    assert cfg == Root(Training(batch_size=1), Model())


def test_optional_and_pep604_accept_null():
    cfg = from_dict(Training, {"batch_size": 1, "seed": None, "cap": None})
    assert cfg.seed is None and cfg.cap is None
    assert from_dict(Training, {"batch_size": 1, "cap": 5}).cap == 5


def test_union_prefers_exact_type_then_declared_order():
    assert from_dict(Training, {"batch_size": 1, "tag": "x"}).tag == "x"
    assert from_dict(Training, {"batch_size": 1, "tag": 3}).tag == 3
    scale = from_dict(Training, {"batch_size": 1, "scale": 3}).scale
    assert scale == 3 and type(scale) is int


def test_enum_accepts_value_or_name():
    assert from_dict(Training, {"batch_size": 1, "mode": "EVAL"}).mode is Mode.EVAL


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("batch_size", "big", "training.batch_size: expected an int, got 'big' (str)"),
        ("batch_size", True, "training.batch_size: expected an int, got True (bool)"),
        ("batch_size", 2.0, "training.batch_size: expected an int, got 2.0 (float)"),
        ("learning_rate", "fast", "training.learning_rate: expected a float, got 'fast' (str)"),
        ("learning_rate", False, "training.learning_rate: expected a float, got False (bool)"),
        ("shuffle", 1, "training.shuffle: expected a bool (true/false), got 1 (int)"),
        ("shuffle", "yes", "training.shuffle: expected a bool (true/false), got 'yes' (str)"),
        ("name", 12, "training.name: expected a string, got 12 (int); quote it in YAML"),
        ("seed", "x", "training.seed: expected an int or null, got 'x' (str)"),
        ("cap", 1.5, "training.cap: expected an int or null, got 1.5 (float)"),
        ("tag", [1], "training.tag: expected an int or a string, got [1] (list)"),
        ("mode", "test", "training.mode: expected one of 'train', 'eval', got 'test' (str)"),
        ("batch_size", None, "training.batch_size: expected an int, got null"),
    ],
)
def test_type_errors_name_file_and_key_path(key, value, message):
    data = {"training": {"batch_size": 1, key: value}}
    assert str(_error(Root, data)) == f"configs/ctr.yaml: {message}"


def test_literal_error_lists_allowed_values_and_suggests():
    err = _error(Root, {"training": {"batch_size": 1}, "model": {"layers": [{"units": 1}, {"units": 2, "activation": "gelo"}]}})
    assert str(err) == (
        "configs/ctr.yaml: model.layers[1].activation: expected one of 'relu', 'gelu', 'linear', "
        "got 'gelo' (str) (did you mean 'gelu'?)"
    )
    assert err.source == "configs/ctr.yaml" and err.path == "model.layers[1].activation"


@pytest.mark.parametrize(
    "model, message",
    [
        ({"layers": {"units": 1}}, "model.layers: expected a list of Layer, got {'units': 1} (dict)"),
        ({"layers": [{"units": "1"}]}, "model.layers[0].units: expected an int, got '1' (str)"),
        ({"vocab": {"user_id": "ten"}}, "model.vocab.user_id: expected an int, got 'ten' (str)"),
        ({"vocab": {3: 10}}, "model.vocab.3: expected a string, got 3 (int); quote it in YAML"),
        ({"vocab": [1]}, "model.vocab: expected a mapping, got [1] (list)"),
        ({"shape": [1, "a", 2]}, "model.shape: expected a list of 2 items, got 3"),
        ({"shape": ["1", "a"]}, "model.shape[0]: expected an int, got '1' (str)"),
        ({"towers": [8, None]}, "model.towers[1]: expected an int, got null"),
        ({"towers": "8,4"}, "model.towers: expected a list of int, got '8,4' (str)"),
        ({"head": {"units": "x"}}, "model.head.units: expected an int, got 'x' (str)"),
        ({"head": 5}, "model.head: expected a mapping (Layer) or null, got 5 (int)"),
    ],
)
def test_container_errors_point_at_the_element(model, message):
    assert str(_error(Root, {"training": {"batch_size": 1}, "model": model})) == f"configs/ctr.yaml: {message}"


# ---------------------------------------------------------------------------------------------- keys, validation
def test_unknown_key_suggests_the_closest_field():
    err = _error(Root, {"training": {"batch_size": 1}, "model": {"hash_bucket": 3}})
    assert str(err) == "configs/ctr.yaml: model: unknown key 'hash_bucket' (did you mean 'hash_buckets'?)"


def test_unknown_key_without_close_match_lists_valid_keys():
    err = _error(Root, {"training": {"batch_size": 1}, "zzz": 1})
    assert str(err) == "configs/ctr.yaml: unknown key 'zzz'; valid keys are 'training', 'model'"


def test_several_unknown_keys_are_reported_together():
    err = _error(Training, {"batch_size": 1, "epoch": 2, "shufle": True})
    assert str(err) == (
        "configs/ctr.yaml: unknown keys 'epoch' (did you mean 'epochs'?), 'shufle' (did you mean 'shuffle'?)"
    )


def test_missing_required_key_is_named():
    assert str(_error(Root, {"training": {}})) == "configs/ctr.yaml: training: missing required key 'batch_size'"
    assert str(_error(Root, {})) == "configs/ctr.yaml: missing required key 'training'"


def test_non_mapping_section_is_rejected():
    err = _error(Root, {"training": [1, 2]})
    assert str(err) == "configs/ctr.yaml: training: expected a mapping (Training), got [1, 2] (list)"
    with pytest.raises(ConfigError, match=r"^<dict>: expected a mapping \(Root\), got 3 \(int\)$"):
        from_dict(Root, 3)


def test_validate_errors_get_file_and_path():
    base = {"training": {"batch_size": 1}}
    err = _error(Root, {**base, "model": {"dropout": 1.5}})
    assert str(err) == "configs/ctr.yaml: model.dropout: must be in [0, 1), got 1.5"
    assert err.path == "model.dropout"
    err = _error(Root, {**base, "model": {"hash_buckets": 0}})
    assert str(err) == "configs/ctr.yaml: model: hash_buckets must be positive"
    assert isinstance(err.__cause__, ValueError)


def test_post_init_value_error_becomes_config_error():
    err = _error(HasPostInit, {"span": {"low": 3, "high": 1}})
    assert str(err) == "configs/ctr.yaml: span: low (3) must not exceed high (1)"


def test_valid_defaults_pass_validate():
    assert from_dict(Model, {}).hash_buckets == 1000


def test_from_dict_uses_given_path_prefix():
    with pytest.raises(ConfigError) as info:
        from_dict(Model, {"dropout": "x"}, source="a.yaml", path="model")
    assert str(info.value) == "a.yaml: model.dropout: expected a float, got 'x' (str)"


def test_programming_errors_are_type_errors():
    with pytest.raises(TypeError, match="needs a dataclass type"):
        from_dict(dict, {})

    @dataclasses.dataclass
    class Unsupported:
        value: set = dataclasses.field(default_factory=set)

    with pytest.raises(TypeError, match="not supported"):
        from_dict(Unsupported, {"value": [1]})

    @dataclasses.dataclass
    class Inner:
        x: int = 0

    @dataclasses.dataclass
    class Outer:
        inner: Inner = dataclasses.field(default_factory=Inner)

    with pytest.raises(TypeError, match="module level"):
        from_dict(Outer, {})


def test_config_error_is_value_error_and_pickles():
    err = ConfigError("bad", "f.yaml", "a.b")
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.reason, again.source, again.path, str(again)) == ("bad", "f.yaml", "a.b", "f.yaml: a.b: bad")
    assert str(ConfigError("bad")) == "bad"
