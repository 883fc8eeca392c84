"""A/B experiments declared in YAML (`configs/experiments.yaml`) and the stable assignment of users to arms.

An experiment splits traffic between arms by weight; each arm names what serves it: a model version label
(`stable` / `canary`, the labels of `serving/models.config`) and/or pipeline settings (any mapping the search
service reads, e.g. `{fusion: rrf}`). A user's arm is a pure function of (salt, user id):

    u = first 8 bytes of sha256(salt + "\\x1f" + user_id), read as an integer, / 2**64      (uniform in [0, 1))
    arm = the first arm whose cumulative weight exceeds u

so the same user gets the same arm in every process, on every machine and under any PYTHONHASHSEED, and changing
the salt reshuffles everyone. The service records the arm on every response and event as `<experiment>:<arm>`
(`arm_tag`); reports accept that form or the bare arm name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from typing import Any, Dict, Iterable, List, Literal, Optional, Union

import numpy as np

from tfrec.config import ConfigError, load_config

DEFAULT_CONFIG = "configs/experiments.yaml"
DEFAULT_VERSION_LABELS = ("stable", "canary")
# Metrics an experiment may name as primary; definitions in tfrec.online.ab_report.METRICS.
METRIC_NAMES = ("ctr", "add_to_cart_rate", "conversion_rate", "revenue_per_request")
_WEIGHT_TOLERANCE = 1e-6

__all__ = [
    "Arm", "Experiment", "ExperimentsConfig", "METRIC_NAMES", "arm_tag", "assign", "assign_many", "hash_unit",
    "load_experiments", "parse_arm_tag",
]


def _identifier(text: str) -> bool:
    return bool(text) and text.replace("_", "").replace("-", "").isalnum()


def _epoch_seconds(value: Any, field: str) -> Optional[int]:
    """None, epoch seconds, ISO 8601 text or a YAML date/datetime as int epoch seconds (UTC)."""
    from tfrec.data.parsing import MISSING, CellError, parse_timestamp

    if value is None:
        return None
    try:
        seconds = parse_timestamp(value)
    except CellError as exc:
        raise ConfigError(exc.detail, path=field) from None
    if seconds is MISSING:
        return None
    return int(seconds)


@dataclasses.dataclass
class Arm:
    """One arm: its share of traffic and what serves it (a model version label and/or pipeline settings)."""

    name: str
    weight: float
    version_label: Optional[str] = None
    model: Optional[str] = None  # the served model the label selects (e.g. "ranker"); None = every labelled model
    pipeline: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if not _identifier(self.name):
            raise ConfigError(f"arm name {self.name!r} must be a non-empty identifier (letters, digits, _ or -)",
                              path="name")
        if not (math.isfinite(self.weight) and 0.0 <= self.weight <= 1.0):
            raise ConfigError(f"must be in [0, 1], got {self.weight}", path="weight")
        if self.version_label is None and not self.pipeline:
            raise ConfigError(f"arm {self.name!r} serves nothing: set version_label (e.g. stable) or pipeline settings",
                              path="version_label")


@dataclasses.dataclass
class Experiment:
    """An A/B experiment; `control` defaults to the first arm, `salt` to the name, `mde` is relative (0.05 = 5%)."""

    name: str
    arms: List[Arm]
    salt: str = ""
    control: Optional[str] = None
    primary_metric: Literal["ctr", "add_to_cart_rate", "conversion_rate", "revenue_per_request"] = "ctr"
    start: Optional[Any] = None  # epoch seconds or ISO 8601; events before it are not part of the experiment
    end: Optional[Any] = None  # exclusive
    alpha: float = 0.05  # two-sided significance level, split across treatment arms (Bonferroni)
    power: float = 0.8  # for the "not enough data" estimate
    mde: float = 0.05  # minimum detectable relative effect on the primary metric

    def validate(self) -> None:
        if not _identifier(self.name):
            raise ConfigError(f"experiment name {self.name!r} must be a non-empty identifier", path="name")
        if len(self.arms) < 2:
            raise ConfigError(f"an experiment needs at least 2 arms, got {len(self.arms)}", path="arms")
        seen: Dict[str, int] = {}
        for i, arm in enumerate(self.arms):
            if arm.name in seen:
                raise ConfigError(f"duplicate arm name {arm.name!r} (also arms[{seen[arm.name]}])",
                                  path=f"arms[{i}].name")
            seen[arm.name] = i
        total = sum(a.weight for a in self.arms)
        if abs(total - 1.0) > _WEIGHT_TOLERANCE:
            weights = ", ".join(f"{a.name}={a.weight:g}" for a in self.arms)
            raise ConfigError(f"arm weights must sum to 1, got {total:g} ({weights})", path="arms")
        if self.control is None:
            self.control = self.arms[0].name
        elif self.control not in seen:
            raise ConfigError(f"control {self.control!r} is not an arm; arms are {list(seen)}", path="control")
        if not self.salt:
            self.salt = self.name
        self.start = _epoch_seconds(self.start, "start")
        self.end = _epoch_seconds(self.end, "end")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError(f"end ({self.end}) must be after start ({self.start})", path="end")
        if not 0.0 < self.alpha < 0.5:
            raise ConfigError(f"must be in (0, 0.5), got {self.alpha}", path="alpha")
        if not 0.0 < self.power < 1.0:
            raise ConfigError(f"must be in (0, 1), got {self.power}", path="power")
        if not self.mde > 0.0:
            raise ConfigError(f"must be > 0 (a relative effect, 0.05 = 5%), got {self.mde}", path="mde")

    @property
    def arm_names(self) -> List[str]:
        return [a.name for a in self.arms]

    @property
    def treatments(self) -> List[str]:
        """The arms compared against the control."""
        return [a.name for a in self.arms if a.name != self.control]

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"experiment {self.name!r} has no arm {name!r}; arms are {self.arm_names}")

    def is_running(self, timestamp: float) -> bool:
        """Whether `timestamp` (epoch seconds) falls in [start, end)."""
        return (self.start is None or timestamp >= self.start) and (self.end is None or timestamp < self.end)


@dataclasses.dataclass
class ExperimentsConfig:
    """The experiments file: the version labels arms may use, and the experiments."""

    experiments: List[Experiment]
    version_labels: List[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_VERSION_LABELS))

    def validate(self) -> None:
        seen = set()
        for i, exp in enumerate(self.experiments):
            if exp.name in seen:
                raise ConfigError(f"duplicate experiment name {exp.name!r}", path=f"experiments[{i}].name")
            seen.add(exp.name)
            for j, arm in enumerate(exp.arms):
                if arm.version_label is not None and arm.version_label not in self.version_labels:
                    raise ConfigError(
                        f"unknown version label {arm.version_label!r}; known labels are {self.version_labels} "
                        "(add it to version_labels)",
                        path=f"experiments[{i}].arms[{j}].version_label",
                    )

    def get(self, name: str) -> Experiment:
        for exp in self.experiments:
            if exp.name == name:
                return exp
        raise KeyError(f"no experiment {name!r}; experiments are {[e.name for e in self.experiments]}")


def load_experiments(path: Union[str, os.PathLike] = DEFAULT_CONFIG,
                     overrides: Optional[Dict[str, Any]] = None) -> ExperimentsConfig:
    """The validated experiments file; every problem is a ConfigError naming the file and the field."""
    return load_config(path, ExperimentsConfig, overrides)


def hash_unit(salt: str, user_ids: Iterable[str]) -> np.ndarray:
    """sha256(salt, user id) mapped to [0, 1) per user (see the module docstring); independent of Python's hash."""
    prefix = salt.encode("utf-8") + b"\x1f"
    values = [int.from_bytes(hashlib.sha256(prefix + str(u).encode("utf-8")).digest()[:8], "big") for u in user_ids]
    return np.asarray(values, dtype=np.uint64).astype(np.float64) / 2.0**64 if values else np.zeros(0)


