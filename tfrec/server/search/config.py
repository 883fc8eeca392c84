"""The Search/Recommend service's knobs (configs/search.yaml), loaded into typed dataclasses by tfrec.config, so a
typo or a bad value fails at start-up naming the file and the key."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Union

from tfrec.config import ConfigError, load_config

ON_REQUEST = "on_request"  # explain.contributions: only for requests that ask (explain=true)


@dataclasses.dataclass
class ModelEndpoint:
    """One model on the model server: its name, its own per-call timeout, optionally its own server address."""

    name: str
    timeout_ms: float = 300.0
    address: Optional[str] = None  # None: `model_server`
    version_label: Optional[str] = None  # e.g. "stable"; None: the newest version

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("must name the model as the model server serves it", path="name")
        if self.timeout_ms <= 0:
            raise ConfigError(f"must be > 0, got {self.timeout_ms}", path="timeout_ms")


def _endpoint(name: str) -> ModelEndpoint:
    return ModelEndpoint(name=name)


@dataclasses.dataclass
class ModelsConfig:
    """The three models; `intent: null` searches on text tokens only, `ranker: null` keeps retrieval order."""

    retrieval: ModelEndpoint = dataclasses.field(default_factory=lambda: _endpoint("retrieval"))
    ranker: Optional[ModelEndpoint] = dataclasses.field(default_factory=lambda: _endpoint("ranker"))
    intent: Optional[ModelEndpoint] = dataclasses.field(default_factory=lambda: _endpoint("intent"))
    ranker_head: str = "click"  # the ranker head whose `<head>_logit` (or `<head>_probability`) ranks
    # The candidates are scored in up to this many concurrent ranker calls (rows split evenly, at least
    # ranker_min_rows_per_call each): at concurrency 1 the model server runs them on separate cores.
    ranker_parallel_calls: int = 1
    ranker_min_rows_per_call: int = 64

    def validate(self) -> None:
        if self.ranker_parallel_calls < 1:
            raise ConfigError(f"must be >= 1 (1: one call), got {self.ranker_parallel_calls}",
                              path="ranker_parallel_calls")
        if self.ranker_min_rows_per_call < 1:
            raise ConfigError(f"must be >= 1, got {self.ranker_min_rows_per_call}", path="ranker_min_rows_per_call")


@dataclasses.dataclass
class ServerConfig:
    """Where the search service listens."""

    host: str = "127.0.0.1"
    port: int = 8600  # 0: any free port
    max_workers: int = 16
    metrics_port: Optional[int] = None  # Prometheus text over HTTP on host:metrics_port (0: any free port)

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"must be a port number (0: any free port), got {self.port}", path="port")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"must be a port number (0: any free port) or null, got {self.metrics_port}",
                              path="metrics_port")
        if self.max_workers < 1:
            raise ConfigError(f"must be >= 1, got {self.max_workers}", path="max_workers")


@dataclasses.dataclass
class MMRConfig:
    """Maximal marginal relevance: pick argmax λ·relevance − (1 − λ)·max similarity to the items already picked."""

    relevance_weight: float = 0.7  # MMR's λ: 1 ranks by relevance only, 0 by novelty only
    pool: int = 100  # the best-scored candidates MMR chooses from
    category_weight: float = 1.0  # similarity = weighted mean of shared category-path depth and same brand
    brand_weight: float = 1.0
    dedupe_titles: bool = True  # a title already listed (case-insensitive) is not listed again

    def validate(self) -> None:
        if not 0.0 <= self.relevance_weight <= 1.0:
            raise ConfigError(f"must be in [0, 1] (1: relevance only), got {self.relevance_weight}",
                              path="relevance_weight")
        if self.pool < 1:
            raise ConfigError(f"must be >= 1, got {self.pool}", path="pool")
        if self.category_weight < 0 or self.brand_weight < 0 or self.category_weight + self.brand_weight <= 0:
            raise ConfigError("category_weight and brand_weight must be >= 0 and not both 0", path="category_weight")


@dataclasses.dataclass
class PersonalisationConfig:
    """How the user-state store (if one is injected) and a request's recent items are used."""

    history_length: int = 20  # recent items sent to the models' `recent_items` input
    affinity_boost: float = 0.2  # score += boost · (category affinity + brand affinity), on the logit scale
    price_band_boost: float = 0.1  # score += boost when the item's price is inside the shopper's price band
    exclude_recent_from_recommend: bool = True  # Recommend does not list what the shopper just interacted with

    def validate(self) -> None:
        if self.history_length < 0:
            raise ConfigError(f"must be >= 0, got {self.history_length}", path="history_length")
        for name in ("affinity_boost", "price_band_boost"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0 (0 disables it), got {getattr(self, name)}", path=name)


def _default_groups() -> Dict[str, List[str]]:
    return {"query": ["query"], "user": ["user_id", "segment", "age_band", "recent_items"],
            "item": ["item_id", "title", "category", "brand", "color", "gender", "material", "size", "price"],
            "context": ["device", "timestamp"]}


@dataclasses.dataclass
class ExplainConfig:
    """Explanations: reasons on every item, and feature-group contributions from the ranker, which cost one extra
    ranker call over the top k (about a fifth of a Search's CPU): true = every request unless it sends
    explain=false, "on_request" = only requests with explain=true, false = never."""

    contributions: Union[bool, str] = ON_REQUEST
    groups: Dict[str, List[str]] = dataclasses.field(default_factory=_default_groups)  # ranker inputs per group
    max_reasons: int = 3

    def validate(self) -> None:
        if self.max_reasons < 1:
            raise ConfigError(f"must be >= 1, got {self.max_reasons}", path="max_reasons")
        if not isinstance(self.contributions, bool) and self.contributions != ON_REQUEST:
            raise ConfigError(f"must be true, false or {ON_REQUEST!r}, got {self.contributions!r}",
                              path="contributions")

    def wants_contributions(self, requested: Optional[bool]) -> bool:
        """Whether a request (its `explain` field; None when unset) gets contributions."""
        if self.contributions is False:
            return False
        return requested if requested is not None else self.contributions is True


@dataclasses.dataclass
class OnlineServiceConfig:
    """The live loop inside the service: LogEvents appends to the event log and updates the user-state store that
    Search and Recommend read (tfrec.online; the log and store settings come from the online config file)."""

    enabled: bool = False
    config: str = "configs/online.yaml"  # tfrec.online.config.OnlineConfig: event log path, user-state backend
    overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)  # applied to it, e.g. event_log.path
    restore_state: bool = True  # an in-memory store is rebuilt from the event log at start (Redis keeps its own)
    drift_reference: Optional[str] = None  # training dataset directory: drift gauges of live events against it
    drift_window: int = 5000  # the newest logged events compared with the reference
    drift_every: int = 1000  # recomputed (in the background) after this many newly logged events

    def validate(self) -> None:
        for name in ("drift_window", "drift_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", path=name)


