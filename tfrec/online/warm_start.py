"""Warm start from what is serving: copy an exported SavedModel version's variables into a freshly built model.

Online updates continue from the version the model server runs now (which may itself be an online update), not
from the training run's checkpoint. The slim exports (`tfrec.export.saved_model`) keep the Keras variables' names,
so a model rebuilt from the run's config finds each variable by name and shape. Keras makes auto-generated layer
names unique per process (`dense`, `dense_1`, ...), so the same layer can be `dcn/cross_0/dense_2` in one process
and `dcn/cross_0/dense` in the exporting one; names are therefore compared without those `_<n>` suffixes, and
variables that share such a name and a shape are paired in creation order (the suffixes' order), which is the
same in every process for the same model code. Variables the export does not hold (optimizer slots, a
training-only tower such as the ranker's position tower) keep their fresh values, and are listed.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Sequence, Tuple

import tensorflow as tf


class WarmStartError(ValueError):
    """The SavedModel does not fit the model: a trainable variable is missing or has another shape."""


@dataclasses.dataclass
class WarmStartReport:
    """What a warm start copied (names), and which of the model's variables the export did not have."""

    copied: List[str]
    not_in_export: List[str]


def _by_name(variables, scope: str = "") -> Dict[str, tf.Variable]:
    """Variables by name without the model's own scope (`logistic_ctr/linear/bias:0` -> `linear/bias:0`): a model
    first called inside another name scope (an export's trace) names its variables without it."""
    out: Dict[str, tf.Variable] = {}
    for v in variables:
        name = _unscoped(v.name, scope)
        if name in out:
            raise WarmStartError(f"two variables are named {name}: cannot match them by name")
        out[name] = v
    return out


def _unscoped(name: str, scope: str) -> str:
    return name[len(scope) + 1:] if scope and name.startswith(scope + "/") else name


def exported_variables(saved_model_dir: str, loaded=None) -> Dict[str, tf.Variable]:
    """The variables of an exported version, by name; `loaded`: that version already loaded with
    tf.saved_model.load (a caller that also scores with it need not load it twice)."""
    loaded = tf.saved_model.load(saved_model_dir) if loaded is None else loaded
    variables = list(getattr(loaded, "state_variables", None) or loaded.variables)
    if not variables:
        raise WarmStartError(f"{saved_model_dir} holds no variables to warm-start from")
    return _by_name(variables)


_UNIQUE_SUFFIX = re.compile(r"_(\d+)$")


def _layer_key(name: str, scope: str) -> Tuple[str, Tuple[int, ...]]:
    """(the name without the model's scope, `:0` and each path part's `_<n>` suffix; those suffixes, -1 if none)."""
    parts, numbers = [], []
    for part in _unscoped(name, scope).split(":")[0].split("/"):
        match = _UNIQUE_SUFFIX.search(part)
        parts.append(part[:match.start()] if match else part)
        numbers.append(int(match.group(1)) if match else -1)
    return "/".join(parts), tuple(numbers)


def _groups(variables, scope: str) -> Dict[tuple, List[tf.Variable]]:
    """Variables by (suffix-free name, shape), each group in creation order (by the suffixes)."""
    groups: Dict[tuple, list] = {}
    for i, v in enumerate(variables):
        key, numbers = _layer_key(v.name, scope)
        groups.setdefault((key, tuple(v.shape)), []).append((numbers, i, v))
    return {k: [v for _, _, v in sorted(members, key=lambda m: m[:2])] for k, members in groups.items()}


def warm_start_from_saved_model(model: tf.keras.Model, saved_model_dir: str, required: tuple = (), loaded=None,
                                train_only: Sequence[tf.Variable] = ()) -> WarmStartReport:
    """Assigns `model`'s variables from the SavedModel at `saved_model_dir` (matched as the module docstring says);
    `loaded`: the same SavedModel already loaded, to read the variables from instead of loading it again.

    `model` must already have its variables (call it once on a batch). Every trainable variable whose name starts
    with one of `required` (all trainable variables when empty) must be in the export with the same shape, else
    WarmStartError names it: a model rebuilt from another config must not silently train from scratch.
    `train_only` variables (a tower serving never runs, so no export holds it) are neither matched nor required."""
    if not model.variables:
        raise WarmStartError("the model has no variables yet: call it once on a batch before warm-starting it")
    skip = {id(v) for v in train_only}
    mine = _groups([v for v in model.variables if id(v) not in skip], model.name)
    stored = _groups(exported_variables(saved_model_dir, loaded).values(), model.name)
    shapes: Dict[str, List[tuple]] = {}
    for key, shape in stored:
        shapes.setdefault(key, []).append(shape)
    copied, missing = [], [v.name for v in model.variables if id(v) in skip]
    for (key, shape), variables in mine.items():
        source = stored.get((key, shape), [])
        if len(source) == len(variables):
            for variable, value in zip(variables, source):
                variable.assign(value)
                copied.append(variable.name)
            continue
        for variable in variables:
            needed = variable.trainable and (not required or variable.name.startswith(tuple(required)))
            if needed and source:
                raise WarmStartError(f"{len(variables)} variables of the model and {len(source)} in "
                                     f"{saved_model_dir} are named like {variable.name} {shape}: cannot pair them")
            if needed:
                other = f" but {' or '.join(map(str, shapes[key]))} in {saved_model_dir}" if key in shapes else \
                    f" and is not in {saved_model_dir}: was that version exported from a model with this config?"
                raise WarmStartError(f"variable {variable.name} has shape {shape} in the model{other}")
            missing.append(variable.name)
    return WarmStartReport(copied, missing)
