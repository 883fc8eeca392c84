"""Loads YAML configs into typed dataclasses and validates every knob, so a typo fails at load time, not mid-training.

Model-specific config dataclasses live next to their models; this module is the generic machinery they share:
strict type-hint-driven conversion (`from_dict`), YAML loading with CLI-style overrides (`load_config`), and the
inverse (`to_dict`, `dump_config`). Every error is a `ConfigError` naming the file and the dotted key path.

A config dataclass may define `validate(self)` for cross-field checks; it runs after the instance is built. To point
an error at a field from `validate` or `__post_init__`, raise `ConfigError("must be positive", path="dropout")`; a
plain `ValueError` is attributed to the dataclass itself.
"""

from __future__ import annotations

import collections.abc as cabc
import copy
import dataclasses
import difflib
import enum
import functools
import numbers
import os
import types
import typing
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

import yaml

from tfrec.yaml_dialect import ConfigDumper, ConfigLoader

T = TypeVar("T")

__all__ = [
    "ConfigError", "apply_overrides", "dump_config", "from_dict", "load_config", "parse_override", "parse_overrides",
    "to_dict",
]


class ConfigError(ValueError):
    """A bad config value; `source` is the file (None until known), `path` the dotted key, `reason` the problem."""

    def __init__(self, reason: str, source: Optional[str] = None, path: str = ""):
        self.reason = reason
        self.source = source
        self.path = path
        super().__init__(": ".join(p for p in (source, path, reason) if p))

    def __reduce__(self):
        return (type(self), (self.reason, self.source, self.path))

    def located(self, source: str, prefix: str) -> "ConfigError":
        """This error with the file and the outer key path filled in (errors from validate() are relative)."""
        if self.source is not None:
            return self
        path = _join(prefix, self.path) if self.path else prefix
        return ConfigError(self.reason, source, path)


def _yaml_load(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"invalid YAML at {where}{problem}", source) from None


# ----------------------------------------------------------------------------------------------- type conversion
_NONE = type(None)


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({type(value).__name__})"


def _got(value: Any) -> str:
    return "got " + _show(value)


def _suggest(word: Any, candidates: Sequence[str]) -> str:
    if not isinstance(word, str):
        return ""
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _describe(tp: Any) -> str:
    """Human name of a type for error messages, in YAML terms (null, mapping, list)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    simple = {int: "an int", float: "a float", str: "a string", bool: "a bool (true/false)", _NONE: "null"}
    if tp in simple:
        return simple[tp]
    if tp is Any:
        return "any value"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    container = origin or tp
    if container in (dict, cabc.Mapping):
        return "a mapping"
    if container is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} items"
    if container in (list, tuple, cabc.Sequence):
        short = {int: "int", float: "float", str: "string", bool: "bool"}
        item = args[0] if args else Any
        name = short.get(item) or (item.__name__ if dataclasses.is_dataclass(item) else _describe(item))
        inner = f" of {name}" if item is not Any else ""
        return "a list" + inner
    return getattr(tp, "__name__", repr(tp))


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:
        raise TypeError(
            f"cannot resolve the type hints of {cls.__qualname__}: {exc}; config dataclasses (and the types they "
            "name) must be defined at module level"
        ) from exc


def _same_kind(value: Any, allowed: Any) -> bool:
    """Literal/enum matching without Python's `True == 1` and `1 == 1.0` coercions."""
    if isinstance(allowed, bool) or isinstance(value, bool):
        return type(value) is bool and type(allowed) is bool and value == allowed
    if isinstance(allowed, enum.Enum):
        return value is allowed
    return isinstance(value, type(allowed)) and value == allowed


