"""Builds synthetic shoppers: hidden tastes partly driven by an observable segment, price bands and Zipf activity.

The observable `segment` sets the mean of each user's department taste, so segment x category is learnable even
for users with a handful of events, while the per-user Dirichlet draw leaves room for personalisation.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from tfrec.data.schema import USERS_SCHEMA, Table
from tfrec.data.synthetic._sampling import GroupedSampler, zipf_weights
from tfrec.data.synthetic.model import Taxonomy, UserLatents


class SegmentSpec(NamedTuple):
    name: str
    share: float  # fraction of users
    departments: Tuple[Tuple[str, float], ...]  # department weights; unlisted departments get BASE_DEPT_WEIGHT
    price_tier: float  # mean preferred log(price / leaf base price)
    price_sensitivity: float  # mean sensitivity
    age: float  # mean index into AGE_BANDS


BASE_DEPT_WEIGHT = 0.3
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
DEVICE_SHARES = (0.55, 0.35, 0.10)  # mobile, desktop, tablet
FAVORITE_BRANDS = 2
DEPT_CONCENTRATION = 3.0  # Dirichlet concentration of department taste around the segment mean (x config)
LEAF_CONCENTRATION = 0.7  # per-leaf Dirichlet concentration within a department (x config)

SEGMENTS: Tuple[SegmentSpec, ...] = (
    SegmentSpec("fashionista", 0.16, (("Clothing", 5.0), ("Beauty & Personal Care", 3.0), ("Home", 1.0)),
                0.15, 1.0, 1.0),
    SegmentSpec("techie", 0.14, (("Electronics", 6.0), ("Toys & Games", 1.0), ("Books", 1.0)), 0.1, 0.9, 1.2),
    SegmentSpec("homebody", 0.14, (("Home", 5.0), ("Books", 1.5), ("Pet Supplies", 1.0)), 0.0, 1.0, 3.0),
    SegmentSpec("athlete", 0.12, (("Sports & Outdoors", 5.0), ("Clothing", 2.5)), 0.1, 1.0, 1.2),
    SegmentSpec("parent", 0.14, (("Toys & Games", 4.0), ("Books", 2.0), ("Clothing", 2.0), ("Home", 1.5)),
                -0.2, 1.3, 2.0),
    SegmentSpec("bargain_hunter", 0.12, (("Home", 1.5), ("Clothing", 1.0), ("Electronics", 1.0)), -0.5, 2.0, 3.0),
    SegmentSpec("premium", 0.10, (("Clothing", 2.0), ("Electronics", 2.0), ("Home", 2.0),
                                  ("Beauty & Personal Care", 2.0)), 0.5, 0.5, 3.0),
    SegmentSpec("pet_owner", 0.08, (("Pet Supplies", 5.0), ("Home", 2.0)), 0.0, 1.1, 2.5),
)
SEGMENT_NAMES = tuple(s.name for s in SEGMENTS)


def segment_department_prior(taxonomy: Taxonomy) -> np.ndarray:
    """(segments, departments) mean department taste of each segment."""
    dept_index = {d: i for i, d in enumerate(taxonomy.departments)}
    prior = np.full((len(SEGMENTS), len(taxonomy.departments)), BASE_DEPT_WEIGHT)
    for s, seg in enumerate(SEGMENTS):
        for dept, w in seg.departments:
            prior[s, dept_index[dept]] = w
    return prior / prior.sum(axis=1, keepdims=True)


def build_users(
    n_users: int,
    taxonomy: Taxonomy,
    brand_departments: np.ndarray,
    brand_item_counts: np.ndarray,
    concentration: float,
    activity_skew: float,
    rng: np.random.Generator,
) -> tuple:
    """Returns (users Table, UserLatents) for `n_users` shoppers."""
    seg_share = np.array([s.share for s in SEGMENTS])
    segment = rng.choice(len(SEGMENTS), n_users, p=seg_share / seg_share.sum())

    alpha = DEPT_CONCENTRATION * concentration * segment_department_prior(taxonomy)[segment]
    dept_pref = _normalise(np.maximum(rng.gamma(alpha), 1e-12))

    # leaf taste within each department: a shared leaf popularity sets the Dirichlet mean
    dept = taxonomy.leaf_department
    popularity = rng.lognormal(0.0, 0.5, taxonomy.n_leaves)
    block_start = np.searchsorted(dept, np.arange(len(taxonomy.departments)))
    popularity /= np.add.reduceat(popularity, block_start)[dept]
    leaf_alpha = LEAF_CONCENTRATION * concentration * popularity * taxonomy.leaves_in_department()
    raw = np.maximum(rng.gamma(np.broadcast_to(leaf_alpha, (n_users, taxonomy.n_leaves))), 1e-12)
    leaf_pref = raw / np.add.reduceat(raw, block_start, axis=1)[:, dept]

    favorite = _favorite_brands(dept_pref, brand_departments, brand_item_counts, n_users, rng)

    tier_mean = np.array([s.price_tier for s in SEGMENTS])[segment]
    price_tier = tier_mean + rng.normal(0.0, 0.3, n_users)
    sens_mean = np.array([s.price_sensitivity for s in SEGMENTS])[segment]
    price_sensitivity = sens_mean * rng.lognormal(0.0, 0.3, n_users)
    age_mean = np.array([s.age for s in SEGMENTS])[segment]
    age = np.clip(np.round(rng.normal(age_mean, 1.1)), 0, len(AGE_BANDS) - 1).astype(np.int64)
    device = rng.choice(len(DEVICE_SHARES), n_users, p=np.array(DEVICE_SHARES))
    activity = zipf_weights(n_users, activity_skew, rng)

    user_ids = np.array([f"U{i:06d}" for i in range(n_users)], dtype=object)
    latents = UserLatents(
        user_ids=user_ids,
        segment=segment,
        preferred_device=device,
        department_pref=dept_pref,
        leaf_pref=leaf_pref,
        favorite_brands=favorite,
        price_tier=price_tier,
        price_sensitivity=price_sensitivity,
        activity=activity,
    )
    table = Table(
        USERS_SCHEMA,
        {"user_id": user_ids},
        {
            "segment": np.array(SEGMENT_NAMES, dtype=object)[segment],
            "age_band": np.array(AGE_BANDS, dtype=object)[age],
            "preferred_device": np.array(taxonomy.devices, dtype=object)[device],
        },
    )
    return table, latents


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=1, keepdims=True)


def _favorite_brands(dept_pref, brand_departments, brand_item_counts, n_users, rng) -> np.ndarray:
    """Each user's favourite brands: pick a department by taste, then a brand selling there by catalog presence."""
    pair_brand, pair_dept = np.nonzero(brand_departments)
    weights = brand_item_counts[pair_brand, pair_dept].astype(np.float64)
    brand_sampler = GroupedSampler(pair_dept, weights, brand_departments.shape[1])
    # only departments that have branded items can hold a favourite
    pref = dept_pref * brand_sampler.has_mass[None, :]
    dept_sampler = GroupedSampler.from_matrix(pref)
    users = np.repeat(np.arange(n_users), FAVORITE_BRANDS)
    depts = dept_sampler.sample(users, rng)
    fav = pair_brand[brand_sampler.sample(depts, rng)].reshape(n_users, FAVORITE_BRANDS)
    for k in range(1, FAVORITE_BRANDS):  # a repeated brand is one favourite, not two
        fav[:, k] = np.where(np.any(fav[:, :k] == fav[:, k : k + 1], axis=1), -1, fav[:, k])
    return fav
