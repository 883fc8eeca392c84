"""Why an item is in the answer: feature-group contributions measured on the ranker itself, and short reasons a
shopper could read.

Contribution of group G to item i = logit_i(all inputs) − logit_i(G's inputs set to their missing values): one extra
ranker call over the final k items × groups (occlusion; unlike integrated gradients it needs nothing but the served
signature). Reasons come from what matched: query words in the item, the parsed filters it satisfies, the shopper's
affinities, price band, recent items and (for a Recommend, which has no query) recent searches, and the ranker's
strongest group.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfrec.server.search.filters import FilterSpec
from tfrec.server.search.inputs import Inputs, blank_inputs

GROUP_PHRASES = {"query": "your search", "user": "your profile and history", "item": "the product itself",
                 "context": "time and device"}
STOP_WORDS = {"a", "an", "and", "the", "for", "with", "of", "in", "on", "to", "under", "over", "below", "above",
              "between", "less", "more", "than", "at", "most", "least", "up", "from", "by", "mens", "womens"}
_TOKEN = re.compile(r"[a-z0-9]+")


def occlusion_inputs(inputs: Inputs, dtypes, groups: Mapping[str, Sequence[str]]) -> Tuple[List[str], Inputs]:
    """(groups the ranker has inputs for, one block of rows per group with that group's inputs blanked)."""
    used = [g for g, names in groups.items() if any(n in dtypes for n in names)]
    blocks = [blank_inputs(inputs, dtypes, groups[g]) for g in used]
    stacked: Inputs = {}
    for name in inputs:
        parts = [b[name] for b in blocks]
        stacked[name] = [v for p in parts for v in p] if isinstance(inputs[name], list) else np.concatenate(parts)
    return used, stacked


def contributions_from(full_logits: np.ndarray, occluded_logits: np.ndarray, n_groups: int) -> np.ndarray:
    """[items, groups] logit deltas from the block-stacked occluded logits."""
    return np.asarray(full_logits)[:, None] - np.asarray(occluded_logits).reshape(n_groups, -1).T


def _tokens(text: str) -> List[str]:
    return [t for t in _TOKEN.findall(str(text).lower()) if t not in STOP_WORDS and len(t) > 1]


@dataclasses.dataclass
class ReasonContext:
    """What the reasons for one response draw on (shared by all its items)."""

    query: str = ""
    intent: str = ""
    query_filters: Sequence[FilterSpec] = ()
    category_affinity: Mapping[str, float] = dataclasses.field(default_factory=dict)
    brand_affinity: Mapping[str, float] = dataclasses.field(default_factory=dict)
    recent: Sequence[Tuple[str, str]] = ()  # (category, title) of recent items, most recent first
    ranker_used: bool = True
    candidates: int = 0
    price_band: Optional[Tuple[float, float]] = None  # the shopper's usual price range (None: unknown or unused)
    recent_queries: Sequence[str] = ()  # most recent first; used when the request has no query

    @property
    def query_tokens(self) -> List[str]:
        return _tokens(self.query)


def reasons(item: Mapping[str, object], ctx: ReasonContext, retrieval_rank: int,
            contributions: Optional[Mapping[str, float]] = None, max_reasons: int = 3) -> List[str]:
    """Up to `max_reasons` human-readable reasons, most specific first."""
    out: List[str] = []
    words = set(_tokens(f"{item['title']} {item['brand']} {item['category']}"))
    matched = [t for t in dict.fromkeys(ctx.query_tokens) if t in words]
    if matched:
        out.append(f"matches {' '.join(matched[:4])!r} from your search")
    category, brand = str(item["category"]), str(item["brand"])
    for spec in ctx.query_filters:
        if spec.field == "category":
            out.append(f"in {category.split(' > ')[-1]}, what your search is about")
        elif spec.field == "price":
            out.append(f"${float(item['price']):.2f}, within the price in your search ({spec.describe()})")
        elif spec.field == "brand":
            out.append(f"{brand}, the brand you searched for")
        else:
            out.append(f"{spec.field} {spec.values[0]}, as you searched")
    if ctx.brand_affinity.get(brand, 0.0) > 0:
        out.append(f"{brand} is a brand you like")
    liked = [c for c in ctx.category_affinity if ctx.category_affinity[c] > 0 and _in_category(category, c)]
    if liked:
        out.append(f"from {liked[0]}, a category you shop")
    similar = next((title for cat, title in ctx.recent if cat == category), None)
    if similar:
        out.append(f"like {similar!r}, which you looked at recently")
    if ctx.price_band is not None and ctx.price_band[0] <= float(item["price"]) <= ctx.price_band[1]:
        out.append(f"${float(item['price']):.2f}, in your usual price range "
                   f"(${ctx.price_band[0]:.0f}-${ctx.price_band[1]:.0f})")
    if not ctx.query:
        searched = next(((q, [t for t in dict.fromkeys(_tokens(q)) if t in words]) for q in ctx.recent_queries[:3]
                         if any(t in words for t in _tokens(q))), None)
        if searched:
            out.append(f"matches {' '.join(searched[1][:4])!r} from your recent search {searched[0]!r}")
    if contributions:
        group, value = max(contributions.items(), key=lambda kv: kv[1])
        if value > 0:
            out.append(f"the ranker's strongest signal: {GROUP_PHRASES.get(group, group)} ({value:+.2f} logit)")
    if not ctx.ranker_used:
        out.insert(0, f"retrieval rank {retrieval_rank} of {ctx.candidates} (ranker unavailable)")
    if not out:
        out.append(f"retrieval rank {retrieval_rank} of {ctx.candidates}")
    return out[:max_reasons]


def _in_category(path: str, key: str) -> bool:
    levels = [p.strip().lower() for p in path.split(">")]
    wanted = [p.strip().lower() for p in key.split(">")]
    return levels[: len(wanted)] == wanted or (len(wanted) == 1 and levels[-1] == wanted[0])


def affinity(category: str, brand: str, category_affinity: Mapping[str, float],
             brand_affinity: Mapping[str, float]) -> float:
    """A shopper's affinity for an item: the largest affinity of a category key the item's path falls under
    (a prefix or its leaf name) plus the brand's affinity."""
    cat = max((v for k, v in category_affinity.items() if _in_category(category, k)), default=0.0)
    return float(cat + brand_affinity.get(brand, 0.0))


def top_contributions(values: np.ndarray, groups: Sequence[str]) -> Dict[str, float]:
    """{group: logit delta}, largest absolute first."""
    order = np.argsort(-np.abs(values), kind="stable")
    return {groups[i]: float(values[i]) for i in order}
