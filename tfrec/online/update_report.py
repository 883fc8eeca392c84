"""What an online update measured and decided: both models' metrics on the eval slice, the guardrail's decision,
and the facts a promoted version's card keeps (where it started, which event-log offsets it consumed)."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from tfrec.training import metrics

__all__ = ["GUARDRAIL_METRICS", "UpdateResult", "guardrail_check", "guardrail_decision", "score"]

GUARDRAIL_METRICS = {"auc": "max", "grouped_auc": "max", "log_loss": "min"}  # metric -> the better direction


def score(labels: np.ndarray, probabilities: np.ndarray, groups: Optional[np.ndarray] = None) -> Dict[str, float]:
    """AUC, log loss, grouped AUC (per request; NaN when no request has both labels) and the mean prediction."""
    out = {"auc": metrics.auc(labels, probabilities), "log_loss": metrics.log_loss(labels, probabilities),
           "grouped_auc": math.nan, "mean_prediction": float(np.mean(probabilities))}
    if groups is not None and (np.asarray(groups) != "").any():
        try:
            out["grouped_auc"] = metrics.grouped_auc(labels, probabilities, groups).value
        except ValueError:  # no request has both a click and a non-click
            pass
    return out


def guardrail_check(metric: str, serving: float, candidate: float, tolerance: float) -> Tuple[bool, str]:
    """(passed, why) of one metric: the candidate passes unless it is worse than the serving version by more than
    `tolerance` (a negative tolerance demands an improvement of at least -tolerance); undefined values fail."""
    if metric not in GUARDRAIL_METRICS:
        raise ValueError(f"unknown guardrail metric {metric!r}; choose from {sorted(GUARDRAIL_METRICS)}")
    if not (math.isfinite(serving) and math.isfinite(candidate)):
        return False, f"{metric} is undefined on the eval slice (serving {serving}, candidate {candidate})"
    worse_by = (serving - candidate) if GUARDRAIL_METRICS[metric] == "max" else (candidate - serving)
    compared = f"{metric} {candidate:.4f} vs serving {serving:.4f} ({candidate - serving:+.4f})"
    if worse_by > tolerance:
        allowed = f"tolerance {tolerance:g}" if tolerance >= 0 else f"a required improvement of {-tolerance:g}"
        return False, f"{compared}: worse by {worse_by:.4f}, beyond {allowed}"
    return True, f"{compared}: within tolerance {tolerance:g}"


def guardrail_decision(tolerances: Mapping[str, float], serving: Mapping[str, float],
                       candidate: Mapping[str, float]) -> Tuple[bool, str]:
    """(promoted, reason): promoted only when every metric of `tolerances` (metric -> tolerance) passes
    `guardrail_check`; the reason names the failing metrics first."""
    checks = [guardrail_check(m, serving[m], candidate[m], t) for m, t in tolerances.items()]
    failed = [why for ok, why in checks if not ok]
    if failed:
        return False, "candidate " + "; ".join(failed)
    return True, "candidate " + "; ".join(why for _, why in checks)


def _utc(seconds: Optional[int]) -> str:
    return "-" if seconds is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(seconds)))


def _span(span: Optional[Tuple[int, int]]) -> str:
    return "-" if span is None else f"{_utc(span[0])} .. {_utc(span[1])} UTC"


@dataclasses.dataclass
class UpdateResult:
    """One update: the serving version, the events read, examples, both models' eval metrics and the decision."""

    model: str
    name: str
    run_dir: str
    model_base_path: str
    serving_version: int
    serving_path: str
    event_log: str
    since_offset: int
    until_offset: int  # impressions up to here were consumed; the next update starts here
    last_offset: int  # events up to here were read (the later ones only as labels)
    events_read: int
    events_held_back: int
    unknown_item_events: int
    train_examples: int
    eval_examples: int
    train_time_range: Optional[Tuple[int, int]]
    eval_time_range: Optional[Tuple[int, int]]
    head: str
    eval_positive_rate: float
    guardrail: Dict[str, float]  # metric -> tolerance; the candidate must pass every one
    serving_metrics: Dict[str, float]
    candidate_metrics: Dict[str, float]
    warm_start: Dict[str, object]
    filled_features: List[str]
    warnings: List[str]
    update_dir: str
    promoted: bool = False
    reason: str = ""
    new_version: Optional[int] = None
    new_version_path: Optional[str] = None

    @property
    def decision(self) -> str:
        return "promoted" if self.promoted else "blocked"

    def to_dict(self) -> Dict[str, object]:
        out = dataclasses.asdict(self)
        out["decision"] = self.decision
        for key in ("serving_metrics", "candidate_metrics"):  # JSON has no NaN
            out[key] = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out[key].items()}
        return out

    def card_section(self) -> Dict[str, object]:
        """The `online_update` entry of the promoted version's model card."""
        return {
            "warm_started_from": {"version": self.serving_version, "path": os.path.abspath(self.serving_path)},
            "event_log": {"path": os.path.abspath(self.event_log), "since_offset": self.since_offset,
                          "until_offset": self.until_offset, "last_offset_read": self.last_offset},
            "examples": {"train": self.train_examples, "eval": self.eval_examples},
            "guardrail": {"head": self.head, "tolerances": dict(self.guardrail), "reason": self.reason},
            "warm_start": self.warm_start,
            "filled_features": list(self.filled_features),
            "update_dir": os.path.abspath(self.update_dir),
        }

    def format(self) -> str:
        """The decision table `tfrec online-update` prints."""
        lines = [
            f"online update of {self.name} ({self.model}; run {self.run_dir} -> {self.model_base_path})",
            f"  serving version  {self.serving_version} ({self.serving_path})",
            f"  event log        {self.event_log}: offsets ({self.since_offset}, {self.until_offset}] consumed, "
            f"{self.events_read} events read up to {self.last_offset} ({self.events_held_back} held back for late "
            f"labels, {self.unknown_item_events} of unknown items dropped)",
            f"  train            {self.train_examples} impressions, {_span(self.train_time_range)}",
            f"  eval             {self.eval_examples} impressions, {_span(self.eval_time_range)}, "
            f"{self.head} rate {self.eval_positive_rate:.4f}",
            "",
            f"  {'metric (' + self.head + ')':<20}{'serving v' + str(self.serving_version):>12}{'candidate':>11}"
            f"{'change':>10}  guardrail",
        ]
        for key in ("auc", "grouped_auc", "log_loss", "mean_prediction"):
            s, c = self.serving_metrics[key], self.candidate_metrics[key]
            check = ""
            if key in self.guardrail:
                passed, _ = guardrail_check(key, s, c, self.guardrail[key])
                better = "higher" if GUARDRAIL_METRICS[key] == "max" else "lower"
                check = f"  {'pass' if passed else 'FAIL'} ({better} is better, tolerance {self.guardrail[key]:g})"
            lines.append(f"  {key:<20}{s:>12.4f}{c:>11.4f}{c - s:>+10.4f}{check}")
        lines.append("")
        for warning in self.warnings:
            lines.append(f"  warning: {warning}")
        verdict = f"PROMOTED to version {self.new_version} ({self.new_version_path})" if self.promoted else \
            "BLOCKED: nothing exported"
        lines += [f"  decision         {verdict}", f"                   {self.reason}",
                  f"  update dir       {self.update_dir}"]
        return "\n".join(lines)
