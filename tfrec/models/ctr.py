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
import tensorflow_recommenders as tfrs

from tfrec.features.encoder import FeatureEncoder
from tfrec.features.stats import FittedFeatures
from tfrec.layers.hashed_linear import HashedLinear


@dataclasses.dataclass
class CTRModelConfig:
    """Which features the model reads, which crosses it adds, and its size and regularisation."""

    features: Optional[List[str]] = None  # None: every feature of the spec
    crosses: List[List[str]] = dataclasses.field(default_factory=list)
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


class LogisticCTR(tfrs.models.Model):
    """Logistic regression over hashed features and crosses; `call` returns P(click), `logits` the log-odds."""

    def __init__(self, encoder: FeatureEncoder, config: CTRModelConfig, **kwargs):
        super().__init__(**kwargs)
        names = config.features or encoder.spec.names
        unknown = sorted({n for c in config.crosses for n in c} - set(names))
        if unknown:
            raise ValueError(f"crosses name features {unknown} that the model does not read (features: {names})")
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
        self.linear = HashedLinear(
            config.hash_buckets, token_features, numeric_features, config.crosses, config.l2, name="linear"
        )
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[
                tf.keras.metrics.AUC(from_logits=True, name="auc"),
                tf.keras.metrics.BinaryCrossentropy(from_logits=True, name="log_loss"),
            ],
        )

    def logits(self, features: Dict[str, tf.Tensor], training=False) -> tf.Tensor:
        return self.linear(self.encoder(features), training=training)

    def call(self, features: Dict[str, tf.Tensor], training=False) -> tf.Tensor:
        return tf.sigmoid(self.logits(features, training=training))

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        features, labels = inputs
        logits = self.logits(features, training=training)
        label = tf.cast(tf.reshape(labels[self.config.label], [-1]), tf.float32)
        return self.task(labels=label, predictions=logits, training=training)


def build_ctr_model(config: CTRModelConfig, fitted: FittedFeatures) -> LogisticCTR:
    """The CTR model over the fitted features it reads (the only constructor the CLI and export use)."""
    names = config.features or fitted.spec.names
    return LogisticCTR(FeatureEncoder.from_fitted(fitted, names, name="encoder"), config, name="logistic_ctr")
