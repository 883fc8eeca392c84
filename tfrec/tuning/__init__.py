"""Keras Tuner wiring: search spaces from YAML, a HyperModel over any job config, the search, and per-model adapters.

`run_search(CTRTuningJob(load_ctr_config(...)), load_space("configs/tuning/ctr.yaml"))` is what `tfrec tune ctr`
runs (`RetrievalTuningJob`, `tfrec.tuning.intent.IntentTuningJob` and `tfrec.tuning.ranker.RankerTuningJob` for the
other models); a new model plugs in by writing a `TuningJob` adapter (see `tfrec.tuning.hypermodel`).
"""

from tfrec.tuning.ctr import CTRTuningJob
from tfrec.tuning.hypermodel import ConfigHyperModel, TuningJob
from tfrec.tuning.prepared import PreparedDataJob
from tfrec.tuning.retrieval import RetrievalTuningJob
from tfrec.tuning.results import SearchResult, format_trials
from tfrec.tuning.search import SearchFailedError, run_search
from tfrec.tuning.space import (
    ConditionConfig, HyperparameterConfig, SearchSpace, TunerConfig, check_paths, define, load_space,
)

__all__ = [
    "CTRTuningJob", "ConditionConfig", "ConfigHyperModel", "HyperparameterConfig", "PreparedDataJob", "RetrievalTuningJob", "SearchFailedError", "SearchResult", "SearchSpace",
    "TunerConfig", "TuningJob", "check_paths", "define", "format_trials", "load_space", "run_search",
]
