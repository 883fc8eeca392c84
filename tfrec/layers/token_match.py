"""TokenMatch: how many words of an item field occur in the query, as a token a wide model can weight.

Crosses (query-term × brand) learn one weight per pair and need every pair in the training data; a match token
("query~brand=1/1": the one word of the brand is in the query) generalises to brands, colours and title words the
model never saw with that query. These are the classic lexical relevance features of e-commerce rankers.
"""

from __future__ import annotations

from typing import Dict, Sequence

import tensorflow as tf

from tfrec.features.ragged_rows import dense_rows, row_ids
from tfrec.features.tokens import MISSING, words_only
from tfrec.layers.hashed_linear import FINGERPRINT_SPACE

MAX_COUNT = 3
# 'matched/total' for every pair of capped counts, so a row's token is one gather (not two AsStrings and a join)
COUNT_TOKENS = tuple(f"{m}/{t}" for m in range(MAX_COUNT + 1) for t in range(MAX_COUNT + 1))


WORD_SPACE = FINGERPRINT_SPACE  # words are compared by 62-bit fingerprint: integer compares cost far less than strings


def _missing_id() -> tf.Tensor:
    return tf.strings.to_hash_bucket_fast(MISSING, WORD_SPACE)


def dense_words(values: tf.Tensor, max_tokens: int = 16) -> tf.Tensor:
    """Fingerprints of the lower-cased words of each row [batch, words] (the words of text features' tokenizer,
    `text_tokens`), padded with MISSING's. Each distinct value is tokenised once (the query repeats on every
    candidate row), and the words are scattered straight into the dense matrix: a fifth of the ops of going
    through ragged slicing and `to_tensor`."""
    distinct, rows = tf.unique(_strings(tf.reshape(values, [-1])))
    words = tf.strings.split(tf.strings.strip(words_only(distinct)))
    splits = tf.cast(words.row_splits, tf.int64)
    word_rows = row_ids(splits)
    column = tf.range(splits[-1]) - tf.gather(splits, word_rows)
    kept = tf.where(column < max_tokens)
    width = tf.minimum(tf.reduce_max(tf.concat([tf.maximum(splits[1:] - splits[:-1], 1), [0]], 0)), max_tokens)
    dense = tf.tensor_scatter_nd_update(
        tf.fill(tf.stack([tf.shape(distinct, out_type=tf.int64)[0], width]), _missing_id()),
        tf.concat([tf.gather(word_rows, kept), tf.gather(column, kept)], 1),
        tf.strings.to_hash_bucket_fast(tf.gather_nd(words.flat_values, kept), WORD_SPACE))
    return tf.gather(dense, rows)


def match_counts_of_words(q_dense: tf.Tensor, f_dense: tf.Tensor) -> tuple:
    """(matched, total) per row: how many words of the field occur among the query's words (MISSING = padding)."""
    missing = _missing_id()
    f_valid = f_dense != missing
    equal = tf.equal(q_dense[:, :, None], f_dense[:, None, :]) & (q_dense[:, :, None] != missing)
    found = tf.reduce_any(equal, axis=1) & f_valid
    total = tf.reduce_sum(tf.cast(f_valid, tf.int64), axis=1)
    return tf.reduce_sum(tf.cast(found, tf.int64), axis=1), total


class TokenMatch(tf.keras.layers.Layer):
    """For each (query_feature, field_feature) pair, one token 'query~field=<matched>/<total>' per example.

    Counts are capped at 3; a missing query or field gives '<name>=na'. Values are compared as lower-cased words,
    so 'Northwind' in a brand matches 'northwind' in a query.
    """

    def __init__(self, pairs: Sequence[Sequence[str]], **kwargs):
        kwargs.setdefault("dtype", "float32")  # preprocessing and wide sums stay float32 under mixed precision
        super().__init__(**kwargs)
        for pair in pairs:
            if len(pair) != 2:
                raise ValueError(f"a match pair names two features (query, field), got {list(pair)}")
        self.pairs = [list(p) for p in pairs]

    @property
    def token_names(self):
        """The name of each pair's match token feature, e.g. 'query~brand'."""
        return [match_name(p) for p in self.pairs]

    def call(self, features: Dict[str, tf.Tensor]) -> Dict[str, Dict[str, tf.RaggedTensor]]:
        out = {}
        # Tokenise each feature once, however many pairs it appears in (the query usually appears in all).
        words = {n: dense_words(features[n]) for n in dict.fromkeys(n for pair in self.pairs for n in pair)}
        blank = {n: tf.equal(tf.strings.strip(_strings(tf.reshape(features[n], [-1]))), "")
                 for n in dict.fromkeys(pair[0] for pair in self.pairs)}
        count_tokens = tf.constant(COUNT_TOKENS)
        for pair, name in zip(self.pairs, self.token_names):
            matched, total = match_counts_of_words(words[pair[0]], words[pair[1]])
            capped = tf.minimum(matched, MAX_COUNT) * (MAX_COUNT + 1) + tf.minimum(total, MAX_COUNT)
            token = tf.where(blank[pair[0]] | tf.equal(total, 0), "na", tf.gather(count_tokens, capped))
            out[name] = {"tokens": dense_rows(token[:, None])}
        return out

    def get_config(self):
        config = super().get_config()
        config["pairs"] = self.pairs
        return config


def match_name(pair: Sequence[str]) -> str:
    return f"{pair[0]}~{pair[1]}"


def _strings(values: tf.Tensor) -> tf.Tensor:
    return values if values.dtype == tf.string else tf.strings.as_string(values)
