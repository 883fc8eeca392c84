"""Export of the query-understanding model: raw query strings in; intent, slot filters and embedding out.

`serving_default(query: string[batch])` returns
- `intent` (the leaf name, or "unknown" below the confidence threshold), `intent_id` (-1 when unknown),
  `intent_probability`; `top_intents` / `top_intent_ids` / `top_probabilities` ([batch, top_k]);
- the filters: `category` (= intent, '' when unknown), `brand`, `color`, `size`, `gender`, `material` (strings,
  '' when absent), `price_min`, `price_max` (float32, NaN when absent; from the tagger, or where it tags no limit
  and `price_rules_fallback` is on, from the rule parser of `tfrec.text.price_limits`);
- `embedding` ([batch, dim], L2-normalised; titles embedded by the same signature share its space).
`classify` (serialized tf.Examples with a `query` feature as `inputs`) gives the top_k intents as classes with their
probabilities as scores, for TF Serving's Classify API.
Tokenisation runs in the graph and batches are padded only to their longest query, not to 512.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import tensorflow as tf

from tfrec.export.saved_model import export_saved_model
from tfrec.export.signatures import top_k_classify
from tfrec.features.spec import FeatureConfig, FeatureSpec
from tfrec.layers.slot_decoding import SlotDecoder
from tfrec.models.intent import QUERY, QueryUnderstandingModel
from tfrec.text.price_limits import parse_price_limits

UNKNOWN = "unknown"


def query_spec() -> FeatureSpec:
    """The one raw input: the query text."""
    return FeatureSpec([FeatureConfig(QUERY, kind="text")])


def understand(model: QueryUnderstandingModel, queries: tf.Tensor, decoder: Optional[SlotDecoder] = None,
               top_k: Optional[int] = None, unknown_below: Optional[float] = None) -> Dict[str, tf.Tensor]:
    """The exported outputs (see the module docstring) for a batch of raw queries."""
    decoder = decoder or SlotDecoder()
    top_k = min(top_k or model.config.top_k, len(model.intents))
    threshold = model.config.unknown_below if unknown_below is None else unknown_below
    queries = tf.reshape(queries, [-1])
    out = model(queries, training=False)
    probabilities = tf.nn.softmax(out["intent_logits"], axis=-1)
    top_p, top_ids = tf.math.top_k(probabilities, k=top_k)
    names = tf.constant(model.intents)
    known = top_p[:, 0] >= threshold
    best = tf.gather(names, top_ids[:, 0])
    tags = tf.argmax(out["slot_logits"], axis=-1, output_type=tf.int32)
    filters = decoder(queries, tags, out["token_starts"], out["token_ends"])
    if model.config.price_rules_fallback:
        rule_min, rule_max = parse_price_limits(queries)
        filters["price_min"] = tf.where(tf.math.is_nan(filters["price_min"]), rule_min, filters["price_min"])
        filters["price_max"] = tf.where(tf.math.is_nan(filters["price_max"]), rule_max, filters["price_max"])
    return {
        "intent": tf.where(known, best, UNKNOWN),
        "intent_id": tf.where(known, top_ids[:, 0], -1),
        "intent_probability": top_p[:, 0],
        "top_intents": tf.gather(names, top_ids),
        "top_intent_ids": top_ids,
        "top_probabilities": top_p,
        "category": tf.where(known, best, ""),
        **filters,
        "embedding": out["embedding"],
    }


def export_intent(model: QueryUnderstandingModel, base_dir: str, name: str = "intent", version: Optional[int] = None,
                  info: Optional[Mapping] = None, overwrite: bool = False,
                  warmup_rows: Optional[Mapping[str, Sequence]] = None) -> str:
    """Writes `<base_dir>/<name>/<version>/` (TF Serving layout) and returns its path; `warmup_rows` ({"query": a
    few real queries}) feed the warm-up records."""
    decoder = SlotDecoder()
    model.slot_decoder = decoder  # tracked with the model, so the SavedModel owns it

    def outputs(features):
        return understand(model, features[QUERY], decoder)

    card = {"model": "query_understanding", "intents": model.intents, "max_length": model.config.max_length,
            "unknown_below": model.config.unknown_below, **dict(info or {})}
    return export_saved_model(model, outputs, query_spec(), base_dir, name, version, card, overwrite,
                              {"classify": top_k_classify("top_intents", "top_probabilities")}, warmup_rows)
