"""PriceLimitFit: whether an item's price respects the limits written in the query, as a token for wide models.

'under 80' and a $95 item give 'above_max:2' (log-ratio bucket 2: 0.1–0.25 over); a $60 item gives 'within';
a query without limits gives 'na'. The limits are parsed in the graph (`tfrec.text.price_limits`).
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf

from tfrec.features.ragged_rows import dense_rows
from tfrec.text.price_limits import parse_price_limits

LOG_RATIO_BOUNDARIES = (0.05, 0.15, 0.3, 0.6)


class PriceLimitFit(tf.keras.layers.Layer):
    """One token per example: 'within', 'above_max:<b>', 'below_min:<b>' or 'na' (see module docstring)."""

    def __init__(self, query_feature: str, price_feature: str, **kwargs):
        kwargs.setdefault("dtype", "float32")  # preprocessing and wide sums stay float32 under mixed precision
        super().__init__(**kwargs)
        self.query_feature = query_feature
        self.price_feature = price_feature

    @property
    def token_name(self) -> str:
        return f"{self.query_feature}~{self.price_feature}_limit"

    def call(self, features: Dict[str, tf.Tensor]) -> Dict[str, Dict[str, tf.RaggedTensor]]:
        price_min, price_max = parse_price_limits(features[self.query_feature])
        price = tf.cast(tf.reshape(features[self.price_feature], [-1]), tf.float32)
        log_price = tf.math.log(tf.maximum(price, 1e-3))
        over = log_price - tf.math.log(tf.maximum(price_max, 1e-3))
        under = tf.math.log(tf.maximum(price_min, 1e-3)) - log_price
        boundaries = tf.constant(LOG_RATIO_BOUNDARIES, tf.float32)

        def bucket(prefix, x):  # '<prefix>:<b>' as one gather from the few possible tokens
            names = tf.constant([f"{prefix}:{b}" for b in range(len(LOG_RATIO_BOUNDARIES) + 1)])
            return tf.gather(names, tf.searchsorted(boundaries, tf.where(tf.math.is_nan(x), 0.0, x)))

        token = tf.fill(tf.shape(price), "within")
        token = tf.where(over > 0, bucket("above_max", over), token)
        token = tf.where(under > 0, bucket("below_min", under), token)
        no_limit = tf.math.is_nan(price_min) & tf.math.is_nan(price_max)
        token = tf.where(no_limit | tf.math.is_nan(price), "na", token)
        return {self.token_name: {"tokens": dense_rows(token[:, None])}}

    def get_config(self):
        config = super().get_config()
        config.update({"query_feature": self.query_feature, "price_feature": self.price_feature})
        return config