def assign_many(experiment: Experiment, user_ids: Iterable[str]) -> np.ndarray:
    """The arm name of each user (object array), by the stable hash."""
    u = hash_unit(experiment.salt, user_ids)
    edges = np.cumsum([a.weight for a in experiment.arms])
    index = np.minimum(np.searchsorted(edges, u, side="right"), len(edges) - 1)
    # float round-off can leave the last edge just below 1: such u belong to the last arm with weight > 0
    last_live = max(i for i, a in enumerate(experiment.arms) if a.weight > 0)
    index = np.minimum(index, last_live)
    return np.asarray(experiment.arm_names, dtype=object)[index]


def assign(experiment: Experiment, user_id: str) -> str:
    """The arm `user_id` is in: the same answer in every process (sha256 of salt and id, not Python's hash)."""
    return str(assign_many(experiment, [user_id])[0])


def arm_tag(experiment: Experiment, arm: str) -> str:
    """What the service records in an event's or response's `arm` field: '<experiment>:<arm>'."""
    return f"{experiment.name}:{arm}"


def parse_arm_tag(experiment: Experiment, recorded: np.ndarray) -> np.ndarray:
    """Arm names from recorded `arm` values ('<experiment>:<arm>' or a bare arm name); '' where the value names
    no arm of this experiment (another experiment's tag, an unknown arm, or nothing recorded)."""
    values, inverse = np.unique(np.asarray(["" if v is None else str(v) for v in recorded], dtype=str),
                                return_inverse=True)
    prefix = experiment.name + ":"
    names = set(experiment.arm_names)
    stripped = [v[len(prefix):] if v.startswith(prefix) else v for v in values.tolist()]
    arms = np.asarray([v if v in names else "" for v in stripped], dtype=object)
    return arms[inverse.reshape(-1)] if len(values) else np.zeros(0, dtype=object)
