"""Two-tower retrieval model: a query tower (user, context, search text) and a candidate tower (item content and id)
map into one space where the dot product scores a (request, item) pair; trained with tensorflow-recommenders'
Retrieval task (in-batch softmax).

loss = −log softmax_j( q·c_j / τ − log Q(c_j) )[positive]

with τ the temperature, Q(c) the sampling probability of candidate c in the training stream (log-Q correction, so
popular items are not over-penalised as in-batch negatives) and accidental hits (the same item twice in a batch)
removed. Both towers' outputs are L2-normalised, so scores are cosine similarities / τ. With `hard_negatives: n`
only the n highest-scoring in-batch negatives of each query enter the softmax (tfrs' hard-negative mining).

Ordered `sequence` features (the shopper's recent items) are pooled by a `SequencePooling` layer (attention by
default). `feature_dropout` blanks a feature at random while training, half of the time as absent ('') and half as
unknown ('<oov>'), so the tower learns to serve anonymous shoppers, requests without a query and new items without
an id embedding, instead of meeting those inputs for the first time in production.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Literal, Optional

import numpy as np
import tensorflow as tf

from tfrec._tfrs import tfrs
from tfrec.features.encoder import SINGLE_TOKEN_KINDS, FeatureEncoder
from tfrec.features.stats import FittedFeatures
from tfrec.features.tokens import OOV
from tfrec.layers.feature_embeddings import FeatureEmbeddings
from tfrec.models.train_step import RecommenderModel

SAMPLING_PROBABILITY = "candidate_sampling_probability"


@dataclasses.dataclass
class TextEncoderConfig:
    """A pretrained BERT sentence embedding (tfrec.text.BertEncoder) of one text feature, concatenated to the tower's
    own embeddings: the query-understanding encoder's semantic view of the search text, beside its tokens."""

    feature: str
    checkpoint: Optional[str] = None  # a Hugging Face BERT directory; None: the packaged all-MiniLM-L6-v2
    max_length: int = 32
    trainable_layers: int = 0  # 0 keeps the encoder frozen (fast); N fine-tunes its top N layers

    def validate(self) -> None:
        if self.max_length < 3 or self.trainable_layers < -1:
            raise ValueError("text_encoder: max_length must be >= 3 and trainable_layers >= -1")


@dataclasses.dataclass
class TowerConfig:
    """The features a tower reads, its embedding size and MLP."""

    features: List[str]
    embedding_dim: int = 32
    hidden: List[int] = dataclasses.field(default_factory=lambda: [64])
    output_dim: int = 32
    dropout: float = 0.0
    sequence_pooling: Literal["mean", "attention", "transformer"] = "attention"
    num_heads: int = 2
    feature_dropout: Dict[str, float] = dataclasses.field(default_factory=dict)
    text_encoder: Optional[TextEncoderConfig] = None

    def __post_init__(self):
        if isinstance(self.text_encoder, dict):  # rebuilt from get_config
            self.text_encoder = TextEncoderConfig(**self.text_encoder)

    def validate(self) -> None:
        if self.text_encoder is not None and self.text_encoder.feature not in self.features:
            raise ValueError(f"text_encoder.feature {self.text_encoder.feature!r} is not one of this tower's features")
        if not self.features:
            raise ValueError("a tower needs at least one feature")
        if self.output_dim < 1 or self.embedding_dim < 1 or any(h < 1 for h in self.hidden) or self.num_heads < 1:
            raise ValueError("output_dim, embedding_dim, num_heads and hidden sizes must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, rate in self.feature_dropout.items():
            if name not in self.features:
                raise ValueError(f"feature_dropout names {name!r}, which is not one of this tower's features {self.features}")
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"feature_dropout[{name!r}] must be in [0, 1), got {rate}")


