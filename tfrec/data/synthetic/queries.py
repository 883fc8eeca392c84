"""Search intents and query text: slots (brand, colour, gender, price limits) and the noisy ways shoppers type them.

Slots are drawn from what the catalog actually holds in the intent leaf (no "gold dog food" queries), and the text
varies word order, plurals, dropped modifiers, synonyms, fillers and casing so query understanding has work to do,
while every slot stays recoverable from the text.
"""

from __future__ import annotations

import numpy as np

from tfrec.data.synthetic import vocabulary as V
from tfrec.data.synthetic._sampling import GroupedSampler, nice_price
from tfrec.data.synthetic.catalog import CatalogBuild
from tfrec.data.synthetic.model import UserLatents

P_BRAND, P_COLOR, P_GENDER = 0.25, 0.3, 0.35  # chance a search names the slot, when the leaf has such items
P_FAVORITE_BRAND = 0.6  # a brand slot names the user's favourite when that brand sells in the leaf
PRICE_KIND_SHARES = (0.6, 0.15, 0.25)  # price_max only, price_min only, both
P_SINGULAR, P_DROP_MODIFIER, P_SYNONYM, P_FILLER = 0.25, 0.08, 0.1, 0.07
P_TITLE_CASE, P_CAPITALIZED = 0.12, 0.08
# Orders of brand (B), gender (G), colour (C) and noun (N); a price phrase always ends the query.
TEMPLATES = ("BGCN", "GBCN", "CNBG", "BCNG", "NBCG")


