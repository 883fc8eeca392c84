"""Builds the synthetic catalog: category tree, brands with price tiers, log-normal prices, attributes and titles."""

from __future__ import annotations

import dataclasses
from typing import List

import numpy as np

from tfrec.data.schema import CATALOG_SCHEMA, Table
from tfrec.data.synthetic import vocabulary as V
from tfrec.data.synthetic._sampling import GroupedSampler
from tfrec.data.synthetic.model import ItemLatents, Taxonomy

PRICE_NOISE = 0.25  # std of log-price noise around leaf base x brand tier
BRAND_QUALITY = 0.5  # std of brand-level quality shared by a brand's items
LEAF_SIZE_SPREAD = 0.6  # std of log leaf size: some categories hold many more products than others


@dataclasses.dataclass
class CatalogBuild:
    """The catalog table plus what later stages need: codes for the click model and the leaf word lists."""

    table: Table
    taxonomy: Taxonomy
    items: ItemLatents
    leaf_specs: List[V.LeafSpec]
    brand_departments: np.ndarray  # (brands, departments) bool: where each brand sells


def build_taxonomy(segments) -> tuple:
    """Flattens the vocabulary tree into code arrays (leaf -> department / subcategory / base price)."""
    leaf_specs, paths, leaf_dept, leaf_sub, base = [], [], [], [], []
    sub_index = 0
    for d, dept in enumerate(V.DEPARTMENTS):
        for sub in dept.subcategories:
            for leaf in sub.leaves:
                leaf_specs.append(leaf)
                paths.append(f"{dept.name} > {sub.name} > {leaf.name}")
                leaf_dept.append(d)
                leaf_sub.append(sub_index)
                base.append(leaf.base_price)
            sub_index += 1
    taxonomy = Taxonomy(
        departments=tuple(d.name for d in V.DEPARTMENTS),
        leaf_paths=np.array(paths, dtype=object),
        leaf_department=np.array(leaf_dept, dtype=np.int64),
        leaf_subcategory=np.array(leaf_sub, dtype=np.int64),
        leaf_base_price=np.array(base, dtype=np.float64),
        brands=tuple(b.name for b in V.BRANDS),
        colors=tuple(c for c, _ in V.COLORS),
        genders=tuple(g for g, _, _ in V.GENDERS),
        devices=V.DEVICES,
        segments=tuple(segments),
    )
    return taxonomy, leaf_specs


def _brand_departments(taxonomy: Taxonomy) -> np.ndarray:
    dept_index = {name: i for i, name in enumerate(taxonomy.departments)}
    sells = np.zeros((len(V.BRANDS), len(taxonomy.departments)), dtype=bool)
    for b, brand in enumerate(V.BRANDS):
        for dept in brand.departments:
            sells[b, dept_index[dept]] = True
    return sells


def build_catalog(n_items: int, segments, rng: np.random.Generator) -> CatalogBuild:
    """`n_items` products spread over the leaves (at least one each), ids in a random order."""
    taxonomy, leaf_specs = build_taxonomy(segments)
    n_leaves = taxonomy.n_leaves
    if n_items < n_leaves:
        raise ValueError(f"n_items ({n_items}) must be at least the number of leaf categories ({n_leaves})")
    leaf_weight = rng.lognormal(0.0, LEAF_SIZE_SPREAD, n_leaves)
    counts = 1 + rng.multinomial(n_items - n_leaves, leaf_weight / leaf_weight.sum())
    leaf = np.repeat(np.arange(n_leaves), counts)
    dept = taxonomy.leaf_department[leaf]

    # brands: each department draws from the brands selling there, weighted by a market share
    sells = _brand_departments(taxonomy)
    share = rng.lognormal(0.0, 0.7, len(V.BRANDS))
    pair_brand, pair_dept = np.nonzero(sells)
    brand_sampler = GroupedSampler(pair_dept, share[pair_brand], len(taxonomy.departments))
    brand = pair_brand[brand_sampler.sample(dept, rng)]

    tier = np.array([V.BRAND_TIERS[b.tier] for b in V.BRANDS])
    raw = taxonomy.leaf_base_price[leaf] * tier[brand] * rng.lognormal(0.0, PRICE_NOISE, n_items)
    price = _shop_price(raw, rng)
    brand_quality = rng.normal(0.0, BRAND_QUALITY, len(V.BRANDS))
    quality = brand_quality[brand] + rng.normal(0.0, np.sqrt(1.0 - BRAND_QUALITY**2), n_items)

    has = {flag: np.array([flag in spec.attributes for spec in leaf_specs])[leaf] for flag in "csmg"}
    color_w = np.array([w for _, w in V.COLORS])
    color = np.where(has["c"], rng.choice(len(color_w), n_items, p=color_w / color_w.sum()), -1)
    gender_w = np.array([w for _, w, _ in V.GENDERS])
    gender = np.where(has["g"], rng.choice(len(gender_w), n_items, p=gender_w / gender_w.sum()), -1)
    material = _leaf_word(leaf, has["m"], _leaf_materials(), rng)
    size = _leaf_word(leaf, has["s"], [V.SIZE_SYSTEMS.get(s.sizes, ()) for s in leaf_specs], rng)

    titles = _titles(leaf, brand, color, gender, material, leaf_specs, taxonomy, rng)

    order = rng.permutation(n_items)  # item ids must not reveal the category
    item_ids = np.array([f"I{i:06d}" for i in range(n_items)], dtype=object)
    items = ItemLatents(item_ids, leaf[order], brand[order], color[order], gender[order], price[order], quality[order])
    brand_names = np.array(taxonomy.brands, dtype=object)
    colors = np.array(taxonomy.colors + ("",), dtype=object)  # index -1 -> ''
    genders = np.array(taxonomy.genders + ("",), dtype=object)
    table = Table(
        CATALOG_SCHEMA,
        {
            "item_id": item_ids,
            "title": titles[order],
            "category": taxonomy.leaf_paths[items.leaf],
            "brand": brand_names[items.brand],
            "price": items.price,
        },
        {
            "color": colors[items.color],
            "gender": genders[items.gender],
            "material": material[order],
            "size": size[order],
        },
    )
    return CatalogBuild(table, taxonomy, items, leaf_specs, sells)


