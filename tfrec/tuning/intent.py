"""The query-understanding model's tuning adapter: the queries tagged and written once, trials over them.

Tunable: learning rate, dropout, how many top encoder layers are fine-tuned, head sizes, temperatures and loss
weights (see configs/tuning/intent.yaml). The objective is the validation loss by default; the test report adds
intent accuracy, slot F1 and title retrieval.
"""

from __future__ import annotations

import os
from typing import Dict

from tfrec.export.intent import export_intent
from tfrec.training.intent_job import (
    IntentJobConfig, build_intent_model, make_datasets, prepare_intent_data, read_intents, read_split,
)
from tfrec.training.intent_evaluation import evaluate_intent_model
from tfrec.tuning.prepared import PreparedDataJob


class IntentTuningJob(PreparedDataJob):
    """Tunes the query-understanding model of an `IntentJobConfig` (see TuningJob for the protocol)."""

    name = "intent"
    # Read once by `prepare` (queries, split, wordpiece tags); tuning them would change nothing the trials see.
    fixed_paths = ("data", "model.checkpoint", "model.max_length", "training.num_shards")

    def write_data(self, work_dir: str, log) -> Dict[str, int]:
        return prepare_intent_data(self.base_config, work_dir, log)

    def build_model(self, config: IntentJobConfig):
        return build_intent_model(config.model, read_intents(self.require_prepared()))

    def datasets(self, config: IntentJobConfig):
        return make_datasets(config, os.path.join(self.require_prepared(), "data"), has_validation=True)

    def evaluate(self, config: IntentJobConfig, model) -> Dict[str, float]:
        """Test intent top-1/top-3, slot F1 and title Recall@10 of the best trial's model."""
        work_dir = self.require_prepared()
        report = evaluate_intent_model(model, read_split(config, work_dir, "test"), read_intents(work_dir))
        return {k: v for k, v in report.to_dict().items() if isinstance(v, float)}

    def export_best(self, config: IntentJobConfig, model, base_dir: str) -> str:
        return export_intent(model, base_dir, self.name, info={"tuning_dir": os.path.abspath(self.require_prepared())})
