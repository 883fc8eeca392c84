"""Export of the DCN ranker: raw features in (no display position), each head's serving score out.

Outputs: `click_probability` (and `purchase_probability`, `add_to_cart_probability` or `rating` for the heads the
ranker trained) plus `<head>_logit` for binary heads. The position tower is not part of the graph, so a request
never sends a position and scores cannot depend on one; `serving_examples` ignores a `position` feature if sent.
"""

from __future__ import annotations

from typing import Mapping, Optional

from tfrec.export.saved_model import export_saved_model
from tfrec.models.ranker import TASKS, DCNRanker


def export_ranker(
    model: DCNRanker,
    base_dir: str,
    name: str = "ranker",
    version: Optional[int] = None,
    info: Optional[Mapping] = None,
    overwrite: bool = False,
) -> str:
    """Writes `<base_dir>/<name>/<version>/`; the signature takes exactly the features the ranker reads."""

    def outputs(features):
        logits = model.head_logits(model.embed(features))
        out = dict(model.serving_outputs(logits))
        out.update({f"{t}_logit": v for t, v in logits.items() if TASKS[t] == "binary"})
        return out

    card = {"model": "dcn_ranker", "tasks": dict(model.config.tasks),
            "position_feature": model.config.position_feature, **dict(info or {})}
    return export_saved_model(model, outputs, model.encoder.spec, base_dir, name, version, card, overwrite)
