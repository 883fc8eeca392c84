"""In-graph tokenisation of raw feature values, shared by vocabulary fitting and the models.

Vocabularies are fitted by running these same TensorFlow functions over the training column, so the tokens a model
sees at serving time are by construction the tokens its vocabulary was built from.
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.features.ragged_rows import dense_rows, row_ids
from tfrec.features.spec import FeatureConfig

MISSING = "<missing>"
OOV = "<oov>"
_NON_WORD = r"[^\pL\pN]+"


def _as_string(values: tf.Tensor) -> tf.Tensor:
    return values if values.dtype == tf.string else tf.strings.as_string(values)


def _fill_missing(tokens: tf.RaggedTensor) -> tf.RaggedTensor:
    """Rows with no token get the single token MISSING, so 'absent' is itself something a model can learn. (Every
    ragged tensor here is built with validate=False: its splits are valid by construction, and the checks cost
    trace time in every model.) Each value moves to its row's new start plus its offset in the row; an empty row's
    one slot keeps the MISSING it was filled with: a dozen ops, where a ragged concat takes about fifty."""
    splits = tf.cast(tokens.row_splits, tf.int64)
    new_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(tf.maximum(splits[1:] - splits[:-1], 1))], 0)
    values = tokens.flat_values
    rows = row_ids(splits)
    slots = tf.range(tf.shape(values, out_type=tf.int64)[0]) + tf.gather(new_splits[:-1] - splits[:-1], rows)
    filled = tf.tensor_scatter_nd_update(tf.fill([new_splits[-1]], MISSING), slots[:, None], values)
    return tf.RaggedTensor.from_row_splits(filled, new_splits, validate=False)


def categorical_tokens(values: tf.Tensor) -> tf.RaggedTensor:
    """One token per value; the empty string counts as missing."""
    strings = _as_string(values)
    tokens = tf.where(tf.strings.length(strings) > 0, strings, MISSING)
    return tf.RaggedTensor.from_row_lengths(tokens, tf.ones_like(tokens, tf.int64), validate=False)


def path_tokens(values: tf.Tensor, separator: str = ">", max_depth: int = 16) -> tf.RaggedTensor:
    """All prefixes of a hierarchical path: 'A > B > C' gives 'A', 'A>B', 'A>B>C' (levels beyond max_depth dropped).
    Built from index arithmetic on the split levels (about a quarter of the ops of ragged masks and slices)."""
    levels = tf.strings.split(values, sep=separator)
    flat = tf.strings.strip(levels.flat_values)
    splits = tf.cast(levels.row_splits, tf.int64)
    rows = row_ids(splits)
    kept = tf.cast(tf.strings.length(flat) > 0, tf.int64)
    kept_before = tf.cumsum(kept, exclusive=True)  # kept levels before each level, over the whole batch
    row_first = tf.gather(tf.concat([kept_before, tf.reduce_sum(kept, keepdims=True)], 0), splits[:-1])
    depth = kept_before - tf.gather(row_first, rows)
    keep = (kept > 0) & (depth < max_depth)
    kept_at = tf.reshape(tf.where(keep), [-1])
    flat, rows, depth = tf.gather(flat, kept_at), tf.gather(rows, kept_at), tf.gather(depth, kept_at)
    # Prefix of kept level i: the levels of its row from the row's first kept one (at i - depth) up to i, joined.
    pieces = tf.where(depth == 0, flat, tf.strings.join([">", flat]))
    offsets = tf.range(tf.reduce_max(tf.concat([depth, [-1]], 0)) + 1)  # 0 .. the deepest level in the batch
    position = tf.range(tf.shape(flat, out_type=tf.int64)[0])[:, None]
    take = tf.minimum(position - depth[:, None] + offsets[None, :], position)
    parts = tf.where(offsets[None, :] <= depth[:, None], tf.gather(pieces, take), "")
    n_rows = tf.shape(splits, out_type=tf.int64)[0] - 1
    counts = tf.math.unsorted_segment_sum(tf.ones_like(rows), rows, n_rows)
    prefix_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(counts)], 0)
    prefixes = tf.strings.reduce_join(parts, axis=1)
    return _fill_missing(tf.RaggedTensor.from_row_splits(prefixes, prefix_splits, validate=False))


def words_only(values: tf.Tensor) -> tf.Tensor:
    """Lower-cased text with every run of non-letters/digits replaced by one space (what text tokens split)."""
    return tf.strings.regex_replace(tf.strings.lower(values, encoding="utf-8"), _NON_WORD, " ")


def text_tokens(values: tf.Tensor, max_tokens: int = 16, char_ngrams: int = 0) -> tf.RaggedTensor:
    """Lower-cased word tokens (letters and digits, Unicode-aware), at most `max_tokens` words per row, each word
    followed by its character n-grams when `char_ngrams` > 0 ('#' marks word edges: 'drill' → '#dr', 'dri', ...)."""
    words = tf.strings.split(tf.strings.strip(words_only(values)))[:, :max_tokens]
    if char_ngrams:
        chars = tf.strings.unicode_split(tf.strings.join(["#", words.flat_values, "#"]), "UTF-8")
        grams = tf.strings.ngrams(chars, char_ngrams, separator="")  # [n_words, None]; short words give none
        per_word = tf.concat([tf.expand_dims(words.flat_values, 1), grams], axis=1)
        words = tf.RaggedTensor.from_row_splits(per_word.flat_values, tf.gather(per_word.row_splits, words.row_splits),
                                                validate=False)
    return _fill_missing(words)


def sequence_tokens(values: tf.Tensor, max_tokens: int = 16) -> tf.RaggedTensor:
    """The newest `max_tokens` whitespace-separated ids of each row, oldest first (order is kept for pooling)."""
    ids = tf.strings.split(tf.strings.strip(values))
    return _fill_missing(ids[:, -max_tokens:])


def timestamp_tokens(values: tf.Tensor) -> tf.RaggedTensor:
    """Hour of day ('h0'..'h23') and day of week ('d0'=Monday..'d6'), both UTC."""
    seconds = tf.cast(values, tf.int64)
    hour = tf.math.floormod(tf.math.floordiv(seconds, 3600), 24)
    weekday = tf.math.floormod(tf.math.floordiv(seconds, 86400) + 3, 7)  # 1970-01-01 was a Thursday (3)
    dense = tf.stack([tf.strings.join(["h", tf.strings.as_string(hour)]), tf.strings.join(["d", tf.strings.as_string(weekday)])], 1)
    return dense_rows(dense)


def numeric_values(values: tf.Tensor, feature: FeatureConfig) -> tf.Tensor:
    """The transformed (not yet standardised) float value; NaN stays NaN so callers can treat it as missing."""
    x = tf.cast(values, tf.float32)
    if feature.transform == "log1p":
        x = tf.math.log1p(tf.maximum(x, 0.0))
    return x


def bucket_ids(transformed: tf.Tensor, boundaries) -> tf.RaggedTensor:
    """The bucket index as an id in [0, len(boundaries)]; NaN (missing) gets its own id len(boundaries) + 1."""
    index = tf.searchsorted(tf.constant(boundaries, tf.float32), tf.reshape(transformed, [-1]), side="right")
    index = tf.where(tf.math.is_nan(tf.reshape(transformed, [-1])), len(boundaries) + 1, index)
    index = tf.cast(index, tf.int64)
    return tf.RaggedTensor.from_row_lengths(index, tf.ones_like(index), validate=False)


def bucket_tokens(transformed: tf.Tensor, boundaries) -> tf.RaggedTensor:
    """'b<i>' for the bucket the value falls in; NaN gives MISSING."""
    index = tf.searchsorted(tf.constant(boundaries, tf.float32), tf.reshape(transformed, [-1]), side="right")
    tokens = tf.strings.join(["b", tf.strings.as_string(index)])
    tokens = tf.where(tf.math.is_nan(transformed), MISSING, tokens)
    return tf.RaggedTensor.from_row_lengths(tokens, tf.ones_like(index, tf.int64), validate=False)


def raw_tokens(values: tf.Tensor, feature: FeatureConfig) -> tf.RaggedTensor:
    """Tokens of a categorical, path, text or timestamp feature before any vocabulary is applied."""
    if feature.kind == "categorical":
        return categorical_tokens(values)
    if feature.kind == "path":
        return path_tokens(values, feature.separator, feature.max_tokens)
    if feature.kind == "text":
        return text_tokens(values, feature.max_tokens, feature.char_ngrams)
    if feature.kind == "sequence":
        return sequence_tokens(values, feature.max_tokens)
    if feature.kind == "timestamp":
        return timestamp_tokens(values)
    raise ValueError(f"feature {feature.name!r} of kind {feature.kind!r} has no raw tokens")
