"""SlotDecoder turns BIO tags on wordpieces into filters in the graph, matching the Python reference decoder."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.slot_decoding import SlotDecoder
from tfrec.text.slots import TAG_IDS, bio_to_spans, filters_from_spans


def _tokens(text):
    """Whitespace tokens with byte offsets, plus [CLS]/[SEP] (offset -1) around them, as the tokenizer gives."""
    starts, ends, pos = [-1], [-1], 0
    for word in text.split(" "):
        starts.append(len(text[:pos].encode()))
        ends.append(len(text[: pos + len(word)].encode()))
        pos += len(word) + 1
    return starts + [-1], ends + [-1]


def _tags(words_tags):
    return [TAG_IDS["O"]] + [TAG_IDS[t] for t in words_tags] + [TAG_IDS["O"]]


CASES = [
    ("Nike red running shoes mens under $80", ["B-brand", "B-color", "O", "O", "B-gender", "O", "B-price_max"]),
    ("sofas between 200 and 450", ["O", "O", "B-price_min", "O", "B-price_max"]),
    ("Calvin Klein navy blue jacket womens", ["B-brand", "I-brand", "B-color", "I-color", "O", "B-gender"]),
    ("café crème mug", ["B-color", "I-color", "O"]),  # multi-byte characters
    ("plain query", ["O", "O"]),
    ("kids bike over 99.50", ["B-gender", "O", "O", "I-price_min"]),  # an I- without B- still opens a span
]


def _batch(cases):
    width = max(len(t) for _, t in cases) + 2
    starts = np.full((len(cases), width), -1)
    ends = np.full((len(cases), width), -1)
    tags = np.zeros((len(cases), width), dtype=np.int32)
    for i, (text, word_tags) in enumerate(cases):
        s, e = _tokens(text)
        starts[i, : len(s)], ends[i, : len(e)] = s, e
        tags[i, : len(s)] = _tags(word_tags)
    return starts, ends, tags


def test_decoder_extracts_the_tagged_text_and_prices():
    starts, ends, tags = _batch(CASES)
    out = SlotDecoder()(tf.constant([c[0] for c in CASES]), tf.constant(tags), tf.constant(starts), tf.constant(ends))
    text = {k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().tolist()] for k, v in out.items()}
    assert text["brand"] == ["Nike", "", "Calvin Klein", "", "", ""]
    assert text["color"] == ["red", "", "navy blue", "café crème", "", ""]
    assert text["gender"] == ["men", "", "women", "", "", "kids"]
    np.testing.assert_allclose(text["price_max"], [80, 450, np.nan, np.nan, np.nan, np.nan])
    np.testing.assert_allclose(text["price_min"], [np.nan, 200, np.nan, np.nan, np.nan, 99.5])
    assert text["size"] == [""] * 6 and text["material"] == [""] * 6


@pytest.mark.parametrize("case", range(len(CASES)))
def test_decoder_agrees_with_the_python_reference(case):
    starts, ends, tags = _batch([CASES[case]])
    query = CASES[case][0]
    out = SlotDecoder()(tf.constant([query]), tf.constant(tags), tf.constant(starts), tf.constant(ends))
    valid = starts[0] >= 0
    spans = bio_to_spans(starts[0][valid], ends[0][valid], tags[0][valid])
    byte_query = query.encode()
    char_spans = [(len(byte_query[:s].decode()), len(byte_query[:e].decode()), slot) for s, e, slot in spans]
    want = filters_from_spans(query, char_spans)
    for slot in ("brand", "size"):
        assert out[slot].numpy()[0].decode() == want.get(slot, "")
    for slot in ("color", "material"):
        assert out[slot].numpy()[0].decode().lower() == want.get(slot, "")
    assert out["gender"].numpy()[0].decode() == want.get("gender", "")
    for slot in ("price_min", "price_max"):
        got = float(out[slot].numpy()[0])
        assert (np.isnan(got) and slot not in want) or got == pytest.approx(want[slot]), (slot, got, want)


def test_decoder_rejects_a_tag_set_without_every_slot():
    with pytest.raises(ValueError, match="B-brand"):
        SlotDecoder(tags=["O", "I-brand"])


def test_decoder_survives_saving(tmp_path):
    starts, ends, tags = _batch(CASES[:1])
    decoder = SlotDecoder()
    module = tf.Module()
    module.decoder = decoder
    module.f = tf.function(lambda q, t, s, e: decoder(q, t, s, e), input_signature=[
        tf.TensorSpec([None], tf.string), tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([None, None], tf.int64)])
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    out = loaded.f(tf.constant([CASES[0][0]]), tf.constant(tags), tf.constant(starts), tf.constant(ends))
    assert out["brand"].numpy()[0] == b"Nike" and float(out["price_max"].numpy()[0]) == 80.0


def test_price_max_takes_the_last_tagged_span():
    cases = [("lamps between 40 and 50", ["O", "O", "B-price_max", "O", "B-price_max"]),
             ("rug 1 299 max", ["O", "B-price_max", "I-price_max", "O"])]
    starts, ends, tags = _batch(cases)
    out = SlotDecoder()(tf.constant([c[0] for c in cases]), tf.constant(tags), tf.constant(starts), tf.constant(ends))
    np.testing.assert_allclose(out["price_max"].numpy(), [50.0, 1299.0])


@pytest.mark.parametrize("query,tags,low,high", [
    ("lamps between 40 and 50", ["O", "O", "B-price_max", "O", "B-price_max"], None, 50.0),
    ("desk over 300 under 100", ["O", "O", "B-price_min", "O", "B-price_max"], 100.0, 300.0),
    ("chair over 20 over 30", ["O", "O", "B-price_min", "O", "B-price_min"], 20.0, None),
])
def test_several_price_limits_resolve_the_same_in_graph_and_in_python(query, tags, low, high):
    starts, ends, tag_ids = _batch([(query, tags)])
    out = SlotDecoder()(tf.constant([query]), tf.constant(tag_ids), tf.constant(starts), tf.constant(ends))
    valid = starts[0] >= 0
    want = filters_from_spans(query, bio_to_spans(starts[0][valid], ends[0][valid], tag_ids[0][valid]))
    assert want.get("price_min") == low and want.get("price_max") == high
    for slot, value in (("price_min", low), ("price_max", high)):
        got = float(out[slot].numpy()[0])
        assert (value is None and np.isnan(got)) or got == value, (slot, got)
