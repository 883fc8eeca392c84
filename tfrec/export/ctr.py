"""Export of the logistic CTR model: raw features in, `click_probability` and `logit` out; `classify` on
serialized tf.Examples gives classes "0"/"1" with scores [1 - P(click), P(click)]."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import tensorflow as tf

from tfrec.export.saved_model import export_saved_model
from tfrec.export.signatures import binary_classify
from tfrec.models.ctr import LogisticCTR


def export_ctr(
    model: LogisticCTR,
    base_dir: str,
    name: str = "ctr",
    version: Optional[int] = None,
    info: Optional[Mapping] = None,
    overwrite: bool = False,
    warmup_rows: Optional[Mapping[str, Sequence]] = None,
) -> str:
    """Writes `<base_dir>/<name>/<version>/`; the signature takes exactly the features the model reads.
    `warmup_rows`: a few real rows (feature columns) for the warm-up records."""

    def outputs(features):
        logit = model.logits(features)
        return {"click_probability": tf.sigmoid(logit), "logit": logit}

    card = {"model": "logistic_ctr", "label": model.config.label, **dict(info or {})}
    return export_saved_model(model, outputs, model.encoder.spec, base_dir, name, version, card, overwrite,
                              {"classify": binary_classify("click_probability")}, warmup_rows)
