"""The A/B experiment inside the search service: which arm serves a request, what that arm changes, and the arm
recorded on responses and events.

Each request's user is assigned by `tfrec.online.experiments.assign` (a stable sha256 of salt and user id: the same
user gets the same arm in every process). An arm changes two things for its requests only:
- `version_label` (with `model`: the model it selects; none: every model) goes into the model call's
  `model_spec.version_label`, so the model server answers from the version that label points to;
- `pipeline` settings override the pipeline knobs in ARM_SETTINGS (nested or dotted keys, e.g.
  `{mmr: {relevance_weight: 0.5}}` or `{personalisation.affinity_boost: 0.4}`); any other key is a ConfigError
  naming the experiment, the arm and the key, raised when the service starts.
A request without a user id, or outside the experiment's [start, end) window, is in no arm: it is served with the
plain config and its response's `experiment_arm` is empty (anonymous traffic would otherwise dilute the control).
Logged events with an empty `arm` get the arm of their request id (when this process served it) or of their user.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any, Dict, Mapping, Optional, Tuple

from tfrec.config import ConfigError, apply_overrides, from_dict, to_dict
from tfrec.online.experiments import Experiment, arm_tag, assign, load_experiments
from tfrec.server.search.config import SearchConfig

# The pipeline knobs an arm may set (dotted SearchConfig paths).
ARM_SETTINGS = ("candidates", "query_category_filter", "mmr.relevance_weight", "mmr.pool", "mmr.category_weight",
                "mmr.brand_weight", "personalisation.history_length", "personalisation.affinity_boost",
                "personalisation.price_band_boost", "explain.contributions", "explain.max_reasons")
REMEMBERED_REQUESTS = 100_000  # request id -> arm entries kept for labelling later events


@dataclasses.dataclass
class ArmPlan:
    """What one arm changes: the config its requests run with and {model role: version label}."""

    tag: str  # "<experiment>:<arm>", recorded on responses and events
    config: SearchConfig
    labels: Dict[str, str]
    model: str  # the model the arm is about (its `model`, else the ranker), for the per-arm metrics


def flatten(settings: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{'mmr': {'pool': 5}} -> {'mmr.pool': 5}."""
    out: Dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def arm_config(base: SearchConfig, settings: Mapping[str, Any], where: str) -> SearchConfig:
    """`base` with an arm's pipeline settings applied and validated; ConfigError naming `where` and the key."""
    flat = flatten(settings)
    for key in flat:
        if key not in ARM_SETTINGS:
            raise ConfigError(f"{where}: unknown pipeline setting {key!r}; an arm may set {', '.join(ARM_SETTINGS)}",
                              path="pipeline." + key)
    try:
        return from_dict(SearchConfig, apply_overrides(to_dict(base), flat), "<arm settings>")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.reason}", path="pipeline." + exc.path) from None


def _roles(model: Optional[str], callers: Mapping[str, str]) -> Tuple[str, ...]:
    """Roles (retrieval, ranker, intent) whose call an arm's label applies to; `callers` is {role: served name}."""
    if model is None:
        return tuple(callers)
    return tuple(role for role, name in callers.items() if model in (role, name))


class ArmRouter:
    """Assigns users to the arms of one experiment and remembers which arm served which request."""

    def __init__(self, experiment: Experiment, base: SearchConfig, callers: Mapping[str, str], source: str = ""):
        self.experiment = experiment
        self.plans: Dict[str, ArmPlan] = {}
        for i, arm in enumerate(experiment.arms):
            where = f"experiment {experiment.name!r}, arm {arm.name!r}"
            roles = _roles(arm.model, callers)
            if arm.version_label and not roles:
                raise ConfigError(f"{where}: model {arm.model!r} is not one the service calls "
                                  f"({', '.join(f'{r}={n}' for r, n in callers.items())})", source,
                                  f"arms[{i}].model")
            try:
                config = arm_config(base, arm.pipeline, where)
            except ConfigError as exc:
                raise ConfigError(exc.reason, source, f"arms[{i}].{exc.path}") from None
            labels = {role: arm.version_label for role in roles} if arm.version_label else {}
            model = callers.get(roles[0], arm.model) if arm.model and roles else callers.get("ranker", "")
            self.plans[arm.name] = ArmPlan(arm_tag(experiment, arm.name), config, labels, model)
        self._served: "collections.OrderedDict[str, Tuple[str, str, str]]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def route(self, user_id: str, now: Optional[float] = None) -> Optional[ArmPlan]:
        """The arm serving `user_id` now, or None (no user id, or the experiment is not running)."""
        if not user_id or not self.experiment.is_running(time.time() if now is None else now):
            return None
        return self.plans[assign(self.experiment, user_id)]

    def served(self, request_id: str, plan: ArmPlan, model_versions: Mapping[str, int]) -> Tuple[str, str]:
        """Remembers the arm and model version of a served request; returns (model, version) for the metrics."""
        version = str(model_versions.get(plan.model, ""))
        with self._lock:
            self._served[request_id] = (plan.tag, plan.model, version)
            while len(self._served) > REMEMBERED_REQUESTS:
                self._served.popitem(last=False)
        return plan.model, version

    def event_arm(self, event: Mapping[str, Any]) -> Tuple[str, str, str]:
        """(arm tag, model, version) of a logged event: its request's when this service answered it, else its
        user's arm (model version unknown); ('', '', '') when neither applies."""
        with self._lock:
            known = self._served.get(str(event.get("request_id") or ""))
        if known is not None:
            return known
        timestamp = event.get("timestamp") or None
        plan = self.route(str(event.get("user_id") or ""), timestamp)
        return (plan.tag, plan.model, "") if plan is not None else ("", "", "")


def load_arm_router(config: SearchConfig, callers: Mapping[str, str]) -> Optional[ArmRouter]:
    """The router for `config.ab` (None when no experiments file is configured)."""
    if not config.ab.experiments:
        return None
    experiments = load_experiments(config.ab.experiments)
    source = str(config.ab.experiments)
    if config.ab.experiment is None:
        if len(experiments.experiments) != 1:
            raise ConfigError(f"{source} declares {len(experiments.experiments)} experiments "
                              f"({', '.join(e.name for e in experiments.experiments)}); name the one this service "
                              "runs", path="ab.experiment")
        index, experiment = 0, experiments.experiments[0]
    else:
        try:
            experiment = experiments.get(config.ab.experiment)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0]), path="ab.experiment") from None
        index = experiments.experiments.index(experiment)
    try:
        return ArmRouter(experiment, config, callers, source)
    except ConfigError as exc:
        raise ConfigError(exc.reason, source, f"experiments[{index}].{exc.path}") from None
