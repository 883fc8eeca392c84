"""Export of the DCN ranker: raw features in (no display position), each head's serving score out.

Outputs: `click_probability` (and `purchase_probability`, `add_to_cart_probability` or `rating` for the heads the
ranker trained) plus `<head>_logit` for binary heads. The position tower is not part of the graph, so a request
never sends a position and scores cannot depend on one; `serving_examples` ignores a `position` feature if sent.

On serialized tf.Examples (`inputs`): `classify` on the click head (or the first binary head) and `classify_<head>`
on every other binary head (classes "0"/"1", scores [1 - p, p]); `regress` gives the rating head's value. Each
signature costs one graph optimisation when first called (at warm-up), so there are no aliases beyond `predict`.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

from tfrec.export.saved_model import export_saved_model
from tfrec.export.signatures import ExamplesSignature, binary_classify, regression
from tfrec.models.ranker import TASKS, DCNRanker, output_name


def ranker_signatures(tasks) -> Dict[str, ExamplesSignature]:
    """The classify / regress signatures of a ranker with these heads (module docstring)."""
    binary = [t for t in tasks if TASKS[t] == "binary"]
    main = "click" if "click" in binary else (binary[0] if binary else None)
    out = {"classify" if t == main else f"classify_{t}": binary_classify(output_name(t)) for t in binary}
    if "rating" in tasks:
        out["regress"] = regression(output_name("rating"))
    return out


def export_ranker(
    model: DCNRanker,
    base_dir: str,
    name: str = "ranker",
    version: Optional[int] = None,
    info: Optional[Mapping] = None,
    overwrite: bool = False,
    warmup_rows: Optional[Mapping[str, Sequence]] = None,
) -> str:
    """Writes `<base_dir>/<name>/<version>/`; the signature takes exactly the features the ranker reads.
    `warmup_rows`: a few real rows (feature columns) for the warm-up records."""

    def outputs(features):
        logits = model.head_logits(model.embed(features))
        out = dict(model.serving_outputs(logits))
        out.update({f"{t}_logit": v for t, v in logits.items() if TASKS[t] == "binary"})
        return out

    card = {"model": "dcn_ranker", "tasks": dict(model.config.tasks),
            "position_feature": model.config.position_feature, **dict(info or {})}
    return export_saved_model(model, outputs, model.encoder.spec, base_dir, name, version, card, overwrite,
                              ranker_signatures(model.config.tasks), warmup_rows)
