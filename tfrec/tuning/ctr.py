"""The CTR model's tuning adapter: the CTR job's data prepared once, then any number of trials over it.

The prepared directory looks like a run directory of `tfrec train ctr` (`features/`, `data/*.tfrecord`,
`data/test_truth.npz`), so the CTR job's own `make_datasets` and `evaluate_run` read it unchanged.
"""

from __future__ import annotations

import os
from typing import Dict

from tfrec.export.ctr import export_ctr
from tfrec.models.ctr import build_ctr_model
from tfrec.training.ctr_job import CTRJobConfig, evaluate_run, make_datasets, predict, prepare_ctr_data
from tfrec.tuning.prepared import PreparedDataJob


class CTRTuningJob(PreparedDataJob):
    """Tunes the logistic CTR model of a `CTRJobConfig` (see TuningJob for the protocol)."""

    name = "ctr"
    # Read once by `prepare`; tuning them would change nothing the trials see.
    fixed_paths = (
        "data", "examples", "negatives_per_positive", "split", "features", "model.label", "training.num_shards",
    )

    def write_data(self, work_dir: str, log) -> Dict[str, int]:
        return prepare_ctr_data(self.base_config, work_dir, log)[1]

    def build_model(self, config: CTRJobConfig):
        self.require_prepared()
        return build_ctr_model(config.model, self.fitted)

    def datasets(self, config: CTRJobConfig):
        return make_datasets(config, os.path.join(self.require_prepared(), "data"), has_validation=True)

    def evaluate(self, config: CTRJobConfig, model) -> Dict[str, float]:
        """Test-split AUC, log loss (and the ground-truth gap on synthetic data), as `tfrec train ctr` reports."""
        report = evaluate_run(config, self.require_prepared(), lambda features: predict(model, features))
        return {k: v for k, v in report.to_dict().items() if k != "calibration"}

    def export_best(self, config: CTRJobConfig, model, base_dir: str) -> str:
        info = {"tuning_dir": os.path.abspath(self.require_prepared())}
        return export_ctr(model, base_dir, name=self.name, info=info)