class QueryWriter:
    """Draws search slots for intent leaves and renders them as query text."""

    def __init__(self, catalog: CatalogBuild):
        self.catalog = catalog
        items, n_leaves = catalog.items, catalog.taxonomy.n_leaves
        self._n_brands = len(catalog.taxonomy.brands)
        self._brand = _pair_sampler(items.leaf, items.brand, self._n_brands, n_leaves)
        self._color = _pair_sampler(items.leaf, items.color, len(catalog.taxonomy.colors), n_leaves)
        unisex = catalog.taxonomy.genders.index("unisex")
        gender = np.where(items.gender == unisex, -1, items.gender)  # nobody searches "unisex"
        self._gender = _pair_sampler(items.leaf, gender, len(catalog.taxonomy.genders), n_leaves)
        self._leaf_brand_keys = np.unique(items.leaf * self._n_brands + items.brand)
        order = np.lexsort((items.price, items.leaf))
        counts = np.bincount(items.leaf, minlength=n_leaves)
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._median_price = items.price[order][start + counts // 2]

    def sample_slots(self, intent: np.ndarray, user: np.ndarray, users: UserLatents, rng: np.random.Generator):
        """Slot codes (brand, colour, gender: -1 = none) and price limits (NaN = none) for searches of `intent`."""
        n = len(intent)
        brand = self._pick(self._brand, intent, P_BRAND, rng)
        fav = users.favorite_brands[user, 0]
        fav_sells = (fav >= 0) & np.isin(intent * self._n_brands + fav, self._leaf_brand_keys)
        use_fav = (brand >= 0) & fav_sells & (rng.random(n) < P_FAVORITE_BRAND)
        brand = np.where(use_fav, fav, brand)
        color = self._pick(self._color, intent, P_COLOR, rng)
        gender = self._pick(self._gender, intent, P_GENDER, rng)

        p_price = np.clip(0.08 + 0.1 * users.price_sensitivity[user], 0.0, 0.5)
        has_price = rng.random(n) < p_price
        kind = rng.choice(3, n, p=np.array(PRICE_KIND_SHARES))
        anchor = self._median_price[intent]
        hi = nice_price(anchor * rng.lognormal(0.1, 0.3, n))
        lo = nice_price(anchor * rng.lognormal(-0.4, 0.25, n))
        both = kind == 2
        hi = np.where(both, np.maximum(hi, lo + nice_price(0.3 * anchor)), hi)
        price_max = np.where(has_price & (kind != 1), hi, np.nan)
        price_min = np.where(has_price & (kind != 0), lo, np.nan)
        return brand, color, gender, price_min, price_max

    @staticmethod
    def _pick(sampler: GroupedSampler, intent, probability, rng) -> np.ndarray:
        wants = (rng.random(len(intent)) < probability) & sampler.has_mass[intent]
        value = np.full(len(intent), -1, dtype=np.int64)
        if wants.any():
            value[wants] = sampler.sample(intent[wants], rng)
        return value

    def render(self, intent, brand, color, gender, price_min, price_max, rng: np.random.Generator) -> np.ndarray:
        """Query strings for the given slots (one per search)."""
        n = len(intent)
        specs = self.catalog.leaf_specs
        tax = self.catalog.taxonomy
        u = rng.random((n, 6))
        template = rng.integers(0, len(TEMPLATES), n)
        phrase_pick = rng.integers(0, 1 << 30, (n, 4))  # which synonym / gender form / price form / filler
        out = np.empty(n, dtype=object)
        for i in range(n):
            r = u[i]
            parts = {"N": _noun(specs[intent[i]], r[0], r[1], r[2], phrase_pick[i, 0])}
            if brand[i] >= 0:
                name = tax.brands[brand[i]]
                parts["B"] = name.lower() if r[3] < 0.9 else name
            if color[i] >= 0:
                parts["C"] = tax.colors[color[i]]
            order = TEMPLATES[template[i]]
            if gender[i] >= 0:
                g = tax.genders[gender[i]]
                before = order.index("G") < order.index("N")
                forms = V.GENDER_BEFORE_NOUN[g] if before else V.GENDER_AFTER_NOUN[g]
                parts["G"] = forms[phrase_pick[i, 1] % len(forms)]
            words = [parts[k] for k in order if k in parts]
            price = _price_phrase(price_min[i], price_max[i], phrase_pick[i, 2])
            if price:
                words.append(price)
            if r[4] < P_FILLER:
                words.insert(0, V.QUERY_FILLERS[phrase_pick[i, 3] % len(V.QUERY_FILLERS)])
            out[i] = _case(" ".join(words), r[5])
        return out


def _pair_sampler(leaf: np.ndarray, value: np.ndarray, n_values: int, n_leaves: int) -> GroupedSampler:
    """Samples a value (brand, colour, ...) present in a leaf, weighted by how many of its items have it."""
    known = value >= 0
    counts = np.bincount(leaf[known] * n_values + value[known], minlength=n_leaves * n_values)
    keys = np.arange(n_leaves * n_values)
    return GroupedSampler(keys // n_values, counts, n_leaves, labels=keys % n_values)


def _noun(spec: V.LeafSpec, r_form: float, r_drop: float, r_syn: float, pick: int) -> str:
    """The leaf as typed: usually its plural name, sometimes singular, a bare head noun, or a synonym."""
    if spec.synonyms and r_syn < P_SYNONYM:
        return spec.synonyms[pick % len(spec.synonyms)]
    text = spec.name.lower()
    single = V.singular(spec).lower()
    if r_form < P_SINGULAR:
        text = single
    words = text.split()
    if len(words) > 1 and r_drop < P_DROP_MODIFIER:
        text = words[-1]
    return text


def _price_phrase(price_min: float, price_max: float, pick: int) -> str:
    has_min, has_max = not np.isnan(price_min), not np.isnan(price_max)
    if has_min and has_max:
        forms, a, b = V.PRICE_RANGE_PHRASES, price_min, price_max
    elif has_max:
        forms, a, b = V.PRICE_MAX_PHRASES, price_max, 0.0
    elif has_min:
        forms, a, b = V.PRICE_MIN_PHRASES, price_min, 0.0
    else:
        return ""
    return forms[pick % len(forms)].format(a=_money(a), b=_money(b))


def _money(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"


def _case(text: str, r: float) -> str:
    if r < P_TITLE_CASE:
        return " ".join(w[:1].upper() + w[1:] for w in text.split())
    if r < P_TITLE_CASE + P_CAPITALIZED:
        return text[:1].upper() + text[1:]
    return text
