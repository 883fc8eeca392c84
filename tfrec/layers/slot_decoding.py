"""Turns per-wordpiece BIO slot tags into structured filters inside the graph, so the exported query-understanding
model answers "red nike shoes under $80" with brand='nike', color='red', price_max=80.0 from raw strings alone.

For each slot the first tagged span wins (for price_max the last one, as ranges name the upper limit second; a
lower limit above the upper one swaps the two, as `tfrec.text.slots.filters_from_spans` does): a span starts at
the first token tagged B-slot (or I-slot, when the tagger skipped the B) and runs over the following I-slot tokens; its text is the byte range of those wordpieces in the
original query (`token_starts`/`token_ends` from the tokenizer), so casing and spelling are the shopper's own.
Prices are read from their span's digits; gender spans are normalised to men / women / kids.
"""

from __future__ import annotations

from typing import Dict, Sequence

import tensorflow as tf

from tfrec.text.slots import BIO_TAGS, GENDER_FORMS, SLOT_NAMES

PRICE_SLOTS = ("price_min", "price_max")


def _first_span(tags: tf.Tensor, begin: int, inside: int):
    """(has_span [b], first token [b], last token [b]) of the first span tagged begin/inside in each row."""
    length = tf.shape(tags)[1]
    positions = tf.range(length)[None, :]
    is_begin, in_span = tf.equal(tags, begin), tf.equal(tags, begin) | tf.equal(tags, inside)
    has = tf.reduce_any(in_span, axis=1)
    first = tf.argmax(tf.cast(in_span, tf.int32), axis=1, output_type=tf.int32)
    after = positions > first[:, None]
    stops = after & (~in_span | is_begin)  # the span ends before the next non-slot token or the next B-
    stop_any = tf.reduce_any(stops, axis=1)
    stop_at = tf.argmax(tf.cast(stops, tf.int32), axis=1, output_type=tf.int32)
    last = tf.where(stop_any, stop_at - 1, length - 1)
    return has, first, last


def _last_span(tags: tf.Tensor, begin: int, inside: int):
    """(has_span [b], first token [b], last token [b]) of the last span tagged begin/inside in each row."""
    length = tf.shape(tags)[1]
    positions = tf.range(length)[None, :]
    is_begin, in_span = tf.equal(tags, begin), tf.equal(tags, begin) | tf.equal(tags, inside)
    has = tf.reduce_any(in_span, axis=1)
    last = tf.reduce_max(tf.where(in_span, positions, -1), axis=1)
    previous_in = tf.pad(in_span[:, :-1], [[0, 0], [1, 0]])
    opens = is_begin | (in_span & ~previous_in)
    first = tf.reduce_max(tf.where(opens & (positions <= last[:, None]), positions, -1), axis=1)
    return has, tf.maximum(first, 0), tf.maximum(last, 0)


def _gender_pattern(target: str) -> str:
    forms = sorted({f.lower() for f in GENDER_FORMS[target]}, key=len, reverse=True)
    return "(?i)(" + "|".join(tf.compat.as_str(f).replace("'", "'?").replace(".", r"\.") for f in forms) + ")"


class SlotDecoder(tf.keras.layers.Layer):
    """(queries, tag ids [b, T], token byte offsets [b, T]) -> {slot: string span text or float price}.

    Tags of tokens with a negative start offset ([CLS], [SEP], padding) are ignored. Missing slots are '' (strings)
    or NaN (prices)."""

    def __init__(self, tags: Sequence[str] = BIO_TAGS, **kwargs):
        super().__init__(**kwargs)
        self.tags = list(tags)
        index = {t: i for i, t in enumerate(self.tags)}
        missing = [f"{p}-{s}" for s in SLOT_NAMES for p in "BI" if f"{p}-{s}" not in index]
        if missing or "O" not in index:
            raise ValueError(f"tag set lacks {missing or ['O']}")
        self._ids = {s: (index[f"B-{s}"], index[f"I-{s}"]) for s in SLOT_NAMES}
        self._outside = index["O"]

    def call(self, queries, tag_ids, token_starts, token_ends) -> Dict[str, tf.Tensor]:
        queries = tf.reshape(queries, [-1])
        tag_ids = tf.where(token_starts >= 0, tf.cast(tag_ids, tf.int32), self._outside)
        out = {}
        for slot in SLOT_NAMES:
            # An upper limit is the last price tagged as one: "between 40 and 50", "$40-$60" name it second.
            find = _last_span if slot == "price_max" else _first_span
            has, first, last = find(tag_ids, *self._ids[slot])
            start = tf.gather(token_starts, first, batch_dims=1)
            end = tf.gather(token_ends, last, batch_dims=1)
            length = tf.maximum(end - start, 0)
            text = tf.strings.substr(queries, tf.where(has, start, 0), tf.where(has, length, 0))
            text = tf.where(has, text, "")
            if slot in PRICE_SLOTS:
                digits = tf.strings.regex_replace(text, r"[^0-9.]", "")
                digits = tf.strings.regex_replace(digits, r"^\.+|\.+$", "")
                valid = tf.strings.regex_full_match(digits, r"[0-9]+(\.[0-9]+)?")
                out[slot] = tf.where(valid, tf.strings.to_number(tf.where(valid, digits, "0"), tf.float32),
                                     float("nan"))
            elif slot == "gender":
                normalised = tf.fill(tf.shape(text), "")
                for target in GENDER_FORMS:
                    hit = tf.strings.regex_full_match(tf.strings.strip(text), _gender_pattern(target))
                    normalised = tf.where(hit & (normalised == ""), target, normalised)
                out[slot] = tf.where(normalised == "", tf.strings.lower(text), normalised)
            else:
                out[slot] = text
        low, high = out["price_min"], out["price_max"]
        swap = low > high  # False when either is NaN
        out["price_min"], out["price_max"] = tf.where(swap, high, low), tf.where(swap, low, high)
        return out

    def get_config(self):
        return {**super().get_config(), "tags": self.tags}