@dataclasses.dataclass
class ABConfig:
    """The A/B experiment this service runs (tfrec.online.experiments); arms route model versions and settings."""

    experiments: Optional[str] = None  # configs/experiments.yaml; null: no experiment
    experiment: Optional[str] = None  # its name; null: the file's only experiment


@dataclasses.dataclass
class SearchConfig:
    """Everything `tfrec serve-search` needs (see configs/search.yaml for what each knob does)."""

    catalog: str  # dataset directory (catalog.<ext>, optional users.<ext>) or a catalog file
    users: Optional[str] = None  # users file, when `catalog` is a file
    model_server: str = "127.0.0.1:8500"
    models: ModelsConfig = dataclasses.field(default_factory=ModelsConfig)
    server: ServerConfig = dataclasses.field(default_factory=ServerConfig)
    candidates: int = 500  # N retrieved (at most the retrieval model's exported k)
    default_k: int = 10
    max_k: int = 100
    deadline_ms: float = 1000.0  # a request's budget when the client sets no gRPC deadline
    retry_after_s: float = 1.0  # a model that failed is not called again for this long (0: every request tries)
    metadata_timeout_s: float = 10.0  # GetModelMetadata (once per model, cached)
    warmup_timeout_s: float = 120.0  # the one warm-up call per model at start (a graph's first call is slow)
    query_category_filter: bool = True  # the intent's category filters candidates (relaxed if nothing is left)
    calibration: Optional[str] = None  # JSON written by `tfrec search-calibrate`; None: the ranker's probability
    mmr: MMRConfig = dataclasses.field(default_factory=MMRConfig)
    personalisation: PersonalisationConfig = dataclasses.field(default_factory=PersonalisationConfig)
    explain: ExplainConfig = dataclasses.field(default_factory=ExplainConfig)
    online: OnlineServiceConfig = dataclasses.field(default_factory=OnlineServiceConfig)
    ab: ABConfig = dataclasses.field(default_factory=ABConfig)

    def validate(self) -> None:
        if self.candidates < 1:
            raise ConfigError(f"must be >= 1, got {self.candidates}", path="candidates")
        if not 1 <= self.default_k <= self.max_k:
            raise ConfigError(f"must be in [1, max_k={self.max_k}], got {self.default_k}", path="default_k")
        if self.deadline_ms <= 0:
            raise ConfigError(f"must be > 0, got {self.deadline_ms}", path="deadline_ms")
        if self.retry_after_s < 0:
            raise ConfigError(f"must be >= 0, got {self.retry_after_s}", path="retry_after_s")


def load_search_config(path: str, overrides: Optional[Dict] = None) -> SearchConfig:
    return load_config(path, SearchConfig, overrides)
