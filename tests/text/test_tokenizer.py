"""The in-graph BertTokenizer: id parity with Hugging Face's tokenizers, byte offsets, tf.function and SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

import tfrec  # noqa: F401
from tfrec.text import bert_checkpoint as bc
from tfrec.text.tokenizer import BertTokenizer

LONG = ("Stainless steel kitchen sink, 33\" x 22\" double bowl; café-style faucet (chrome) — 18v DW087K laser "
        "level, 3/4\" PEX fittings & 100% cotton towels! ") * 9
CORPUS = [
    "red running shoes for men", "Men's Red Running Sneakers", "STAINLESS STEEL KITCHEN SINK", "iPhone 15 Pro Max",
    "café", "naïve résumé", "Ångström", "crème brûlée", "Señor Frío", "Zoë's Ñandú",
    "“smart quotes” and ‘single’ ones", "$49.99", "50% off", "t-shirt", "1/2 inch", "kids' toys", "rock & roll",
    "(new) [sale] {promo}", "a.b,c;d:e!f?g", "#1 best-seller @home", "under $80*", "e-mail~tilde^caret|pipe",
    "DW087K", "18v", "3/4\"", "2x4 lumber 8ft", "Model XR-2000/B", "1,000.50", "4K UHD 65\" TV",
    "中文", "日本語のキーボード", "한국어", "中文 keyboard 日本", "Москва", "Ελληνικά", "مرحبا", "हिन्दी",
    "I ❤️ pizza 🍕", "👟👟", "smile 😀 ok",
    "", " ", "   \t  \n ", "x", "a b", "  leading and trailing  ", "multiple   internal    spaces",
    "\u00a0non\u00a0breaking", "zero\u200bwidth", "İstanbul",
    LONG[:1000],
]


def _checkpoints():
    params = [pytest.param("fallback", id="fallback-vocab")]
    reason = f"{bc.PACKAGE_NAME} not installed ({bc.INSTALL_HINT})"
    params.append(pytest.param("packaged", id="minilm-vocab", marks=pytest.mark.skipif(
        bc.packaged_model_dir() is None, reason=reason)))
    return params


@pytest.fixture(scope="module", params=_checkpoints())
def setup(request):
    """(our tokenizer factory, HF fast tokenizer, HF slow tokenizer) on one vocab.txt, no download."""
    from transformers import BertTokenizer as HFSlow
    from transformers import BertTokenizerFast as HFFast

    ckpt = bc.fallback_checkpoint() if request.param == "fallback" else bc.resolve_checkpoint(None)
    fast = HFFast(vocab_file=str(ckpt.vocab_path), do_lower_case=ckpt.do_lower_case)
    slow = HFSlow(vocab_file=str(ckpt.vocab_path), do_lower_case=ckpt.do_lower_case)
    return (lambda max_length: BertTokenizer.from_checkpoint(ckpt, max_length=max_length)), fast, slow


@pytest.mark.parametrize("max_length", [32, 512])
def test_ids_and_masks_match_transformers(setup, max_length):
    make, fast, slow = setup
    ours = {k: v.numpy() for k, v in make(max_length)(tf.constant(CORPUS)).items()}
    want = fast(CORPUS, padding="longest", truncation=True, max_length=max_length, return_tensors="np")
    assert ours["input_ids"].shape == want["input_ids"].shape  # padded to the batch's longest row, no further
    np.testing.assert_array_equal(ours["input_ids"], want["input_ids"])
    np.testing.assert_array_equal(ours["attention_mask"], want["attention_mask"])
    np.testing.assert_array_equal(ours["token_type_ids"], want["token_type_ids"])
    for text, row in zip(CORPUS, ours["input_ids"]):  # the slow (reference Python) tokenizer agrees too
        assert list(row[row != 0]) == slow(text, truncation=True, max_length=max_length)["input_ids"], text
    if max_length == 32:
        assert ours["input_ids"].shape[1] == 32 and ours["input_ids"][-1, -1] == fast.sep_token_id


# Rows whose offsets differ from HF inside one character cluster (ids still match): TF gives Hangul jamo pieces
# before a syllable's last one an empty span, and folds a dropped zero-width/variation/virama code point into the
# piece next to it.
OFFSET_DIVERGENCES = {"한국어", "हिन्दी", "I ❤️ pizza 🍕", "zero\u200bwidth"}


def test_byte_offsets_match_transformers(setup):
    make, fast, _ = setup
    ours = make(64)(tf.constant(CORPUS))
    starts, ends, ids = ours["token_starts"].numpy(), ours["token_ends"].numpy(), ours["input_ids"].numpy()
    want = fast(CORPUS, truncation=True, max_length=64, return_offsets_mapping=True)
    exact = 0
    for i, text in enumerate(CORPUS):
        specials = np.isin(ids[i], [fast.cls_token_id, fast.sep_token_id]) | (ids[i] == 0)
        assert (starts[i][specials] == -1).all() and (ends[i][specials] == -1).all()
        got = list(zip(starts[i][~specials].tolist(), ends[i][~specials].tolist()))
        size = len(text.encode("utf-8"))
        assert all(0 <= a <= b <= size for a, b in got), text
        assert [a for a, _ in got] == sorted(a for a, _ in got), text

        def to_bytes(char_offset):
            return len(text[:char_offset].encode("utf-8"))

        hf = [(to_bytes(a), to_bytes(b)) for a, b in want["offset_mapping"][i]][1:-1]
        if text in OFFSET_DIVERGENCES:
            assert len(got) == len(hf) and got[-1][1] == hf[-1][1], text
        else:
            assert got == hf, text
            exact += len(got)
    assert exact > 200
    text = "Men's Red café"
    ours = make(16)(tf.constant([text]))
    pieces = [text.encode()[s:e].decode() for s, e in
              zip(ours["token_starts"][0].numpy()[1:-1], ours["token_ends"][0].numpy()[1:-1])]
    assert "".join(pieces) == text.replace(" ", "") and all(pieces)  # wordpieces tile the words exactly


def test_in_tf_function_and_saved_model(tmp_path):
    ckpt = bc.resolve_checkpoint(None) if bc.packaged_model_dir() else bc.fallback_checkpoint()
    tokenizer = BertTokenizer.from_checkpoint(ckpt, max_length=32)
    module = tf.Module()
    module.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(texts):
        return tokenizer(texts)

    module.tokenize = tokenize
    batch = tf.constant(CORPUS[:12] + ["", LONG[:1000]])
    eager = tokenizer(batch)
    tf.saved_model.save(module, str(tmp_path / "tok"), signatures={"serving_default": tokenize})
    reloaded = tf.saved_model.load(str(tmp_path / "tok"))
    for out in (tokenize(batch), reloaded.tokenize(batch), reloaded.signatures["serving_default"](texts=batch)):
        assert set(out) == set(eager)
        for key in eager:
            assert out[key].dtype == tf.int32
            np.testing.assert_array_equal(out[key].numpy(), eager[key].numpy(), err_msg=key)


def test_dynamic_length_and_edge_batches(setup):
    make, _, _ = setup
    tokenizer = make(32)
    out = tokenizer(tf.constant(["", "  "]))
    np.testing.assert_array_equal(out["input_ids"].numpy()[:, 1] > 0, [True, True])
    assert out["input_ids"].shape == (2, 2)  # just [CLS] [SEP]
    assert tokenizer(tf.constant([["red shoes"], ["a"]]))["input_ids"].shape[0] == 2  # [b, 1] accepted
    assert tokenizer(tf.constant([], tf.string))["input_ids"].shape == (0, 2)


def test_config_round_trip_and_errors(setup, tmp_path):
    make, _, _ = setup
    tokenizer = make(20)
    clone = BertTokenizer.from_config(tokenizer.get_config())
    batch = tf.constant(["Red Shoes", "café DW087K"])
    np.testing.assert_array_equal(clone(batch)["input_ids"].numpy(), tokenizer(batch)["input_ids"].numpy())
    assert clone.max_length == 20 and not clone.trainable
    with pytest.raises(ValueError, match="max_length"):
        BertTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]"], max_length=1)
    with pytest.raises(ValueError, match=r"\[SEP\]"):
        BertTokenizer(["[PAD]", "[UNK]", "[CLS]", "a"])
    with pytest.raises(ValueError, match="strip_accents"):
        BertTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]"], do_lower_case=True, strip_accents=False)
