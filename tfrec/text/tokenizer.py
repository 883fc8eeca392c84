"""BertTokenizer: WordPiece tokenisation inside the TensorFlow graph, so SavedModels take raw query strings.

Built on the two halves of tensorflow-text's FastBertTokenizer (FastBertNormalizer + FastWordpieceTokenizer),
which give the same ids as Hugging Face's BertTokenizer(Fast) on the checkpoint's vocab.txt for ordinary text
(case, accents, punctuation, digits, CJK, emoji, empty strings). Known divergences, all rare in shop queries: HF
deletes control characters (TF splits on them), and TF's case folding also applies compatibility mappings HF does
not ('ß'→'ss', fullwidth 'Ｆ'→'f', ligature 'ﬁ'→'fi', subscripts).

Each wordpiece also gets the byte offsets [start, end) of the text it came from in the original UTF-8 string
(-1 for [CLS], [SEP] and padding), so a token tagger can map its tags back onto the query. They equal HF's
offsets except inside one character cluster: a Hangul syllable split into jamo pieces gives all but its last piece
an empty span, and a dropped zero-width, variation-selector or virama code point joins the neighbouring piece's span.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import tensorflow as tf
import tensorflow_text as tf_text

from tfrec.text.bert_checkpoint import BertCheckpoint

OUTPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "token_starts", "token_ends")


def read_vocab(path: Union[str, Path]) -> List[str]:
    """The tokens of a BERT vocab.txt, one per line, in id order (blank lines are tokens too, as in HF)."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


class BertTokenizer(tf.keras.layers.Layer):
    """Raw UTF-8 strings [batch] → BERT inputs padded to the longest row in the batch (not to a fixed 512).

    Why a layer: the tokenizer travels with the model into SavedModels and TF Serving, so clients send text and
    training and serving can never tokenise differently. Output dict (int32, [batch, T], T ≤ max_length):
    input_ids ([CLS] pieces [SEP], padded with [PAD]), attention_mask, token_type_ids (zeros), token_starts and
    token_ends (byte offsets into the input string; -1 for specials and padding). Rows longer than max_length lose
    their last wordpieces.
    """

    def __init__(
        self,
        vocab: Union[str, Sequence[str]],
        max_length: int = 32,
        do_lower_case: bool = True,
        strip_accents: Optional[bool] = None,
        max_bytes_per_word: int = 100,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if int(max_length) < 2:
            raise ValueError(f"max_length must be >= 2 (room for [CLS] and [SEP]), got {max_length}")
        # HF: strip_accents None means "strip when lower-casing". FastBertTokenizer only does both or neither.
        if strip_accents is not None and bool(strip_accents) != bool(do_lower_case):
            raise ValueError(
                f"do_lower_case={do_lower_case} with strip_accents={strip_accents} is not supported: the in-graph "
                f"tokenizer either lower-cases and strips accents (uncased models) or does neither (cased models)")
        self.vocab = vocab if isinstance(vocab, str) else list(vocab)
        self.max_length = int(max_length)
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents
        self.max_bytes_per_word = int(max_bytes_per_word)
        tokens = read_vocab(vocab) if isinstance(vocab, str) else list(vocab)
        self.vocab_size = len(tokens)
        index = {t: i for i, t in enumerate(tokens)}
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in index]
        if missing:
            where = vocab if isinstance(vocab, str) else "the vocabulary"
            raise ValueError(f"{where} lacks the special tokens {missing} that BERT inputs need")
        self.pad_id, self.cls_id, self.sep_id = index["[PAD]"], index["[CLS]"], index["[SEP]"]
        # FastBertTokenizer's two halves, so offsets map back with one flat gather: its own ragged batch gather
        # costs about a second of graph building on every trace (each SavedModel export traces several times).
        self._normalizer = tf_text.FastBertNormalizer(lower_case_nfd_strip_accents=self.do_lower_case)
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=tokens,
            suffix_indicator="##",
            max_bytes_per_word=self.max_bytes_per_word,
            token_out_type=tf.int32,
            unknown_token="[UNK]",
        )

    @classmethod
    def from_checkpoint(cls, checkpoint: BertCheckpoint, max_length: int = 32, **kwargs) -> "BertTokenizer":
        """The tokenizer matching a checkpoint: its vocab.txt and tokenizer_config.json's casing."""
        return cls(str(checkpoint.vocab_path), max_length=max_length, do_lower_case=checkpoint.do_lower_case,
                   strip_accents=checkpoint.strip_accents, **kwargs)

    def call(self, texts: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._tokenize(texts)

    @tf.autograph.experimental.do_not_convert  # plain tensor code: AutoGraph would only slow every trace down
    def _tokenize(self, texts: tf.Tensor) -> Dict[str, tf.Tensor]:
        texts = tf.reshape(tf.convert_to_tensor(texts, dtype=tf.string), [-1])
        ids, starts, ends = self._tokenize_with_offsets(texts)
        keep = self.max_length - 2
        ids, starts, ends = ids[:, :keep], starts[:, :keep], ends[:, :keep]
        # [CLS] tokens [SEP] padded, built densely: ragged concats would add shape checks to every call.
        lengths = tf.cast(ids.row_lengths(), tf.int32)  # wordpieces kept per row
        batch = tf.shape(lengths)[0]
        width = tf.reduce_max(tf.concat([lengths, [0]], 0)) + 2  # every row holds [CLS] [SEP]: width >= 2
        shape = tf.stack([tf.cast(batch, tf.int64), tf.cast(width - 2, tf.int64)])

        def framed(rows, first, last, pad):
            inner = rows.to_tensor(default_value=pad, shape=shape)
            column = tf.fill([batch, 1], tf.constant(pad, tf.int32))
            out = tf.concat([column, inner, column], axis=1)
            position = tf.range(width)[None, :]
            out = tf.where(tf.equal(position, 0), first, out)
            return tf.where(tf.equal(position, lengths[:, None] + 1), last, out)

        input_ids = framed(ids, self.cls_id, self.sep_id, self.pad_id)
        return {
            "input_ids": input_ids,
            "attention_mask": tf.cast(tf.range(width)[None, :] < lengths[:, None] + 2, tf.int32),
            "token_type_ids": tf.zeros_like(input_ids),
            "token_starts": framed(starts, -1, -1, -1),
            "token_ends": framed(ends, -1, -1, -1),
        }

    def _tokenize_with_offsets(self, texts: tf.Tensor):
        """Wordpiece ids [batch, (n)] with byte offsets into the original (not the normalised) strings."""
        normalized, offset_map = self._normalizer.normalize_with_offsets(texts)  # offset_map: [batch, (bytes + 1)]
        ids, starts, ends = self._wordpiece.tokenize_with_offsets(normalized)
        row_base = tf.gather(offset_map.row_starts(), ids.value_rowids())

        def to_original(offsets: tf.RaggedTensor) -> tf.RaggedTensor:
            flat = tf.gather(offset_map.flat_values, row_base + tf.cast(offsets.flat_values, row_base.dtype))
            return ids.with_flat_values(tf.cast(flat, tf.int32))

        return ids, to_original(starts), to_original(ends)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape([tf.TensorShape(input_shape)[0], None])
        return {key: shape for key in OUTPUT_KEYS}

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab=self.vocab,
            max_length=self.max_length,
            do_lower_case=self.do_lower_case,
            strip_accents=self.strip_accents,
            max_bytes_per_word=self.max_bytes_per_word,
        )
        return config
