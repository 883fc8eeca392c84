"""BertEncoder: raw query strings → BERT token states and a sentence embedding, all in one tf-keras layer.

The embedding is the sentence-transformers recipe all-MiniLM-L6-v2 was trained with: the mean of the last layer's
token states over the attention mask ([CLS] and [SEP] included, padding excluded), L2-normalised, so cosine
similarity is a dot product and padding a query inside a batch does not change its embedding.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import tensorflow as tf

from tfrec.text.bert_checkpoint import (
    BertCheckpoint, check_layer_selection, checkpoint_layer_count, load_bert_model, resolve_checkpoint,
)
from tfrec.text.tokenizer import BertTokenizer


def masked_mean_embedding(sequence_output: tf.Tensor, attention_mask: tf.Tensor) -> tf.Tensor:
    """L2-normalised mean of the token states where attention_mask is 1: [b, T, H], [b, T] → [b, H].

    Why masked: the mean must not depend on how far a row was padded; an all-zero mask gives a zero vector.
    """
    states = tf.cast(sequence_output, tf.float32)
    mask = tf.cast(attention_mask, tf.float32)[:, :, tf.newaxis]
    summed = tf.reduce_sum(states * mask, axis=1)
    count = tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
    return tf.math.l2_normalize(summed / count, axis=-1, epsilon=1e-24)


class BertEncoder(tf.keras.layers.Layer):
    """Tokenises raw strings in the graph and runs a BERT checkpoint over them (see module docstring).

    Why one layer: query-understanding models (embedding, token tagging) share the tokenizer, the transformer and
    the byte offsets, and export to a SavedModel whose signature takes tf.string.

    checkpoint: a Hugging Face BERT directory, a resolved BertCheckpoint, or None for the packaged all-MiniLM-L6-v2
      (random stand-in with a warning when the package is missing; see `resolve_checkpoint`).
    max_length: wordpieces per query including [CLS] and [SEP]; longer queries are truncated.
    trainable_layers: how many of the top transformer layers train; embeddings and lower layers are frozen.
      -1 trains everything (embeddings included), 0 freezes the whole encoder.
    dropout: overrides the checkpoint's hidden and attention dropout rates (None keeps them); dropout is active
      only when the layer is called with training=True.
    layers: checkpoint transformer layer indices to keep (distinct, ascending), e.g. [0, 2, 4] of a 6-layer model
      for a faster encoder; None keeps every layer. `trainable_layers` then counts the kept layers.

    Output dict: sequence_output [b, T, H] float32, embedding [b, H] (unit norm), attention_mask, input_ids,
    token_starts, token_ends [b, T] int32.
    """

    def __init__(
        self,
        checkpoint: Union[str, BertCheckpoint, None] = None,
        max_length: int = 32,
        trainable_layers: int = -1,
        dropout: Optional[float] = None,
        sha256: Optional[str] = None,
        layers: Optional[Sequence[int]] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(checkpoint, BertCheckpoint):
            resolved = checkpoint
            self.checkpoint = None if checkpoint.is_fallback else str(checkpoint.directory)
        else:
            resolved = resolve_checkpoint(checkpoint, sha256=sha256)
            self.checkpoint = None if checkpoint is None else str(checkpoint)
        if dropout is not None and not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        selection = None if layers is None else check_layer_selection(layers, checkpoint_layer_count(resolved))
        num_layers = checkpoint_layer_count(resolved) if selection is None else len(selection)
        if int(trainable_layers) < -1 or int(trainable_layers) > num_layers:
            raise ValueError(
                f"trainable_layers must be -1 (all) or 0..{num_layers} (the encoder has {num_layers} layers), "
                f"got {trainable_layers}")
        self.sha256 = sha256
        self.encoder_layers = None if selection is None else tuple(selection)  # a tuple: Keras tracks lists
        self.max_length = int(max_length)
        self.trainable_layers = int(trainable_layers)
        self.dropout = None if dropout is None else float(dropout)
        self.is_fallback = resolved.is_fallback
        max_positions = int(resolved.config.get("max_position_embeddings", 512))
        if self.max_length > max_positions:
            raise ValueError(f"max_length {self.max_length} exceeds the checkpoint's max_position_embeddings "
                             f"{max_positions}")
        overrides = {}
        if self.dropout is not None:
            overrides = {"hidden_dropout_prob": self.dropout, "attention_probs_dropout_prob": self.dropout}
        self.tokenizer = BertTokenizer.from_checkpoint(resolved, max_length=self.max_length, name="tokenizer")
        # the TFBertMainLayer: weights without the HF wrapper
        self.bert = load_bert_model(resolved, overrides, selection).bert
        self.hidden_size = int(resolved.config["hidden_size"])
        self._freeze(num_layers)

    def _freeze(self, num_layers: int) -> None:
        self.bert.pooler.trainable = False  # mean pooling never uses it; trainable it would only get no gradients
        if self.trainable_layers == -1:
            return
        self.bert.embeddings.trainable = False
        first_trainable = num_layers - self.trainable_layers
        for i, layer in enumerate(self.bert.encoder.layer):
            layer.trainable = i >= first_trainable

    def call(self, texts: tf.Tensor, training=None) -> Dict[str, tf.Tensor]:
        return self._forward(texts, training)

    # The encoder has no data-dependent Python control flow, and AutoGraph-converting transformers' BERT code
    # makes every trace (a SavedModel export traces several times) about 4x slower.
    @tf.autograph.experimental.do_not_convert
    def _forward(self, texts: tf.Tensor, training) -> Dict[str, tf.Tensor]:
        tokens = self.tokenizer(texts)
        batch = tf.shape(tokens["input_ids"])[0]
        # transformers' reshapes cannot infer sizes in an empty batch: run one all-padding row then and drop it.
        extra = [[0, tf.maximum(1 - batch, 0)], [0, 0]]
        outputs = self.bert(
            input_ids=tf.pad(tokens["input_ids"], extra, constant_values=self.tokenizer.pad_id),
            attention_mask=tf.pad(tokens["attention_mask"], extra),
            token_type_ids=tf.pad(tokens["token_type_ids"], extra),
            training=training,
        )
        sequence_output = tf.cast(outputs.last_hidden_state, tf.float32)[:batch]
        return {
            "sequence_output": sequence_output,
            "embedding": masked_mean_embedding(sequence_output, tokens["attention_mask"]),
            "attention_mask": tokens["attention_mask"],
            "input_ids": tokens["input_ids"],
            "token_starts": tokens["token_starts"],
            "token_ends": tokens["token_ends"],
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            checkpoint=self.checkpoint,
            max_length=self.max_length,
            trainable_layers=self.trainable_layers,
            dropout=self.dropout,
            sha256=self.sha256,
            layers=None if self.encoder_layers is None else list(self.encoder_layers),
        )
        return config
