"""tfrec.config: strict typed loading, error messages (file + dotted key path), overrides and round trips."""

from __future__ import annotations

import dataclasses
import enum
import pickle
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import pytest
import yaml

from tfrec.config import (
    ConfigError,
    apply_overrides,
    dump_config,
    from_dict,
    load_config,
    parse_override,
    parse_overrides,
    to_dict,
)


class Mode(str, enum.Enum):
    TRAIN = "train"
    EVAL = "eval"


@dataclasses.dataclass
class Layer:
    units: int
    activation: Literal["relu", "gelu", "linear"] = "relu"


@dataclasses.dataclass
class Model:
    hash_buckets: int = 1000
    dropout: float = 0.1
    layers: List[Layer] = dataclasses.field(default_factory=list)
    vocab: Dict[str, int] = dataclasses.field(default_factory=dict)
    shape: Tuple[int, str] = (1, "a")
    towers: Tuple[int, ...] = (64, 32)
    head: Optional[Layer] = None
    anything: Any = None

    def validate(self):
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"must be in [0, 1), got {self.dropout}", path="dropout")
        if self.hash_buckets <= 0:
            raise ValueError("hash_buckets must be positive")


@dataclasses.dataclass
class Training:
    batch_size: int
    epochs: int = 1
    learning_rate: float = 1e-3
    shuffle: bool = True
    mode: Mode = Mode.TRAIN
    seed: Optional[int] = None
    cap: int | None = None
    tag: Union[int, str] = 0
    scale: Union[float, int] = 1.0
    name: str = "run"


@dataclasses.dataclass
class Root:
    training: Training
    model: Model = dataclasses.field(default_factory=Model)


@dataclasses.dataclass
class PostInit:
    low: int = 0
    high: int = 1

    def __post_init__(self):
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")


@dataclasses.dataclass
class HasPostInit:
    span: PostInit = dataclasses.field(default_factory=PostInit)


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


