"""Query slots as character spans: structured filters from tagged spans, and BIO tags over tokenizer offsets.

A slot is a `(start, end, slot)` character span of the query string (`query[start:end]` is the slot's text), so
labels do not depend on any tokenizer. A token tagger sees them as BIO tags: `spans_to_bio` maps spans onto the
offsets of whatever tokens the model uses (the first token of a span gets `B-slot`, the following ones `I-slot`) and
`bio_to_spans` maps predicted tags back to spans, which `filters_from_spans` turns into structured filters
(brand, colour, size, gender, material, price limits).

Offsets: Python string indices are characters, while tensorflow-text wordpiece offsets are UTF-8 *bytes*; convert
with `char_spans_to_byte_spans` / `byte_spans_to_char_spans` before mixing them (they only differ for non-ASCII
text such as "café rouge sous 50 €").
"""

from __future__ import annotations

import math
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "BIO_TAGS", "GENDER_FORMS", "OUTSIDE", "PRICE_SLOTS", "SLOT_NAMES", "Span", "TAG_IDS", "bio_to_spans",
    "byte_spans_to_char_spans", "char_spans_to_byte_spans", "char_to_byte_offsets", "filters_from_spans",
    "normalize_gender", "parse_price", "spans_to_bio",
]

SLOT_NAMES = ("brand", "color", "size", "gender", "material", "price_min", "price_max")
TEXT_SLOTS = SLOT_NAMES[:5]
PRICE_SLOTS = ("price_min", "price_max")
Span = Tuple[int, int, str]  # (start, end, slot): query[start:end] is the slot's text

# Tag ids: 0 = O, then B-/I- pairs in SLOT_NAMES order (B-brand = 1, I-brand = 2, B-color = 3, ...).
BIO_TAGS = ("O",) + tuple(f"{prefix}-{slot}" for slot in SLOT_NAMES for prefix in ("B", "I"))
TAG_IDS: Dict[str, int] = {tag: i for i, tag in enumerate(BIO_TAGS)}
OUTSIDE = 0

# Words shoppers use for the three gender filter values (straight apostrophes; curly ones are normalised first).
GENDER_FORMS: Dict[str, Tuple[str, ...]] = {
    "men": ("men's", "mens'", "mens", "men", "man's", "mans", "man", "male", "males", "guys", "gents",
            "gentlemen's", "gentlemens", "gentlemen"),
    "women": ("women's", "womens'", "womens", "women", "woman's", "womans", "woman", "female", "females",
              "ladies'", "ladies", "lady's", "lady"),
    "kids": ("kids'", "kid's", "kids", "kid", "children's", "childrens", "children", "child's", "child", "boys'",
             "boy's", "boys", "boy", "girls'", "girl's", "girls", "girl", "toddlers", "toddler", "baby", "babies",
             "youth", "juniors", "junior"),
}
_GENDER_OF = {form: value for value, forms in GENDER_FORMS.items() for form in forms}

_PRICE_TEXT = re.compile(r"^[$€£]?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*(k)?\s*[$€£]?$", re.IGNORECASE)


def normalize_gender(text: str) -> Optional[str]:
    """'men' / 'women' / 'kids' for a gender word ("Men's", "ladies", "boys'"), None when it is not one."""
    key = " ".join(text.replace("\u2019", "'").lower().split())
    if key.startswith("for "):
        key = key[4:]
    return _GENDER_OF.get(key)


def parse_price(text: str) -> float:
    """The amount of a price token: "$80" -> 80, "1,299.99" -> 1299.99, "80k" -> 80000, "50 €" -> 50; NaN if none."""
    m = _PRICE_TEXT.match(text.strip())
    if not m:
        return math.nan
    value = float(m.group(1).replace(",", "") + (m.group(2) or ""))
    return value * 1000.0 if m.group(3) else value


def filters_from_spans(query: str, spans: Iterable[Span], category: Optional[str] = None) -> Dict[str, object]:
    """Structured filters from tagged spans: only the slots that were tagged, plus `category` when given.

    Text slots take their first span in query order (brand and size as typed, colour and material lower-cased,
    gender normalised to men / women / kids, or the lower-cased text for other words). Prices are floats parsed
    from the span text; as in the exported model's `SlotDecoder`, the first lower limit and the last upper limit
    win ("between 40 and 50" names the upper limit second, even when a tagger marks both as upper limits), and a
    lower limit above the upper one swaps the two. Spans whose price text does not parse are ignored.
    """
    out: Dict[str, object] = {}
    if category:
        out["category"] = category
    lows, highs = [], []
    for start, end, slot in sorted(spans):
        if slot not in SLOT_NAMES:
            raise ValueError(f"unknown slot {slot!r}; slots are {SLOT_NAMES}")
        text = " ".join(query[start:end].split())
        if not text:
            continue
        if slot in PRICE_SLOTS:
            value = parse_price(text)
            if not math.isnan(value):
                (lows if slot == "price_min" else highs).append(value)
        elif slot not in out:
            if slot == "gender":
                out[slot] = normalize_gender(text) or text.lower()
            elif slot in ("color", "material"):
                out[slot] = text.lower()
            else:
                out[slot] = text
    lo = lows[0] if lows else None
    hi = highs[-1] if highs else None
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    if lo is not None:
        out["price_min"] = lo
    if hi is not None:
        out["price_max"] = hi
    return out