@dataclasses.dataclass
class TwoTowerConfig:
    """Both towers plus the retrieval task's knobs."""

    query: TowerConfig
    candidate: TowerConfig
    candidate_id: str = "item_id"
    temperature: float = 0.1
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    l2: float = 0.0
    hard_negatives: Optional[int] = None

    def validate(self) -> None:
        if self.hard_negatives is not None and self.hard_negatives < 1:
            raise ValueError(f"hard_negatives must be >= 1 (or null for all in-batch negatives), got {self.hard_negatives}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.query.output_dim != self.candidate.output_dim:
            raise ValueError(f"query.output_dim ({self.query.output_dim}) and candidate.output_dim "
                             f"({self.candidate.output_dim}) must be equal: scores are dot products of the two")
        if self.candidate_id not in self.candidate.features:
            raise ValueError(f"candidate_id {self.candidate_id!r} must be one of the candidate tower's features")


class Tower(tf.keras.layers.Layer):
    """Raw features → FeatureEncoder → FeatureEmbeddings → MLP → L2-normalised vector."""

    def __init__(self, encoder: FeatureEncoder, config: TowerConfig, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.config = config
        self.l2 = float(l2)
        spec = encoder.spec
        # Bucketised numbers (e.g. price) get a bucket embedding as well as their standardised value.
        token_features = {
            n: encoder.id_space(n) for n in config.features
            if spec[n].kind != "numeric" or encoder.stats[n].boundaries
        }
        numeric = [n for n in config.features if spec[n].kind == "numeric"]
        pooling = {
            n: {"mode": config.sequence_pooling, "max_length": spec[n].max_tokens, "num_heads": config.num_heads}
            for n in config.features if spec[n].kind == "sequence"
        }
        not_strings = [n for n in config.feature_dropout if spec[n].dtype != "string"]
        if not_strings:
            raise ValueError(f"feature_dropout only applies to string features; {not_strings} are not strings")
        single = [n for n in token_features if spec[n].kind in SINGLE_TOKEN_KINDS]
        self.embeddings = FeatureEmbeddings(token_features, numeric, config.embedding_dim, l2, pooling,
                                            single_token=single, name="embeddings")
        layers = []
        for units in config.hidden:
            layers.append(tf.keras.layers.Dense(units, activation="relu"))
            if config.dropout:
                layers.append(tf.keras.layers.Dropout(config.dropout))
        layers.append(tf.keras.layers.Dense(config.output_dim))
        self.mlp = tf.keras.Sequential(layers, name="mlp")
        self.text_encoder = None
        if config.text_encoder is not None:
            from tfrec.text.bert_checkpoint import resolve_checkpoint
            from tfrec.text.bert_encoder import BertEncoder

            text = config.text_encoder
            if spec[text.feature].dtype != "string":
                raise ValueError(f"text_encoder.feature {text.feature!r} must be a string feature")
            self.text_encoder = BertEncoder(resolve_checkpoint(text.checkpoint), max_length=text.max_length,
                                            trainable_layers=text.trainable_layers, name="text_encoder")

    def get_config(self):
        config = super().get_config()
        config.update({"encoder": self.encoder.get_config(), "config": dataclasses.asdict(self.config), "l2": self.l2})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = FeatureEncoder.from_config(config.pop("encoder"))
        return cls(encoder, TowerConfig(**config.pop("config")), **config)

    def call(self, features: Dict[str, tf.Tensor], training=False) -> tf.Tensor:
        inputs = {n: features[n] for n in self.config.features}
        if training:
            inputs = self._drop_features(inputs)
        x = self.embeddings(self.encoder(inputs), training=training)
        if self.text_encoder is not None:
            text = tf.reshape(inputs[self.config.text_encoder.feature], [-1])
            x = tf.concat([x, self.text_encoder(text, training=training)["embedding"]], axis=1)
        return tf.math.l2_normalize(self.mlp(x, training=training), axis=1)

    def embed(self, columns: Dict[str, "np.ndarray"], batch_size: int = 4096) -> "np.ndarray":
        """Embeddings of in-memory feature columns (e.g. the whole catalog or a test set), batched, inference mode."""
        parts = [self(batch).numpy() for batch in self.encoder.spec.tensor_batches(columns, batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.config.output_dim), np.float32)

    def _drop_features(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Blanks each `feature_dropout` feature with its rate: half as absent (''), half as unknown ('<oov>')."""
        for name, rate in self.config.feature_dropout.items():
            values = tf.reshape(inputs[name], [-1])
            draw = tf.random.uniform(tf.shape(values))
            blank = tf.where(draw < rate / 2, tf.constant(""), tf.constant(OOV))
            inputs[name] = tf.where(draw < rate, blank, values)
        return inputs


class TwoTowerModel(RecommenderModel):
    """Query and candidate towers with a tfrs Retrieval task; `query_embedding`/`candidate_embedding` for serving."""

    def __init__(self, query_tower: Tower, candidate_tower: Tower, config: TwoTowerConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.task = tfrs.tasks.Retrieval(
            temperature=config.temperature,
            remove_accidental_hits=config.remove_accidental_hits,
            num_hard_negatives=config.hard_negatives,
        )

    def get_config(self):
        return {
            "query_tower": self.query_tower.get_config(),
            "candidate_tower": self.candidate_tower.get_config(),
            "config": dataclasses.asdict(self.config),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        towers = {k: Tower.from_config(config.pop(k)) for k in ("query_tower", "candidate_tower")}
        raw = dict(config.pop("config"))
        model_config = TwoTowerConfig(TowerConfig(**raw.pop("query")), TowerConfig(**raw.pop("candidate")), **raw)
        return cls(towers["query_tower"], towers["candidate_tower"], model_config, **config)

    def query_embedding(self, features, training=False) -> tf.Tensor:
        return self.query_tower(features, training=training)

    def candidate_embedding(self, features, training=False) -> tf.Tensor:
        return self.candidate_tower(features, training=training)

    def call(self, features, training=False):
        return self.query_embedding(features, training), self.candidate_embedding(features, training)

    def compute_loss(self, features, training: bool = False) -> tf.Tensor:
        queries, candidates = self(features, training=training)
        probability: Optional[tf.Tensor] = None
        if self.config.logq_correction:
            probability = tf.reshape(tf.cast(features[SAMPLING_PROBABILITY], tf.float32), [-1])
        ids = tf.reshape(features[self.config.candidate_id], [-1]) if self.config.remove_accidental_hits else None
        return self.task(
            queries,
            candidates,
            candidate_sampling_probability=probability,
            candidate_ids=ids,
            compute_metrics=not training,
        )


def build_two_tower_model(config: TwoTowerConfig, fitted: FittedFeatures) -> TwoTowerModel:
    """Both towers over their features of one fitted spec."""
    query = Tower(FeatureEncoder.from_fitted(fitted, config.query.features, name="query_encoder"), config.query, config.l2, name="query_tower")
    candidate = Tower(
        FeatureEncoder.from_fitted(fitted, config.candidate.features, name="candidate_encoder"),
        config.candidate,
        config.l2,
        name="candidate_tower",
    )
    return TwoTowerModel(query, candidate, config, name="two_tower")
