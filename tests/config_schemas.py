"""Config dataclasses shared by the tfrec.config tests: every supported type hint appears somewhere here."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

from tfrec.config import ConfigError


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