# --- BIO tags over token offsets ---

def spans_to_bio(token_starts: Sequence[int], token_ends: Sequence[int], spans: Iterable[Span]) -> np.ndarray:
    """int32 tag ids (see BIO_TAGS) of tokens given their [start, end) offsets, in the same unit as the spans.

    A token overlapping a span is tagged with it: B- on the span's first such token, I- on the rest. Tokens of
    zero length (special tokens, padding) stay O. A token already claimed by an earlier span keeps its tag, so the
    round trip through `bio_to_spans` is exact when span boundaries fall on token boundaries.
    """
    starts, ends = _offsets(token_starts, token_ends)
    tags = np.zeros(len(starts), dtype=np.int32)
    for start, end, slot in sorted(spans):
        if slot not in SLOT_NAMES:
            raise ValueError(f"unknown slot {slot!r}; slots are {SLOT_NAMES}")
        inside = np.flatnonzero((starts < end) & (ends > start) & (ends > starts) & (tags == OUTSIDE))
        if len(inside):
            tags[inside[0]] = TAG_IDS["B-" + slot]
            tags[inside[1:]] = TAG_IDS["I-" + slot]
    return tags


def bio_to_spans(token_starts: Sequence[int], token_ends: Sequence[int], tag_ids: Sequence[int]) -> List[Span]:
    """Spans from per-token tag ids: B- starts a span, I- of the same slot extends it (an I- after O or another
    slot starts one), O and zero-length tokens close it. A span runs from its first token's start to its last
    token's end, so it covers whatever lies between consecutive tokens."""
    starts, ends = _offsets(token_starts, token_ends)
    tags = np.asarray(tag_ids).reshape(-1)
    if len(tags) != len(starts):
        raise ValueError(f"{len(tags)} tags for {len(starts)} tokens")
    spans: List[Span] = []
    current: Optional[List] = None
    for s, e, t in zip(starts.tolist(), ends.tolist(), tags.tolist()):
        if not 0 <= t < len(BIO_TAGS):
            raise ValueError(f"tag id {t} is not in 0..{len(BIO_TAGS) - 1}")
        if t == OUTSIDE or e <= s:
            current = _close(current, spans)
            continue
        prefix, slot = BIO_TAGS[t].split("-", 1)
        if prefix == "I" and current is not None and current[2] == slot:
            current[1] = e
        else:
            _close(current, spans)
            current = [s, e, slot]
    _close(current, spans)
    return spans


def _close(current, spans: List[Span]) -> None:
    if current is not None:
        spans.append((current[0], current[1], current[2]))
    return None


def _offsets(token_starts, token_ends) -> Tuple[np.ndarray, np.ndarray]:
    starts = np.asarray(token_starts, dtype=np.int64).reshape(-1)
    ends = np.asarray(token_ends, dtype=np.int64).reshape(-1)
    if starts.shape != ends.shape:
        raise ValueError(f"{len(starts)} token starts but {len(ends)} token ends")
    return starts, ends


# --- character <-> UTF-8 byte offsets ---

def char_to_byte_offsets(text: str) -> np.ndarray:
    """int64 array of len(text) + 1: the UTF-8 byte offset of each character index (and of the end)."""
    sizes = [len(ch.encode("utf-8")) for ch in text]
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)


def char_spans_to_byte_spans(text: str, spans: Iterable[Span]) -> List[Span]:
    """Character spans of `text` as UTF-8 byte spans (the unit of tensorflow-text wordpiece offsets)."""
    table = char_to_byte_offsets(text)
    out = []
    for start, end, slot in spans:
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"span ({start}, {end}) is outside the {len(text)}-character text {text!r}")
        out.append((int(table[start]), int(table[end]), slot))
    return out


def byte_spans_to_char_spans(text: str, spans: Iterable[Span]) -> List[Span]:
    """UTF-8 byte spans of `text` as character spans; ValueError for an offset inside a multi-byte character."""
    table = char_to_byte_offsets(text)
    out = []
    for start, end, slot in spans:
        i, j = np.searchsorted(table, [start, end])
        if start > end or j >= len(table) or table[i] != start or table[j] != end:
            raise ValueError(f"byte span ({start}, {end}) does not fall on character boundaries of {text!r}")
        out.append((int(i), int(j), slot))
    return out