def _leaf_materials() -> List[tuple]:
    """Materials per leaf, in leaf order: the leaf's own list, else its subcategory's."""
    return [leaf.materials or sub.materials for dept in V.DEPARTMENTS for sub in dept.subcategories for leaf in sub.leaves]


def _shop_price(raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rounds to cents; most prices above $5 get a .99 ending, as shops do."""
    cents = np.maximum(np.round(raw, 2), 0.49)
    charm = (cents >= 5) & (rng.random(len(raw)) < 0.7)
    return np.round(np.where(charm, np.floor(cents) + 0.99, cents), 2)


def _leaf_word(leaf, applies, words_per_leaf, rng) -> np.ndarray:
    """One word per item from its leaf's list (materials, sizes), '' where the attribute does not apply."""
    n_words = np.array([len(w) for w in words_per_leaf])
    applies = applies & (n_words[leaf] > 0)
    pick = (rng.random(len(leaf)) * np.maximum(n_words[leaf], 1)).astype(np.int64)
    flat = np.array([w for words in words_per_leaf for w in words] + [""], dtype=object)
    offset = np.concatenate([[0], np.cumsum(n_words)[:-1]])
    return np.where(applies, flat[np.where(applies, offset[leaf] + pick, len(flat) - 1)], "")


def _titles(leaf, brand, color, gender, material, leaf_specs, taxonomy, rng) -> np.ndarray:
    """Product titles from attribute words ("Strideon Men's Red Mesh Running Shoes X200"); invented book titles."""
    n = len(leaf)
    brand_prefixes = rng.integers(0, len(V.MODEL_PREFIXES), (len(V.BRANDS), 2))
    line = brand_prefixes[brand, rng.integers(0, 2, n)]
    number = rng.choice(np.array([1, 2, 3, 5, 7, 9, 10, 20, 50, 100, 200, 300, 450, 500, 700, 900]), n)
    adjective = rng.integers(0, len(V.BOOK_ADJECTIVES), n)
    noun = rng.integers(0, len(V.BOOK_NOUNS), n)
    book_pattern = rng.integers(0, 3, n)
    dept_style = [d.title_style for d in V.DEPARTMENTS]
    nouns = [spec.name if "p" in spec.attributes else V.singular(spec) for spec in leaf_specs]
    gender_words = [w for _, _, w in V.GENDERS]
    out = np.empty(n, dtype=object)
    for i in range(n):
        lf = leaf[i]
        if dept_style[taxonomy.leaf_department[lf]] == "book":
            adj, nn = V.BOOK_ADJECTIVES[adjective[i]], V.BOOK_NOUNS[noun[i]]
            name = (f"The {adj} {nn}", f"A {nn} of {adj} Things", f"{adj} {nn}s")[book_pattern[i]]
            kind = V.singular(leaf_specs[lf])
            article = "An" if kind[0] in "AEIOU" else "A"
            out[i] = f"{name}: {article} {kind}" + (f" ({material[i]})" if material[i] else "")
            continue
        parts = [taxonomy.brands[brand[i]]]
        if gender[i] >= 0:
            parts.append(gender_words[gender[i]])
        if color[i] >= 0:
            parts.append(taxonomy.colors[color[i]].capitalize())
        if material[i]:
            parts.append(material[i])
        parts.append(nouns[lf])
        parts.append(f"{V.MODEL_PREFIXES[line[i]]}{number[i]}")
        out[i] = " ".join(parts)
    return out