def _convert(tp: Any, value: Any, source: str, path: str) -> Any:
    def fail() -> ConfigError:
        return ConfigError(f"expected {_describe(tp)}, {_got(value)}", source, path)

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if tp is bool:
        if type(value) is not bool:
            raise fail()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise fail()
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, {_got(value)}; quote it in YAML", source, path)
        return str(value)
    if tp is _NONE:
        if value is not None:
            raise fail()
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise fail()
        return from_dict(tp, value, source, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value is member or _same_kind(value, member.value) or (isinstance(value, str) and value == member.name):
                return member
        err = fail()
        raise ConfigError(err.reason + _suggest(value, [str(m.value) for m in tp]), source, path)
    if origin is typing.Literal:
        for allowed in args:
            if _same_kind(value, allowed):
                return allowed
        suggestion = _suggest(value, [a for a in args if isinstance(a, str)])
        raise ConfigError(fail().reason + suggestion, source, path)
    if origin in (Union, types.UnionType):
        return _convert_union(tp, args, value, source, path, fail)
    container = origin or tp
    if container in (list, cabc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise fail()
        item = args[0] if args else Any
        return [_convert(item, v, source, _join(path, i)) for i, v in enumerate(value)]
    if container is tuple:
        if not isinstance(value, (list, tuple)):
            raise fail()
        if args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"expected a list of {len(args)} items, got {len(value)}", source, path)
            return tuple(_convert(a, v, source, _join(path, i)) for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        return tuple(_convert(item, v, source, _join(path, i)) for i, v in enumerate(value))
    if container in (dict, cabc.Mapping):
        if not isinstance(value, Mapping):
            raise fail()
        key_tp, val_tp = args if args else (Any, Any)
        out = {}
        for k, v in value.items():
            key_path = _join(path, str(k))  # mapping keys are always dotted, even ints
            out[_convert(key_tp, k, source, key_path)] = _convert(val_tp, v, source, key_path)
        return out
    raise TypeError(f"{path or '<root>'}: config type {tp!r} is not supported")


def _convert_union(tp, args, value, source, path, fail):
    # Prefer an arm whose type is exactly the value's type, so Union[float, int] keeps 3 an int.
    arms = sorted(args, key=lambda a: not (isinstance(a, type) and type(value) is a))
    errors = []
    for arm in arms:
        try:
            return _convert(arm, value, source, path)
        except ConfigError as exc:
            errors.append(exc)
    deeper = [e for e in errors if e.path != path]
    if len(deeper) == 1:  # e.g. Optional[List[int]] with a bad element: the element's error is the useful one
        raise deeper[0]
    raise fail()


def from_dict(cls: Type[T], data: Mapping, source: str = "<dict>", path: str = "") -> T:
    """Builds dataclass `cls` from `data`, strictly: every value is type-checked, unknown or missing keys are errors."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping ({cls.__name__}), {_got(data)}", source, path)
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}

    unknown = [k for k in data if k not in fields]
    if unknown:
        parts = [f"{k!r}{_suggest(k, list(fields))}" for k in unknown]
        reason = f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(parts)}"
        if "did you mean" not in reason:
            reason += "; valid keys are " + ", ".join(repr(f) for f in fields)
        raise ConfigError(reason, source, path)

    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        noun = "key" if len(missing) == 1 else "keys"
        raise ConfigError(f"missing required {noun} " + ", ".join(repr(m) for m in missing), source, path)

    kwargs = {name: _convert(hints[name], value, source, _join(path, name)) for name, value in data.items()}
    try:
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        if callable(validate):
            validate()
    except ConfigError as exc:
        located = exc.located(source, path)
        if located is exc:
            raise
        raise located from exc
    except ValueError as exc:
        raise ConfigError(str(exc), source, path) from exc
    return obj


# ---------------------------------------------------------------------------------------------------- overrides
def apply_overrides(data: Mapping, overrides: Mapping) -> Dict[str, Any]:
    """Deep-merges `overrides` into a copy of `data`; keys may be dotted (`training.epochs`), mappings merge."""
    result = copy.deepcopy(dict(data))
    for key, value in overrides.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"invalid override key {key!r}", "overrides")
        parts = key.split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"cannot set {key!r}: {where!r} is {_show(child)}, not a mapping", "overrides")
            node = child
        last = parts[-1]
        if isinstance(value, Mapping):
            base = node.get(last)
            node[last] = apply_overrides(base if isinstance(base, dict) else {}, value)
        else:
            node[last] = copy.deepcopy(value)
    return result


def parse_override(text: str) -> Tuple[str, Any]:
    """Splits a CLI `--set key=value` into (key, value), the value parsed as YAML (`2` is an int, `[1, 2]` a list)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    return key, _yaml_load(raw, f"override {key!r}")


def parse_overrides(texts: Sequence[str]) -> Dict[str, Any]:
    """parse_override over many `--set` arguments; a later setting of the same key wins."""
    return dict(parse_override(t) for t in texts)


def load_config(path: Union[str, os.PathLike], cls: Type[T], overrides: Optional[Mapping] = None) -> T:
    """Reads YAML file `path`, applies `overrides`, and builds a validated `cls`; all failures are ConfigError."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", source) from exc
    data = _yaml_load(text, source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"top level must be a mapping, {_got(data)}", source)
    if overrides:
        data = apply_overrides(data, overrides)
    return from_dict(cls, data, source)


# -------------------------------------------------------------------------------------------------------- output
def _plain(value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), _join(path, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, enum.Enum):
        return _plain(value.value, path)
    if value is None or isinstance(value, (bool, str)):
        return value if type(value) in (bool, str, _NONE) else str(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        return {_plain(k, path): _plain(v, _join(path, k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, _join(path, i)) for i, v in enumerate(value)]
    raise TypeError(f"{path or '<root>'}: cannot write {type(value).__name__} to a config")


def to_dict(cfg: Any) -> Dict[str, Any]:
    """Plain dicts/lists/scalars for `cfg` (tuples become lists, enums their values); from_dict inverts it exactly."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"to_dict needs a dataclass instance, got {cfg!r}")
    return _plain(cfg, "")


def dump_config(cfg: Any, path: Union[str, os.PathLike]) -> None:
    """Writes `cfg` as YAML that load_config reads back to an equal config (e.g. saved next to a trained model)."""
    text = yaml.dump(to_dict(cfg), Dumper=ConfigDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
