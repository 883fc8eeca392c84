"""Evaluation reports for click models: AUC, log loss, calibration, beside the popularity baseline and (on
synthetic data) the best AUC any model could reach — the ground-truth click probabilities' own AUC.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Mapping, Optional

import numpy as np

from tfrec.training import metrics

PredictFn = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclasses.dataclass
class ClickReport:
    """Metrics of one model on one split, with the baselines it is judged against."""

    examples: int
    positive_rate: float
    auc: float
    log_loss: float
    mean_prediction: float
    ece: float
    calibration: metrics.CalibrationTable
    popularity_auc: float
    grouped_auc: Optional[float] = None
    ground_truth_auc: Optional[float] = None
    ground_truth_log_loss: Optional[float] = None

    def to_dict(self) -> Dict[str, float]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "calibration" and v is not None}
        out["calibration"] = [dataclasses.asdict(b) for b in self.calibration.bins]
        return out

    def format(self, title: str = "evaluation") -> str:
        lines = [
            f"{title}: {self.examples} examples, observed rate {self.positive_rate:.4f}, "
            f"mean prediction {self.mean_prediction:.4f}",
            f"  AUC            {self.auc:.4f}   (popularity baseline {self.popularity_auc:.4f})",
        ]
        if self.grouped_auc is not None:
            lines.append(f"  grouped AUC    {self.grouped_auc:.4f}   (mean over requests with a click)")
        lines.append(f"  log loss       {self.log_loss:.4f}")
        if self.ground_truth_auc is not None:
            lines.append(
                f"  ground truth   AUC {self.ground_truth_auc:.4f}, log loss {self.ground_truth_log_loss:.4f} "
                f"(the best achievable; gap {self.ground_truth_auc - self.auc:+.4f})"
            )
        lines.append("  calibration (predicted vs observed by decile of prediction):")
        lines.extend("    " + line for line in metrics.format_calibration(self.calibration).splitlines())
        return "\n".join(lines)


def evaluate_click_model(
    probabilities: np.ndarray,
    labels: np.ndarray,
    item_ids: np.ndarray,
    train_item_ids: np.ndarray,
    train_labels: np.ndarray,
    groups: Optional[np.ndarray] = None,
    true_probabilities: Optional[np.ndarray] = None,
) -> ClickReport:
    """The report for predicted click `probabilities` against `labels` on the evaluation split."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    calibration = metrics.calibration_table(labels, probabilities, bins=10)
    popularity = metrics.popularity_scores(train_item_ids, train_labels, item_ids)
    report = ClickReport(
        examples=len(labels),
        positive_rate=float(labels.mean()),
        auc=metrics.auc(labels, probabilities),
        log_loss=metrics.log_loss(labels, probabilities),
        mean_prediction=float(probabilities.mean()),
        ece=calibration.ece,
        calibration=calibration,
        popularity_auc=metrics.auc(labels, popularity),
    )
    if groups is not None:
        report.grouped_auc = metrics.grouped_auc(labels, probabilities, groups).value
    if true_probabilities is not None:
        report.ground_truth_auc = metrics.auc(labels, true_probabilities)
        report.ground_truth_log_loss = metrics.log_loss(labels, true_probabilities)
    return report
