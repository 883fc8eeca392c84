"""The query-understanding model: one BERT forward pass gives the query's intent, its slots and its embedding.

Heads on `tfrec.text.bert_encoder.BertEncoder` (raw strings in, tokenised in the graph):
- intent: a cosine classifier over the category leaves, its prototypes initialised from the encoder's embeddings of
  the leaf names, so the untrained head is the zero-shot "nearest class name" classifier;
- slots: a per-wordpiece BIO tagger (brand, colour, size, gender, material, price_min, price_max), decoded to
  structured filters by `tfrec.layers.slot_decoding.SlotDecoder` in the exported graph;
- embedding: the normalised mean-pooled query vector, trained contrastively against the titles of the products
  shoppers chose (tfrs `Retrieval`, in-batch negatives), so query and title vectors share one space.

Loss = w_intent * CE(intent) + w_slots * mean token CE(slots) + w_embedding * in-batch softmax(query, title).
Each term is averaged only over the rows that carry its label (intent -1, tag -1, title '' mean "unlabelled"), so
WANDS (intents only) and Home Depot (query-title pairs only) train the same model. Under a tf.distribute strategy
the means are over the global batch and the in-batch negatives are every replica's titles
(`tfrec.models.replica_losses`), so N replicas compute the same loss and gradients as one.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tfrec._tfrs import tfrs

from tfrec.config import ConfigError
from tfrec.layers.cosine_classifier import CosineClassifier
from tfrec.layers.regularizers import replicas_in_sync
from tfrec.models.replica_losses import gather_local_first, global_sum, replica_masked_mean
from tfrec.models.train_step import regularization_loss, scale_loss, unscale_gradients
from tfrec.text.bert_checkpoint import check_layer_selection, declared_layer_count
from tfrec.text.slots import BIO_TAGS

QUERY, INTENT, SLOT_TAGS, TITLE = "query", "intent", "slot_tags", "title"


@dataclasses.dataclass
class LossWeights:
    """Weights of the three heads' losses; 0 switches a head's training off."""

    intent: float = 1.0
    slots: float = 1.0
    embedding: float = 1.0

    def validate(self) -> None:
        if min(self.intent, self.slots, self.embedding) < 0:
            raise ValueError("loss weights must be >= 0")


@dataclasses.dataclass
class IntentModelConfig:
    """The encoder checkpoint and the heads' sizes; see the module docstring for what each head does."""

    checkpoint: Optional[str] = None  # a Hugging Face BERT-family directory; None: the packaged all-MiniLM-L6-v2
    checkpoint_sha256: Optional[str] = None  # verified before loading when set
    max_length: int = 32  # wordpieces per query, [CLS] and [SEP] included; batches are padded to their longest
    trainable_layers: int = -1  # top transformer layers fine-tuned; -1 all, 0 heads only
    # checkpoint layers the encoder keeps, e.g. [0, 2, 4] (distinct, ascending; see tfrec.training.intent_distil);
    # null keeps them all
    encoder_layers: Optional[List[int]] = None
    dropout: float = 0.1
    intent_hidden_units: List[int] = dataclasses.field(default_factory=list)  # MLP before the intent prototypes
    intent_temperature: float = 0.05
    slot_hidden_units: List[int] = dataclasses.field(default_factory=list)
    contrastive_temperature: float = 0.05
    head_learning_rate_multiplier: float = 20.0  # the fresh heads learn this much faster than the pretrained encoder
    unknown_below: float = 0.3  # intent is "unknown" when the top probability is below this
    price_rules_fallback: bool = True  # where the tagger finds no price limit, the rule parser's (text/price_limits)
    top_k: int = 3
    loss_weights: LossWeights = dataclasses.field(default_factory=LossWeights)

    def validate(self) -> None:
        if self.max_length < 3:
            raise ValueError(f"max_length must be >= 3 ([CLS], one token, [SEP]), got {self.max_length}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.intent_temperature <= 0 or self.contrastive_temperature <= 0:
            raise ValueError("temperatures must be > 0")
        if not 0 <= self.unknown_below <= 1:
            raise ValueError(f"unknown_below must be a probability, got {self.unknown_below}")
        if self.head_learning_rate_multiplier <= 0:
            raise ValueError("head_learning_rate_multiplier must be > 0")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if any(u < 1 for u in self.intent_hidden_units + self.slot_hidden_units):
            raise ValueError("hidden units must be >= 1")
        if self.encoder_layers is not None:
            self._check_encoder_layers()

    def _check_encoder_layers(self) -> None:
        count = declared_layer_count(self.checkpoint)
        try:  # an unreadable checkpoint is only range-checked when it is loaded
            check_layer_selection(self.encoder_layers, count if count is not None else max(self.encoder_layers) + 1)
        except ValueError as exc:
            raise ConfigError(str(exc), path="encoder_layers") from None
        if self.trainable_layers > len(self.encoder_layers):
            raise ConfigError(f"must be -1 (all) or at most the {len(self.encoder_layers)} layers of encoder_layers, "
                              f"got {self.trainable_layers}", path="trainable_layers")


def _mlp(units: Sequence[int], dropout: float, name: str) -> List[tf.keras.layers.Layer]:
    layers: List[tf.keras.layers.Layer] = []
    for i, u in enumerate(units):
        layers += [tf.keras.layers.Dense(u, activation="gelu", name=f"{name}_{i}"),
                   tf.keras.layers.Dropout(dropout, name=f"{name}_dropout_{i}")]
    return layers


TITLE_ID_SPACE = 1 << 62  # titles compared by fingerprint (accidental hits): replicas exchange numbers, not strings


class QueryUnderstandingModel(tfrs.models.Model):
    """Intent, slot and embedding heads on one shared BERT encoder; `call(queries)` returns all three."""

    def __init__(self, config: IntentModelConfig, encoder, intents: Sequence[str],
                 intent_prototypes: Optional[np.ndarray] = None, **kwargs):
        super().__init__(**kwargs)
        if len(set(intents)) != len(intents) or not len(intents):
            raise ValueError("intents must be a non-empty list of distinct names")
        self.config = config
        self.intents = list(intents)
        self.encoder = encoder
        if config.intent_hidden_units:
            intent_prototypes = None  # the prototypes live after the MLP, not in the encoder's space
        self.intent_mlp = _mlp(config.intent_hidden_units, config.dropout, "intent_hidden")
        self.intent_head = CosineClassifier(len(self.intents), config.intent_temperature, intent_prototypes,
                                            name="intent_prototypes")
        self.slot_mlp = [tf.keras.layers.Dropout(config.dropout)] + _mlp(config.slot_hidden_units, config.dropout,
                                                                         "slot_hidden")
        self.slot_head = tf.keras.layers.Dense(len(BIO_TAGS), name="slot_tags")
        self.retrieval_task = tfrs.tasks.Retrieval(  # per-query losses, averaged over the global batch
            loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE),
            temperature=config.contrastive_temperature, remove_accidental_hits=True)
        self.intent_accuracy = tf.keras.metrics.Mean("intent_accuracy")
        self.slot_accuracy = tf.keras.metrics.Mean("slot_accuracy")
        self.embedding_loss = tf.keras.metrics.Mean("embedding_loss")
        # tfrs reports the last batch's loss as `loss`; this is the epoch mean, the one to monitor (val_objective).
        self.objective = tf.keras.metrics.Mean("objective")
        self.head_optimizer = None

    def compile(self, optimizer="adam", **kwargs):
        """Also makes the heads' optimizer: the encoder's, with the learning rate times the configured multiplier."""
        super().compile(optimizer=optimizer, **kwargs)
        settings = self.optimizer.get_config()
        settings["learning_rate"] = float(tf.keras.backend.get_value(self.optimizer.learning_rate)) \
            * self.config.head_learning_rate_multiplier
        self.head_optimizer = type(self.optimizer).from_config(settings)

    def train_step(self, inputs):
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            total_loss = loss + regularization_loss(self)
            scaled = scale_loss(self.optimizer, total_loss)
        encoder_ids = {v.ref() for v in self.encoder.trainable_variables}
        encoder = [v for v in self.trainable_variables if v.ref() in encoder_ids]
        heads = [v for v in self.trainable_variables if v.ref() not in encoder_ids]
        gradients = unscale_gradients(self.optimizer, tape.gradient(scaled, encoder + heads))
        # A head whose loss weight is 0 gets no gradients; Keras refuses an update where every gradient is None.
        encoder_updates = [(g, v) for g, v in zip(gradients[: len(encoder)], encoder) if g is not None]
        head_updates = [(g, v) for g, v in zip(gradients[len(encoder):], heads) if g is not None]
        if encoder_updates:
            self.optimizer.apply_gradients(encoder_updates)
        if head_updates:
            self.head_optimizer.apply_gradients(head_updates)
        metrics = {m.name: m.result() for m in self.metrics}
        metrics["loss"] = loss
        return metrics

    def call(self, queries, training=False) -> Dict[str, tf.Tensor]:
        """intent_logits [b, intents], slot_logits [b, T, tags], embedding [b, d] plus the encoder's token offsets."""
        encoded = self.encoder(queries, training=training)
        pooled = encoded["embedding"]
        for layer in self.intent_mlp:
            pooled = layer(pooled, training=training)
        tokens = encoded["sequence_output"]
        for layer in self.slot_mlp:
            tokens = layer(tokens, training=training)
        return {
            "intent_logits": self.intent_head(pooled),
            "slot_logits": self.slot_head(tokens),
            "embedding": encoded["embedding"],
            "attention_mask": encoded["attention_mask"],
            "token_starts": encoded["token_starts"],
            "token_ends": encoded["token_ends"],
        }

    def embed(self, texts, training=False) -> tf.Tensor:
        """Normalised embeddings of queries or titles (one space for both)."""
        return self.encoder(texts, training=training)["embedding"]

    def compute_loss(self, features, training=False) -> tf.Tensor:
        out = self(features[QUERY], training=training)
        w = self.config.loss_weights
        loss = tf.constant(0.0)
        if INTENT in features and w.intent > 0:
            labels = tf.cast(tf.reshape(features[INTENT], [-1]), tf.int32)
            has = labels >= 0
            ce = tf.keras.losses.sparse_categorical_crossentropy(tf.maximum(labels, 0), out["intent_logits"],
                                                                 from_logits=True)
            loss += w.intent * replica_masked_mean(ce, has)
            hit = tf.equal(tf.argmax(out["intent_logits"], axis=-1, output_type=tf.int32), labels)
            self.intent_accuracy.update_state(tf.boolean_mask(tf.cast(hit, tf.float32), has))
        if SLOT_TAGS in features and w.slots > 0:
            logits = out["slot_logits"]
            tags = tf.cast(features[SLOT_TAGS], tf.int32)[:, : tf.shape(logits)[1]]
            tags = tf.pad(tags, [[0, 0], [0, tf.shape(logits)[1] - tf.shape(tags)[1]]], constant_values=-1)
            has = (tags >= 0) & (out["attention_mask"] > 0)
            ce = tf.keras.losses.sparse_categorical_crossentropy(tf.maximum(tags, 0), logits, from_logits=True)
            loss += w.slots * replica_masked_mean(ce, has)
            hit = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), tags)
            self.slot_accuracy.update_state(tf.boolean_mask(tf.cast(hit, tf.float32), has))
        replicas = replicas_in_sync()  # the loss is this replica's share: metrics record the global batch's
        if TITLE in features and w.embedding > 0:
            contrastive = self._contrastive_loss(out["embedding"], tf.reshape(features[TITLE], [-1]), training)
            self.embedding_loss.update_state(contrastive * replicas)
            loss += w.embedding * contrastive
        self.objective.update_state(loss * replicas)
        return loss

    def _contrastive_loss(self, query_embeddings: tf.Tensor, titles: tf.Tensor, training: bool) -> tf.Tensor:
        """In-batch softmax of each titled query over the titles of the whole (global) batch, accidental hits (the
        same title twice) removed; this replica's share of the mean over the global batch's titled queries."""
        has = tf.strings.length(titles) > 0
        queries = tf.boolean_mask(query_embeddings, has)
        titles = tf.boolean_mask(titles, has)
        candidates = tf.cond(tf.size(titles) > 0, lambda: self.embed(titles, training=training),
                             lambda: tf.zeros([0, tf.shape(query_embeddings)[1]], query_embeddings.dtype))
        candidates, ids = gather_local_first(candidates, tf.strings.to_hash_bucket_fast(titles, TITLE_ID_SPACE))
        total = tf.cond(  # every replica has gathered (a collective) before this; one may have no titled query
            tf.shape(queries)[0] > 0,
            lambda: tf.reduce_sum(self.retrieval_task(queries, candidates, candidate_ids=ids, compute_metrics=False)),
            lambda: tf.constant(0.0))
        return tf.math.divide_no_nan(total, global_sum(tf.cast(tf.shape(queries)[0], total.dtype)))

    def get_config(self):
        return {"config": dataclasses.asdict(self.config), "intents": self.intents}
