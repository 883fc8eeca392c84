"""Calibration of the ranker's click score: Platt scaling, P(click) = σ(a · logit + b), fitted on logged impressions
at the top display position.

Why it is needed: the exported DCN ranker scores without its position tower (so a score never depends on where an
item was shown), which makes its probability a relative score, not the chance that a shopper clicks the item when
it is listed first. Refitting the two numbers a and b on what shoppers actually did with top-slot impressions turns
it into that chance (held-out log loss is reported), without touching the model. `fit_ranker_calibration` calls the
ranker through the model server, as the service does, so the calibration matches the version it is fitted on.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, Optional

import numpy as np

MIN_ROWS = 50  # fewer top-slot impressions than this cannot pin down two parameters


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def fit_platt(logits: np.ndarray, labels: np.ndarray, l2: float = 1e-6, iterations: int = 100):
    """(a, b) minimising the log loss of σ(a·logit + b) (Newton's method; `l2` keeps it defined on separable data)."""
    x = np.stack([np.asarray(logits, np.float64), np.ones(len(logits))], axis=1)
    y = np.asarray(labels, np.float64)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("Platt scaling needs both clicked and not-clicked impressions")
    w = np.array([1.0, 0.0])
    for _ in range(iterations):
        p = sigmoid(x @ w)
        gradient = x.T @ (p - y) + l2 * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


@dataclasses.dataclass
class Calibration:
    """σ(a · logit + b) for `model` version `version`; the identity (a=1, b=0, method "none") when not fitted."""

    method: str = "none"
    a: float = 1.0
    b: float = 0.0
    model: str = ""
    version: int = 0
    report: Dict[str, float] = dataclasses.field(default_factory=dict)

    def logit(self, logits: np.ndarray) -> np.ndarray:
        return self.a * np.asarray(logits, np.float64) + self.b

    def probability(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(self.logit(logits))

    def describe(self) -> str:
        if self.method == "none":
            return "none (the ranker's own probability)"
        return f"{self.method} (a={self.a:.3f}, b={self.b:.3f}; fitted on {self.model} v{self.version})"

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(self), f, indent=2)

    @classmethod
    def load(cls, path: Optional[str]) -> "Calibration":
        if path is None:
            return cls()
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"calibration {path}: no such file (write one with `tfrec search-calibrate`)"
                                    ) from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"calibration {path}: not JSON ({exc})") from None
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown or data.get("method") not in ("none", "platt"):
            raise ValueError(f"calibration {path}: unknown keys {unknown} or method {data.get('method')!r}")
        return cls(**data)


def fit_ranker_calibration(caller, examples: Dict[str, np.ndarray], label: str = "click", head: str = "click",
                           holdout_fraction: float = 0.3, batch_size: int = 2048) -> Calibration:
    """Platt scaling of the ranker behind `caller` (a ModelCaller) on the top-slot impressions of `examples`
    (impression examples: feature columns, `position`, `timestamp` and the label): the older part fits, the newest
    `holdout_fraction` reports log loss before and after."""
    from tfrec.server.search.inputs import example_inputs

    top = np.flatnonzero(np.asarray(examples["position"]) == 0)
    top = top[np.argsort(np.asarray(examples["timestamp"])[top], kind="stable")]
    if len(top) < MIN_ROWS:
        raise ValueError(f"only {len(top)} impressions at position 0; calibration needs at least {MIN_ROWS}")
    logits, version = [], 0
    dtypes = caller.input_dtypes()
    for start in range(0, len(top), batch_size):
        rows = top[start:start + batch_size]
        outputs, version = caller.predict(example_inputs(dtypes, examples, rows), timeout_s=60.0)
        logits.append(head_logit(outputs, head))
    logits = np.concatenate(logits)
    labels = np.asarray(examples[label])[top].astype(np.float64)
    cut = int(round(len(top) * (1 - holdout_fraction)))
    a, b = fit_platt(logits[:cut], labels[:cut])
    held_logits, held_labels = logits[cut:], labels[cut:]
    report = {"fit_rows": cut, "holdout_rows": len(top) - cut, "holdout_click_rate": float(held_labels.mean()),
              "holdout_log_loss_ranker": log_loss(sigmoid(held_logits), held_labels),
              "holdout_log_loss_calibrated": log_loss(sigmoid(a * held_logits + b), held_labels)}
    return Calibration("platt", a, b, caller.endpoint.name, int(version), report)


def calibrate_served_ranker(address: str, examples: Dict[str, np.ndarray], model: str = "ranker",
                            head: str = "click") -> Calibration:
    """`fit_ranker_calibration` of the ranker `model` on the model server at `address` (ModelUnavailable when it
    cannot be reached)."""
    from tfrec.server.client import PredictionClient
    from tfrec.server.search.config import ModelEndpoint
    from tfrec.server.search.models import ModelCaller

    with PredictionClient(address) as client:
        caller = ModelCaller(ModelEndpoint(model, timeout_ms=60_000), client, retry_after_s=0)
        return fit_ranker_calibration(caller, examples, head=head)


def head_logit(outputs: Dict[str, np.ndarray], head: str) -> np.ndarray:
    """The ranker's `<head>_logit` output, or the logit of `<head>_probability` when only that is exported."""
    if f"{head}_logit" in outputs:
        return np.asarray(outputs[f"{head}_logit"], np.float64).reshape(-1)
    if f"{head}_probability" in outputs:
        p = np.clip(np.asarray(outputs[f"{head}_probability"], np.float64).reshape(-1), 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))
    raise KeyError(f"the ranker has neither {head}_logit nor {head}_probability; it outputs {sorted(outputs)}")
