"""Search spaces as typed YAML (configs/tuning/*.yaml): the tuner's settings and the hyperparameters to search.

A hyperparameter names a dotted `path` into the job config it tunes (`training.optimizer.learning_rate`,
`model.hash_buckets`), so any knob of any job can be searched without code, and a trial's config is just the base
config with `define(hp, space)`'s overrides applied. `check_paths` applies every candidate value to the job config
through the config loader, so a misspelt path or an out-of-range value fails when the space is loaded, naming the
hyperparameter, not in trial 7.

A hyperparameter may be conditional: `when: {name: cross_rank, values: [low_rank]}` registers it inside keras-tuner's
`hp.conditional_scope`, so it is active (sampled, and written into the trial's config) only while the earlier
hyperparameter `cross_rank` takes one of those values; an inactive one leaves the base config's value in place. A
hyperparameter without a `path` is a switch: it writes nothing and only gates the hyperparameters that name it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from tfrec.config import ConfigError, apply_overrides, from_dict, load_config, to_dict

T = TypeVar("T")

Number = Union[int, float]


@dataclasses.dataclass
class TunerConfig:
    """Which keras-tuner algorithm runs, how many trials, what it optimises and where it keeps its state."""

    algorithm: Literal["random", "bayesian", "hyperband"] = "bayesian"
    max_trials: int = 10  # random and bayesian; hyperband's budget is max_epochs/factor
    executions_per_trial: int = 1
    objective: str = "val_auc"  # a metric of the epoch logs, as Keras names it
    direction: Literal["max", "min"] = "max"
    seed: Optional[int] = 42
    overwrite: bool = False  # false: a rerun resumes the search found in directory/project_name
    directory: str = "runs/tuning"
    project_name: str = "ctr"
    epochs: Optional[int] = None  # per trial (random, bayesian); None: the job's training.epochs
    max_epochs: int = 10  # hyperband
    factor: int = 3  # hyperband
    hyperband_iterations: int = 1  # hyperband
    num_initial_points: Optional[int] = None  # bayesian: random trials before the Gaussian process takes over
    early_stopping_patience: int = 2  # epochs without improvement of the objective; 0 switches it off

    def validate(self) -> None:
        positive = ("max_trials", "executions_per_trial", "max_epochs", "hyperband_iterations")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", path=name)
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"must be >= 1 when set, got {self.epochs}", path="epochs")
        if self.factor < 2:
            raise ConfigError(f"hyperband's factor must be >= 2, got {self.factor}", path="factor")
        if self.num_initial_points is not None and self.num_initial_points < 1:
            raise ConfigError(f"must be >= 1 when set, got {self.num_initial_points}", path="num_initial_points")
        if self.early_stopping_patience < 0:
            raise ConfigError("must be >= 0", path="early_stopping_patience")
        if not self.objective:
            raise ConfigError("must name a metric, e.g. val_auc", path="objective")
        if not self.project_name or os.sep in self.project_name:
            raise ConfigError(f"must be a plain directory name, got {self.project_name!r}", path="project_name")


@dataclasses.dataclass
class ConditionConfig:
    """`when` of a conditional hyperparameter: it is active only while hyperparameter `name` takes one of `values`."""

    name: str
    values: List[Any]


@dataclasses.dataclass
class HyperparameterConfig:
    """One searched knob: `path` into the job config, and its domain (`values`, or `min`/`max`/`step`/`sampling`).

    `also_paths` receive the same value (e.g. both towers' output_dim, which must agree). Choice values may be
    lists (e.g. hidden layer sizes `[[], [128], [256, 128]]`): keras-tuner sees each as its JSON text. `when` makes
    it conditional on an earlier hyperparameter; without a `path` it is a switch that only gates others."""

    type: Literal["choice", "int", "float", "boolean"]
    path: Optional[str] = None  # None: a switch (needs a name, and a hyperparameter whose `when` names it)
    name: Optional[str] = None  # shown in trial tables and TensorBoard; defaults to the path
    values: Optional[List[Any]] = None  # choice
    min: Optional[Number] = None  # int, float
    max: Optional[Number] = None
    step: Optional[Number] = None
    sampling: Optional[Literal["linear", "log"]] = None  # int, float; default linear
    default: Optional[Any] = None  # the value of the first build (keras-tuner uses min / the first choice otherwise)
    also_paths: List[str] = dataclasses.field(default_factory=list)
    when: Optional[ConditionConfig] = None  # active only while another hyperparameter has one of some values

    def __post_init__(self) -> None:
        if self.name is None:
            self.name = self.path

    def validate(self) -> None:
        if self.path is None:
            if not self.name:
                raise ConfigError("needs a path into the job config (or, as a switch that only gates others "
                                  "through their `when`, a name)", path="path")
            if self.also_paths:
                raise ConfigError("also_paths need a path", path="also_paths")
        for where, path in [("path", p) for p in [self.path] if p is not None] + [
            (f"also_paths[{i}]", p) for i, p in enumerate(self.also_paths)
        ]:
            if not path or any(not part for part in path.split(".")):
                raise ConfigError(f"{path!r} is not a dotted path like training.optimizer.learning_rate", path=where)
        ranged = self.type in ("int", "float")
        given = {k for k in ("values", "min", "max", "step", "sampling") if getattr(self, k) is not None}
        allowed = {"choice": {"values"}, "int": {"min", "max", "step", "sampling"}, "boolean": set()}
        allowed["float"] = allowed["int"]
        extra = sorted(given - allowed[self.type])
        if extra:
            raise ConfigError(f"{', '.join(extra)} do not apply to a {self.type} hyperparameter", path=extra[0])
        if self.type == "choice":
            self._validate_values()
        if ranged:
            self._validate_range()
        if self.default is not None:
            self._validate_default()

    def _validate_values(self) -> None:
        if not self.values:
            raise ConfigError("a choice needs a non-empty list of values", path="values")
        kinds = {type(v) for v in self.values}
        if kinds == {list}:
            if any(type(x) not in (int, float, str, bool) for v in self.values for x in v):
                raise ConfigError(f"list choices must hold ints, floats, strings or bools, got {self.values}", path="values")
            if len({json.dumps(v) for v in self.values}) != len(self.values):
                raise ConfigError(f"choice values repeat: {self.values}", path="values")
            return
        if not kinds <= {int, float, str, bool}:
            raise ConfigError(f"choice values must be ints, floats, strings or bools, got {self.values}", path="values")
        if len(kinds) > 1 and kinds != {int, float}:
            raise ConfigError(f"choice values must all have one type, got {self.values}", path="values")
        if kinds == {int, float}:  # [1, 2.5] is a float choice; keras-tuner needs one type
            self.values = [float(v) for v in self.values]
        if len(set(self.values)) != len(self.values):
            raise ConfigError(f"choice values repeat: {self.values}", path="values")

    def _validate_range(self) -> None:
        if self.min is None or self.max is None:
            missing = "min" if self.min is None else "max"
            raise ConfigError(f"a {self.type} hyperparameter needs min and max", path=missing)
        if self.type == "int":
            for key in ("min", "max", "step"):
                value = getattr(self, key)
                if value is not None and not isinstance(value, int):
                    raise ConfigError(f"an int hyperparameter needs an int, got {value!r}", path=key)
        if not self.min < self.max:
            raise ConfigError(f"min ({self.min}) must be < max ({self.max})", path="min")
        if self.sampling == "log" and self.min <= 0:
            raise ConfigError(f"log sampling needs min > 0, got {self.min}", path="min")
        if self.step is not None and self.step <= 0:
            raise ConfigError(f"step must be > 0, got {self.step}", path="step")

    def _validate_default(self) -> None:
        if self.type == "choice" and self.default not in self.values:
            raise ConfigError(f"default {self.default!r} is not one of the values {self.values}", path="default")
        if self.type == "boolean" and not isinstance(self.default, bool):
            raise ConfigError(f"a boolean's default must be true or false, got {self.default!r}", path="default")
        numeric = isinstance(self.default, (int, float)) and not isinstance(self.default, bool)
        if self.type in ("int", "float") and not (numeric and self.min <= self.default <= self.max):
            raise ConfigError(f"default {self.default!r} is outside [{self.min}, {self.max}]", path="default")

    @property
    def all_paths(self) -> List[str]:
        return ([self.path] if self.path is not None else []) + list(self.also_paths)

    @property
    def is_list_choice(self) -> bool:
        return self.type == "choice" and isinstance(self.values[0], list)

    def domain(self) -> str:
        """The domain as an error message shows it."""
        if self.type == "choice":
            return f"one of {self.values}"
        if self.type == "boolean":
            return "true or false"
        return f"{self.type} in [{self.min}, {self.max}]" + (f" in steps of {self.step}" if self.step else "")

    def contains(self, value: Any) -> bool:
        """Whether keras-tuner can give this hyperparameter `value` (a `when` value must be one it can take)."""
        if self.type == "boolean":
            return isinstance(value, bool)
        if self.type == "choice":  # 1 is not True here, though Python says 1 == True
            return any(v == value and isinstance(v, bool) == isinstance(value, bool) for v in self.values)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        on_step = self.type == "float" or not self.step or (value - self.min) % self.step == 0
        return self.min <= value <= self.max and on_step

    def tuner_values(self, values: Sequence[Any]) -> List[Any]:
        """`values` of this hyperparameter as keras-tuner holds them (list choices as JSON text, floats as floats)."""
        if self.is_list_choice:
            return [json.dumps(v) for v in values]
        if self.type == "float" or (self.type == "choice" and isinstance(self.values[0], float)):
            return [float(v) for v in values]
        return list(values)

    def probe_values(self) -> List[Any]:
        """The values `check_paths` tries on the job config: every choice, both ends of a range, both booleans."""
        if self.type == "choice":
            return list(self.values)
        if self.type == "boolean":
            return [False, True]
        cast = int if self.type == "int" else float
        return [cast(self.min), cast(self.max)]


@dataclasses.dataclass
class SearchSpace:
    """A search space file: `tuner` settings and the `hyperparameters` list."""

    hyperparameters: List[HyperparameterConfig]
    tuner: TunerConfig = dataclasses.field(default_factory=TunerConfig)

    def validate(self) -> None:
        if not self.hyperparameters:
            raise ConfigError("the space needs at least one hyperparameter", path="hyperparameters")
        for key in ("name", "path"):
            seen: Dict[str, int] = {}
            for i, hp in enumerate(self.hyperparameters):
                value = getattr(hp, key)
                if value is None:  # a switch has no path
                    continue
                if value in seen:
                    reason = f"{key} {value!r} repeats hyperparameters[{seen[value]}]"
                    raise ConfigError(reason, path=f"hyperparameters[{i}].{key}")
                seen[value] = i

        every = [p for hp in self.hyperparameters for p in hp.all_paths]
        repeated = sorted({p for p in every if every.count(p) > 1})
        if repeated:
            raise ConfigError(f"config paths {repeated} are tuned by more than one hyperparameter", path="hyperparameters")
        self._validate_conditions()

    def _validate_conditions(self) -> None:
        """Each `when` names an earlier hyperparameter and values it can take; each switch gates something."""
        index = {hp.name: i for i, hp in enumerate(self.hyperparameters)}
        for i, hp in enumerate(self.hyperparameters):
            if hp.when is None:
                continue
            where, parent = f"hyperparameters[{i}].when", hp.when.name
            if parent not in index:
                known = ", ".join(repr(h.name) for h in self.hyperparameters[:i]) or "none"
                raise ConfigError(f"hyperparameter {hp.name!r} depends on {parent!r}, which is not a hyperparameter "
                                  f"of this space (declared before it: {known})", path=f"{where}.name")
            if index[parent] >= i:
                raise ConfigError(f"hyperparameter {hp.name!r} depends on {parent!r} (hyperparameters[{index[parent]}]),"
                                  " which must be declared before it", path=f"{where}.name")
            domain = self.hyperparameters[index[parent]]
            outside = [v for v in hp.when.values if not domain.contains(v)]
            if not hp.when.values or outside:
                reason = f"values {outside} are" if outside else "an empty list is"
                raise ConfigError(f"hyperparameter {hp.name!r}: {reason} not in the domain of {parent!r} "
                                  f"({domain.domain()})", path=f"{where}.values")
        gating = {hp.when.name for hp in self.hyperparameters if hp.when is not None}
        for i, hp in enumerate(self.hyperparameters):
            if hp.path is None and hp.name not in gating:
                raise ConfigError(f"hyperparameter {hp.name!r} has no path and no hyperparameter's `when` names it, "
                                  "so it would change nothing", path=f"hyperparameters[{i}].path")

    def conditions(self, hp: HyperparameterConfig) -> List[Tuple[str, List[Any]]]:
        """(parent name, parent values as keras-tuner holds them) for every `when` above `hp`, outermost first."""
        by_name = {h.name: h for h in self.hyperparameters}
        chain = []
        while hp.when is not None:
            parent = by_name[hp.when.name]
            chain.append((parent.name, parent.tuner_values(hp.when.values)))
            hp = parent
        return chain[::-1]

    @property
    def paths(self) -> Dict[str, str]:
        """Hyperparameter name → config path (switches, which have none, left out)."""
        return {hp.name: hp.path for hp in self.hyperparameters if hp.path is not None}

    def overrides(self, values: Mapping[str, Any]) -> Dict[str, Any]:
        """Dotted config overrides from keras-tuner values by name (list choices decoded from their JSON text)."""
        out: Dict[str, Any] = {}
        for hp in self.hyperparameters:
            if hp.name in values:  # keras-tuner holds active values only
                value = values[hp.name]
                if hp.is_list_choice and isinstance(value, str):
                    value = json.loads(value)
                out.update({path: value for path in hp.all_paths})
        return out


def load_space(path: Union[str, os.PathLike], overrides: Optional[Mapping] = None) -> SearchSpace:
    """Reads a search space file (with optional dotted overrides such as {"tuner.max_trials": 2})."""
    return load_config(path, SearchSpace, overrides)


def apply_to_config(base: T, overrides: Mapping[str, Any], source: str = "tuning overrides") -> T:
    """`base` with the dotted `overrides` applied, rebuilt and re-validated through the config loader."""
    return from_dict(type(base), apply_overrides(to_dict(base), overrides), source)


def check_paths(
    space: SearchSpace, base: Any, fixed_paths: Sequence[str] = (), source: str = "search space"
) -> None:
    """Raises ConfigError naming the hyperparameter when its path is not in `base`'s config or a value is invalid.

    Every probe value (each choice, both ends of a range) is applied alone to `base`. `fixed_paths` are config
    prefixes the job reads once before the search (its data preparation), so tuning them would have no effect.
    """
    for i, hp in enumerate(space.hyperparameters):
        where = f"hyperparameters[{i}]"
        for fixed, path in ((f, p) for f in fixed_paths for p in hp.all_paths):
            if path == fixed or path.startswith(fixed + "."):
                raise ConfigError(
                    f"hyperparameter {hp.name!r}: path {path!r} cannot be tuned: {fixed!r} is read once, when "
                    "the data is prepared before the search",
                    source, f"{where}.path",
                )
        for value in hp.probe_values():
            try:
                apply_to_config(base, {path: value for path in hp.all_paths})
            except ConfigError as exc:
                raise ConfigError(
                    f"hyperparameter {hp.name!r}: path {hp.path!r} with value {value!r} does not fit the job "
                    f"config ({type(base).__name__}): {exc.path + ': ' if exc.path else ''}{exc.reason}",
                    source, f"{where}.path",
                ) from None


def define(hp, space: SearchSpace) -> Dict[str, Any]:
    """Registers each hyperparameter of `space` on keras_tuner HyperParameters `hp` (a conditional one inside the
    `conditional_scope`s of its `when` chain); returns {path: value} of the active ones."""
    overrides: Dict[str, Any] = {}
    for h in space.hyperparameters:
        with contextlib.ExitStack() as scopes:
            for parent, values in space.conditions(h):
                scopes.enter_context(hp.conditional_scope(parent, values))
            value = _register(hp, h)
        if value is None:  # inactive in this trial: the base config's value stays
            continue
        for path in h.all_paths:
            overrides[path] = python_value(value)
    return overrides


def _register(hp, h: HyperparameterConfig) -> Any:
    """The value keras-tuner gives `h` in this trial (None when inactive), as the job config takes it."""
    if h.is_list_choice:
        labels = [json.dumps(v) for v in h.values]
        label = hp.Choice(h.name, labels, default=None if h.default is None else json.dumps(h.default))
        return None if label is None else json.loads(label)
    if h.type == "choice":
        return hp.Choice(h.name, h.values, default=h.default)
    if h.type == "boolean":
        value = hp.Boolean(h.name, default=bool(h.default))
        return None if value is None else bool(value)
    if h.type == "int":
        value = hp.Int(h.name, h.min, h.max, step=h.step, sampling=h.sampling or "linear", default=h.default)
        return None if value is None else int(value)
    low, high, sampling = float(h.min), float(h.max), h.sampling or "linear"
    value = hp.Float(h.name, low, high, step=h.step, sampling=sampling, default=h.default)
    return None if value is None else float(value)


def python_value(value: Any) -> Any:
    """Python scalars for numpy ones (values that come back from the oracle or its protos)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value
