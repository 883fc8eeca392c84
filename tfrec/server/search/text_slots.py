"""Slots from the search text alone, for when the intent model cannot be reached: catalog brands and attribute
values (colour, gender, size, material) named word for word in the query, and price limits from the rule parser
the intent model itself falls back on (`tfrec.text.price_limits`). Poorer than the model (no misspellings, no
synonyms, no category), but a search for "red nike shoes under 80" still filters to red Nike items under 80."""

from __future__ import annotations

import math
import re
from typing import Dict, List, Tuple

from tfrec.server.search.catalog import Catalog
from tfrec.server.search.filters import TEXT_SLOTS

_WORD = re.compile(r"[^\w$.]+", re.UNICODE)


def _normal(text: str) -> str:
    return " " + " ".join(_WORD.sub(" ", text.lower()).split()) + " "


class TextSlots:
    """Matches catalog values in query text; built once per catalog."""

    def __init__(self, catalog: Catalog):
        self.vocabulary: Dict[str, List[Tuple[str, str]]] = {}  # slot → [(" normalised value ", value)], longest first
        for slot in ("brand",) + TEXT_SLOTS[1:]:
            if slot not in catalog.columns:
                continue
            values = {str(v).strip() for v in catalog.columns[slot].tolist()}
            usable = [v for v in values if len(v) > 1 and not v.replace(".", "").isdigit()]  # "m", "10" are too vague
            self.vocabulary[slot] = sorted(((_normal(v), v) for v in usable), key=lambda p: -len(p[0]))

    def parse(self, query: str) -> Dict[str, object]:
        """{slot: value} for slots named in `query` ('' when absent), price_min/price_max (NaN when absent)."""
        text = _normal(query)
        slots: Dict[str, object] = {slot: "" for slot in TEXT_SLOTS}
        for slot, values in self.vocabulary.items():
            slots[slot] = next((value for normal, value in values if normal in text), "")
        slots["price_min"], slots["price_max"] = price_limits(query)
        return slots


def price_limits(query: str) -> Tuple[float, float]:
    """(price_min, price_max) of one query by the rule parser, NaN where it sets none."""
    import tensorflow as tf

    from tfrec.text.price_limits import parse_price_limits

    low, high = parse_price_limits(tf.constant([query]))
    values = float(low.numpy()[0]), float(high.numpy()[0])
    return tuple(v if math.isfinite(v) else float("nan") for v in values)
