"""The logistic CTR model, the calibrated baseline of every ranking report.

P(click | x) = σ(Σ wᵢxᵢ + b), trained with binary cross-entropy, where x are hashed one-hot tokens of the
categorical/text/path/timestamp/bucketised features, hashed crosses of them, and standardised numeric features
(see `tfrec.layers.hashed_linear`). All preprocessing runs in the graph through `FeatureEncoder`, so the exported
model takes raw features.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import tensorflow as tf
from tfrec._tfrs import tfrs

from tfrec.features.encoder import FeatureEncoder
from tfrec.features.stats import FittedFeatures
from tfrec.layers.hashed_linear import HashedLinear
from tfrec.layers.price_fit import PriceLimitFit
from tfrec.layers.token_match import TokenMatch, match_name
from tfrec.models.encoder_config import EncoderConfigMixin
from tfrec.models.train_step import RecommenderModel


@dataclasses.dataclass
class CTRModelConfig:
    """Which features the model reads, which crosses it adds, and its size and regularisation."""

    features: Optional[List[str]] = None  # None: every feature of the spec
    crosses: List[List[str]] = dataclasses.field(default_factory=list)
    matches: List[List[str]] = dataclasses.field(default_factory=list)  # [query, field]: lexical match tokens
    price_limit: Optional[List[str]] = None  # [query, price]: does the price respect "under 80" etc.
    hash_buckets: int = 1 << 20
    l2: float = 1e-5
    label: str = "click"

    def validate(self) -> None:
        if self.hash_buckets < 1:
            raise ValueError(f"hash_buckets must be >= 1, got {self.hash_buckets}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        for cross in self.crosses:
            if len(cross) < 2:
                raise ValueError(f"crosses: {cross} needs at least two features")
        for pair in self.matches:
            if len(pair) != 2:
                raise ValueError(f"matches: {pair} must name two features, [query, field]")
        if self.price_limit is not None and len(self.price_limit) != 2:
            raise ValueError(f"price_limit: {self.price_limit} must name two features, [query, price]")

    def referenced_features(self) -> List[str]:
        """Every feature name the crosses, matches and price limit use."""
        names = [n for group in self.crosses + self.matches for n in group]
        return names + list(self.price_limit or [])


class LogisticCTR(EncoderConfigMixin, RecommenderModel):
    """Logistic regression over hashed features and crosses; `call` returns P(click), `logits` the log-odds."""

    config_class = CTRModelConfig

    def __init__(self, encoder: FeatureEncoder, config: CTRModelConfig, **kwargs):
        super().__init__(**kwargs)
        names = config.features or encoder.spec.names
        unknown = sorted(set(config.referenced_features()) - set(names))
        if unknown:
            raise ValueError(f"crosses/matches name features {unknown} that the model does not read ({names})")
        self.config = config
        self.encoder = encoder
        token_features, numeric_features = [], []
        for name in names:
            feature = encoder.spec[name]
            if feature.kind == "numeric":
                numeric_features.append(name)
                if feature.is_bucketized:
                    token_features.append(name)
            else:
                token_features.append(name)
        self.matcher = TokenMatch(config.matches, name="matches") if config.matches else None
        self.price_fit = PriceLimitFit(*config.price_limit, name="price_limit") if config.price_limit else None
        token_features += [match_name(p) for p in config.matches]
        if self.price_fit is not None:
            token_features.append(self.price_fit.token_name)
        self.linear = HashedLinear(
            config.hash_buckets, token_features, numeric_features, config.crosses, config.l2, name="linear"
        )
        self.task = tfrs.tasks.Ranking(
            # Per-example losses, averaged over the global batch in compute_loss: the reduction that is correct
            # under tf.distribute strategies (summed gradients across replicas) as well as without one.
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE),
            metrics=[
                tf.keras.metrics.AUC(from_logits=True, name="auc"),
                tf.keras.metrics.BinaryCrossentropy(from_logits=True, name="log_loss"),
            ],
        )

    def logits(self, features: Dict[str, tf.Tensor], training=False) -> tf.Tensor:
        encoded = dict(self.encoder(features))
        if self.matcher is not None:
            encoded.update(self.matcher(features))
        if self.price_fit is not None:
            encoded.update(self.price_fit(features))
        return self.linear(encoded, training=training)

    def call(self, features: Dict[str, tf.Tensor], training=False) -> tf.Tensor:
        return tf.sigmoid(self.logits(features, training=training))

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        features, labels = inputs
        logits = self.logits(features, training=training)
        label = tf.cast(tf.reshape(labels[self.config.label], [-1, 1]), tf.float32)
        per_example = self.task(labels=label, predictions=tf.reshape(logits, [-1, 1]), training=training)
        return tf.nn.compute_average_loss(per_example)


def build_ctr_model(config: CTRModelConfig, fitted: FittedFeatures) -> LogisticCTR:
    """The CTR model over the fitted features it reads (the only constructor the CLI and export use)."""
    names = config.features or fitted.spec.names
    return LogisticCTR(FeatureEncoder.from_fitted(fitted, names, name="encoder"), config, name="logistic_ctr")