# ----------------------------------------------------------------------------------------------------- loading
def _write(tmp_path, text, name="ctr.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config_reads_yaml_and_yaml12_floats(tmp_path):
    path = _write(tmp_path, "training:\n  batch_size: 64\n  learning_rate: 1e-4\nmodel:\n  towers: [8, 4]\n")
    cfg = load_config(path, Root)
    assert cfg.training.batch_size == 64
    assert cfg.training.learning_rate == pytest.approx(1e-4)
    assert cfg.model.towers == (8, 4)


def test_load_config_error_names_the_file(tmp_path):
    path = _write(tmp_path, "training:\n  batch_size: big\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, Root)
    assert str(info.value) == f"{path}: training.batch_size: expected an int, got 'big' (str)"
    assert info.value.source == str(path)


def test_empty_file_is_an_empty_mapping(tmp_path):
    @dataclasses.dataclass
    class AllDefaults:
        epochs: int = 3

    assert load_config(_write(tmp_path, ""), AllDefaults) == AllDefaults()
    with pytest.raises(ConfigError, match="missing required key 'training'"):
        load_config(_write(tmp_path, "# only a comment\n"), Root)


def test_top_level_must_be_a_mapping(tmp_path):
    path = _write(tmp_path, "- 1\n- 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, Root)
    assert str(info.value) == f"{path}: top level must be a mapping, got [1, 2] (list)"


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = _write(tmp_path, "training:\n  batch_size: 1\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, Root)
    assert str(info.value).startswith(f"{path}: invalid YAML at line 4, column 1:")


def test_duplicate_keys_are_rejected(tmp_path):
    path = _write(tmp_path, "training:\n  batch_size: 1\n  batch_size: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, Root)
    assert str(info.value) == f"{path}: invalid YAML at line 3, column 3: duplicate key 'batch_size'"


def test_python_tags_are_not_constructed(tmp_path):
    path = _write(tmp_path, "training: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError, match="invalid YAML at line 1"):
        load_config(path, Root)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read config"):
        load_config(tmp_path / "nope.yaml", Root)


# --------------------------------------------------------------------------------------------------- overrides
def test_overrides_dotted_and_nested_deep_merge(tmp_path):
    path = _write(tmp_path, "training:\n  batch_size: 64\n  epochs: 5\nmodel:\n  vocab: {a: 1}\n")
    cfg = load_config(path, Root, {"training.epochs": 2, "model": {"vocab": {"b": 2}, "towers": [1]}})
    assert cfg.training == Training(batch_size=64, epochs=2)
    assert cfg.model.vocab == {"a": 1, "b": 2}
    assert cfg.model.towers == (1,)


def test_override_creates_missing_and_empty_sections(tmp_path):
    path = _write(tmp_path, "training:\n")
    cfg = load_config(path, Root, {"training.batch_size": 8, "model.head.units": 3})
    assert cfg.training.batch_size == 8 and cfg.model.head == Layer(3)


def test_override_type_error_names_key(tmp_path):
    path = _write(tmp_path, "training:\n  batch_size: 64\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, Root, dict([parse_override("training.epochs=two")]))
    assert str(info.value) == f"{path}: training.epochs: expected an int, got 'two' (str)"


def test_override_unknown_key_suggests(tmp_path):
    path = _write(tmp_path, "training:\n  batch_size: 64\n")
    with pytest.raises(ConfigError, match=r"training: unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        load_config(path, Root, {"training.epoch": 2})


def test_override_through_a_scalar_is_rejected():
    with pytest.raises(ConfigError) as info:
        apply_overrides({"training": {"epochs": 3}}, {"training.epochs.x": 1})
    assert str(info.value) == "overrides: cannot set 'training.epochs.x': 'training.epochs' is 3 (int), not a mapping"
    with pytest.raises(ConfigError, match="invalid override key 'a..b'"):
        apply_overrides({}, {"a..b": 1})


def test_apply_overrides_does_not_mutate_inputs():
    data = {"a": {"b": 1, "c": [1]}}
    overrides = {"a": {"b": 2}}
    merged = apply_overrides(data, overrides)
    merged["a"]["c"].append(2)
    assert data == {"a": {"b": 1, "c": [1]}} and overrides == {"a": {"b": 2}}
    assert merged == {"a": {"b": 2, "c": [1, 2]}}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("training.epochs=2", ("training.epochs", 2)),
        ("training.learning_rate=3e-4", ("training.learning_rate", 3e-4)),
        ("model.towers=[8, 4]", ("model.towers", [8, 4])),
        ("training.shuffle=false", ("training.shuffle", False)),
        ("training.name=my run", ("training.name", "my run")),
        ("training.name='007'", ("training.name", "007")),
        ("training.seed=", ("training.seed", None)),
        (" training.name = a=b", ("training.name", "a=b")),
    ],
)
def test_parse_override_yaml_parses_values(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["training.epochs", "=2", "training..epochs=2"])
def test_parse_override_rejects_malformed(text):
    with pytest.raises(ConfigError, match="is not of the form key.path=value"):
        parse_override(text)


def test_parse_override_bad_yaml_value():
    with pytest.raises(ConfigError, match=r"^override 'model.towers': invalid YAML"):
        parse_override("model.towers=[1, 2")


def test_parse_overrides_later_wins():
    assert parse_overrides(["a=1", "b.c=x", "a=3"]) == {"a": 3, "b.c": "x"}


# -------------------------------------------------------------------------------------------------- round trip
def _full_config() -> Root:
    return Root(
        Training(batch_size=16, learning_rate=2.5e-4, mode=Mode.EVAL, seed=None, cap=3, tag="t", name="1e-3"),
        Model(
            layers=[Layer(4, "gelu")], vocab={"x": 1}, shape=(2, "z"), towers=(3,), head=Layer(1, "linear"),
            anything={"k": [1, "v"]},
        ),
    )


def test_to_dict_is_plain_and_round_trips():
    cfg = _full_config()
    data = to_dict(cfg)
    assert data["training"]["mode"] == "eval"
    assert data["model"]["shape"] == [2, "z"] and data["model"]["towers"] == [3]
    assert data["model"]["layers"] == [{"units": 4, "activation": "gelu"}]
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    assert from_dict(Root, data) == cfg


def test_dump_config_round_trips_through_yaml(tmp_path):
    cfg = _full_config()
    path = tmp_path / "sub" / "out.yaml"
    dump_config(cfg, path)
    assert load_config(path, Root) == cfg
    assert yaml.safe_load(path.read_text())["training"]["name"] == "1e-3"  # stays a string


def test_to_dict_rejects_non_dataclass_and_unwritable_values():
    with pytest.raises(TypeError, match="dataclass instance"):
        to_dict({"a": 1})
    with pytest.raises(TypeError, match="model.anything: cannot write set"):
        to_dict(Root(Training(1), Model(anything={1, 2})))
