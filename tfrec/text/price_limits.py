"""Price limits written in shopper queries ("under 80", "less than $50", "between 20 and 30", "over $100"),
parsed inside the graph with RE2 so SavedModels take raw query strings.

This rule-based parser is the baseline slot extractor: the CTR model uses it to tell whether an item's price
respects the query, and it remains the fallback when no learned slot tagger is deployed.
"""

from __future__ import annotations

import tensorflow as tf

_NUM = r"\$?\s*([0-9]+(?:\.[0-9]+)?)\s*(?:\$|dollars?|usd)?"
_MAX_WORDS = r"(?:under|below|less than|cheaper than|no more than|not more than|up to|max(?:imum)?|at most|within|<=?)"
_MIN_WORDS = r"(?:over|above|more than|at least|min(?:imum)?|from|starting at|>=?)"
_BETWEEN = r"(?:between\s+" + _NUM + r"\s+(?:and|to|-)\s+" + _NUM + r"|" + _NUM + r"\s*(?:-|to)\s*" + _NUM + r")"


def _extract(text: tf.Tensor, pattern: str, group: int) -> tf.Tensor:
    """The number captured by `group` of `pattern` (anywhere in the text), NaN where the pattern is absent."""
    full = r"(?s).*?" + pattern + r".*"
    captured = tf.strings.regex_replace(text, full, "\\" + str(group), replace_global=False)
    present = tf.strings.regex_full_match(text, full) & (tf.strings.length(captured) > 0)
    values = tf.strings.to_number(tf.where(present, captured, "nan"), tf.float32)
    return tf.where(present, values, tf.fill(tf.shape(values), float("nan")))


def parse_price_limits(queries: tf.Tensor) -> tuple:
    """(price_min, price_max) float32 tensors for a batch of queries; NaN where the query sets no such limit.
    Each distinct query is parsed once: a ranker request repeats its query on every candidate row."""
    distinct, row_of = tf.unique(tf.reshape(queries, [-1]))
    price_min, price_max = _parse_distinct(distinct)
    return tf.gather(price_min, row_of), tf.gather(price_max, row_of)


def _parse_distinct(queries: tf.Tensor) -> tuple:
    text = tf.strings.lower(queries, encoding="utf-8")
    between = {group: _extract(text, _BETWEEN, group) for group in (1, 2, 3, 4)}
    between_lo = tf.where(tf.math.is_nan(between[1]), between[3], between[1])
    between_hi = tf.where(tf.math.is_nan(between[2]), between[4], between[2])
    upper = _extract(text, r"\b" + _MAX_WORDS + r"\s*" + _NUM, 1)
    lower = _extract(text, r"\b" + _MIN_WORDS + r"\s*" + _NUM, 1)
    price_min = tf.where(tf.math.is_nan(between_lo), lower, between_lo)
    price_max = tf.where(tf.math.is_nan(between_hi), upper, between_hi)
    return price_min, price_max
