"""The tuning adapter of a model by name, over its job config file: what `tfrec tune MODEL` and the training-speed
benchmark start from. Adapters are imported on demand (the intent one pulls in transformers)."""

from __future__ import annotations

from typing import Mapping, Optional

from tfrec.tuning.hypermodel import TuningJob

MODELS = ("ctr", "retrieval", "intent", "ranker")


def tuning_job(model: str, config_path: str, overrides: Optional[Mapping] = None) -> TuningJob:
    """`model`'s TuningJob over the job config at `config_path` with dotted `overrides` applied."""
    overrides = dict(overrides or {})
    if model == "ctr":
        from tfrec.training.ctr_job import load_ctr_config
        from tfrec.tuning.ctr import CTRTuningJob

        return CTRTuningJob(load_ctr_config(config_path, overrides))
    if model == "retrieval":
        from tfrec.training.retrieval_job import load_retrieval_config
        from tfrec.tuning.retrieval import RetrievalTuningJob

        return RetrievalTuningJob(load_retrieval_config(config_path, overrides))
    if model == "intent":
        from tfrec.training.intent_job import load_intent_config
        from tfrec.tuning.intent import IntentTuningJob

        return IntentTuningJob(load_intent_config(config_path, overrides))
    if model == "ranker":
        from tfrec.training.ranker_job import load_ranker_config
        from tfrec.tuning.ranker import RankerTuningJob

        return RankerTuningJob(load_ranker_config(config_path, overrides))
    raise ValueError(f"no tuning adapter for {model!r}; models are {list(MODELS)}")
