"""The two-tower retrieval model's tuning adapter: the retrieval job's data prepared once, trials over it.

The objective is the job's own full-catalog validation recall (`val_recall@k`, added to the epoch logs by the
job's callback before keras-tuner reads them), not the in-batch loss.
"""

from __future__ import annotations

import os
from typing import Dict

from tfrec.export.retrieval import export_two_tower
from tfrec.models.two_tower import build_two_tower_model
from tfrec.training.retrieval_job import (
    RetrievalJobConfig, evaluate_retrieval_run, make_datasets, prepare_retrieval_data, read_catalog, validation_callbacks,
)
from tfrec.tuning.prepared import PreparedDataJob


class RetrievalTuningJob(PreparedDataJob):
    """Tunes the two-tower model of a `RetrievalJobConfig` (see TuningJob for the protocol)."""

    name = "retrieval"
    # Read once by `prepare` (examples, split, fitted vocabularies, shards); tuning them would change nothing.
    fixed_paths = ("data", "examples", "split", "features", "model.query.features", "model.candidate.features",
                   "model.candidate_id", "training.num_shards", "evaluation")

    def write_data(self, work_dir: str, log) -> Dict[str, int]:
        return prepare_retrieval_data(self.base_config, work_dir, log).sizes

    def build_model(self, config: RetrievalJobConfig):
        self.require_prepared()
        return build_two_tower_model(config.model, self.fitted)

    def datasets(self, config: RetrievalJobConfig):
        return make_datasets(config, os.path.join(self.require_prepared(), "data"), has_validation=True)

    def callbacks(self, config: RetrievalJobConfig):
        return validation_callbacks(config, self.require_prepared(), has_validation=True)

    def evaluate(self, config: RetrievalJobConfig, model) -> Dict[str, float]:
        """The best model's full-catalog test metrics, beside popularity's (`popularity_<metric>`)."""
        reports, _ = evaluate_retrieval_run(config, self.require_prepared(), model)
        ours, popularity = reports[0].metrics(), reports[1].metrics()
        return {**ours, **{f"popularity_{k}": v for k, v in popularity.items()}}

    def export_best(self, config: RetrievalJobConfig, model, base_dir: str) -> str:
        info = {"tuning_dir": os.path.abspath(self.require_prepared())}
        catalog = read_catalog(config, self.require_prepared())
        return export_two_tower(model, catalog, base_dir, self.name, config.export_k, info=info)["retrieval"]
