"""tfrec.config: YAML loading, overrides and round trips."""

from __future__ import annotations

import dataclasses

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
from config_schemas import Layer, Mode, Model, Root, Training


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
