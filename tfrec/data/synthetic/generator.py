"""`generate(config)`: the built-in synthetic shop, as a canonical `Dataset` plus the `GroundTruth` behind it.

Each stage draws from its own random stream spawned from the seed, so output is identical for a seed and a change
to one stage (say, query phrasing) does not reshuffle the others.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from tfrec.data.schema import Dataset
from tfrec.data.synthetic import events as ev
from tfrec.data.synthetic.catalog import build_catalog
from tfrec.data.synthetic.config import SyntheticConfig
from tfrec.data.synthetic.ground_truth import GroundTruth
from tfrec.data.synthetic.model import ClickModel
from tfrec.data.synthetic.queries import QueryWriter
from tfrec.data.synthetic.sessions import LoggingPolicy, build_requests, taste_sampler
from tfrec.data.synthetic.users import SEGMENT_NAMES, build_users

_STAGES = ("catalog", "users", "context", "requests", "logging", "outcomes")
# progress(stage, done, total): stage is one of _STAGES; done/total count requests while ranking, else 0/1 -> 1/1.
Progress = Callable[[str, int, int], None]


@dataclasses.dataclass
class SyntheticData:
    """A generated dataset, the hidden truth that produced it, and the config that reproduces both."""

    dataset: Dataset
    ground_truth: GroundTruth
    config: SyntheticConfig

    def __repr__(self) -> str:
        return f"SyntheticData({self.dataset!r}, seed={self.config.seed})"


def generate(config: Optional[SyntheticConfig] = None, progress: Optional[Progress] = None) -> SyntheticData:
    """Generates catalog, users and events for `config` (default: the tiny preset), deterministically per seed."""
    config = config or SyntheticConfig.preset("tiny")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(len(_STAGES))]
    rng = dict(zip(_STAGES, streams))
    report = progress or (lambda stage, done, total: None)

    report("catalog", 0, 1)
    catalog = build_catalog(config.n_items, SEGMENT_NAMES, rng["catalog"])
    tax = catalog.taxonomy
    brand_item_counts = np.zeros((len(tax.brands), len(tax.departments)), dtype=np.int64)
    np.add.at(brand_item_counts, (catalog.items.brand, tax.leaf_department[catalog.items.leaf]), 1)

    report("users", 0, 1)
    users_table, users = build_users(config.n_users, tax, catalog.brand_departments, brand_item_counts,
                                     config.user_concentration, config.activity_skew, rng["users"])

    report("context", 0, 1)
    hours = np.arange(24)
    model = ClickModel(
        taxonomy=tax,
        items=catalog.items,
        users=users,
        effects=config.effects,
        intercept=0.0,  # calibrated below, once the logged impressions exist
        device_department=rng["context"].standard_normal((len(tax.devices), len(tax.departments))),
        hour_effect=np.cos(2 * np.pi * (hours - 20) / 24.0),  # shoppers are most engaged in the evening
    )

    report("requests", 0, 1)
    taste = taste_sampler(users, tax)
    requests = build_requests(config, catalog, users, taste, QueryWriter(catalog), rng["requests"])

    policy = LoggingPolicy(config, catalog, model, taste)
    impressions = policy.show(requests, rng["logging"], progress=lambda done, total: report("logging", done, total))

    report("outcomes", 0, 1)
    ev.calibrate(model, requests, impressions, config.target_ctr)
    outcomes = ev.sample_outcomes(model, requests, impressions, rng["outcomes"])
    events = ev.events_table(model, requests, impressions, outcomes)
    report("outcomes", 1, 1)

    dataset = Dataset(catalog=catalog.table, events=events, users=users_table)
    return SyntheticData(dataset, GroundTruth(config, model, requests, impressions), config)
