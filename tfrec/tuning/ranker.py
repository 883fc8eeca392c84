"""The DCN ranker's tuning adapter: the ranker job's examples, split, features and TFRecords prepared once, then trials.

Tunable: anything under `model` (embedding size, cross layers, stacked/parallel structure, low-rank projection,
deep tower, dropout, L2, the heads' loss weights) and `training` (optimizer, batch size); see
configs/tuning/ranker.yaml. The TFRecords carry every label of the example kind, so the heads and their weights may
be tuned too. The objective is the job's monitor, `val_click_auc` by default; the test report of the best trial is
the job's (beside popularity and, on synthetic data, the ground truth), without the logistic baseline, which the
search does not train.
"""

from __future__ import annotations

import json
import os
from typing import Dict

from tfrec.data.sources import describe, load_source
from tfrec.export.ranker import export_ranker
from tfrec.models.ranker import build_ranker
from tfrec.training.ranker_job import RankerJobConfig, evaluate_ranker_run, make_datasets
from tfrec.training.ranking_data import EXAMPLE_LABELS, build_examples, prepare_ranking_data
from tfrec.tuning.prepared import PreparedDataJob

LABEL_MEANS_FILE = "label_means.json"  # the training split's label means: each head's initial bias


class RankerTuningJob(PreparedDataJob):
    """Tunes the DCN ranker of a `RankerJobConfig` (see TuningJob for the protocol)."""

    name = "ranker"
    # Read once by `prepare` (examples, split, fitted vocabularies, shards); tuning them would change nothing.
    fixed_paths = ("data", "examples", "negatives_per_positive", "split", "features", "training.num_shards")

    def write_data(self, work_dir: str, log) -> Dict[str, int]:
        config: RankerJobConfig = self.base_config
        loaded = load_source(config.data)
        log("data: " + "\n  ".join(describe(loaded)))
        columns = build_examples(config.examples, loaded, config.negatives_per_positive, config.split.seed)
        labels = list(dict.fromkeys(list(EXAMPLE_LABELS[config.examples]) + config.labels))
        prepared = prepare_ranking_data(config.feature_spec, labels, columns, config.split, work_dir,
                                        config.training.num_shards, log)
        with open(os.path.join(work_dir, LABEL_MEANS_FILE), "w", encoding="utf-8") as f:
            json.dump(prepared.label_means, f, indent=2)
        return prepared.sizes

    def label_means(self) -> Dict[str, float]:
        with open(os.path.join(self.require_prepared(), LABEL_MEANS_FILE), encoding="utf-8") as f:
            return json.load(f)

    def build_model(self, config: RankerJobConfig):
        self.require_prepared()
        return build_ranker(config.model, self.fitted, self.label_means())

    def datasets(self, config: RankerJobConfig):
        return make_datasets(config, os.path.join(self.require_prepared(), "data"), True, config.training)

    def evaluate(self, config: RankerJobConfig, model) -> Dict[str, float]:
        """The best model's test metrics per head (`click_auc`, `click_ndcg@10`, ...), and popularity's and the
        ground truth's (`popularity_click_auc`, `ground_truth_click_auc`, ...)."""
        report = evaluate_ranker_run(config, self.require_prepared(), model)
        out: Dict[str, float] = {}
        for head, rows in report.heads.items():
            for row in rows:
                prefix = "" if row["model"] == "dcn_ranker" else f"{row['model']}_"
                out.update({f"{prefix}{head}_{metric}": value for metric, value in row["metrics"].items()})
        return out

    def export_best(self, config: RankerJobConfig, model, base_dir: str) -> str:
        return export_ranker(model, base_dir, name=self.name, info={"tuning_dir": os.path.abspath(self.require_prepared())})
