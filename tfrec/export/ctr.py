"""Export of the logistic CTR model: raw features in, `click_probability` and `logit` out."""

from __future__ import annotations

from typing import Mapping, Optional

import tensorflow as tf

from tfrec.export.saved_model import export_saved_model
from tfrec.models.ctr import LogisticCTR


def export_ctr(
    model: LogisticCTR,
    base_dir: str,
    name: str = "ctr",
    version: Optional[int] = None,
    info: Optional[Mapping] = None,
    overwrite: bool = False,
) -> str:
    """Writes `<base_dir>/<name>/<version>/`; the signature takes exactly the features the model reads."""

    def outputs(features):
        logit = model.logits(features)
        return {"click_probability": tf.sigmoid(logit), "logit": logit}

    card = {"model": "logistic_ctr", "label": model.config.label, **dict(info or {})}
    return export_saved_model(model, outputs, model.encoder.spec, base_dir, name, version, card, overwrite)
