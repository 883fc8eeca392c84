"""configs/ranker.yaml cut down for tests that trace the ranker many times (multi-worker training, tuning): the tiny
shop, a few features, and nothing that reads the features left out. Tracing the train step grows with the features
and is most of such a test's time."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import yaml

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ranker.yaml"
FEATURES = [{"name": "user_id", "encoding": "vocabulary", "min_count": 2},
            {"name": "item_id", "encoding": "vocabulary", "min_count": 2},
            {"name": "category", "kind": "path", "encoding": "vocabulary"},
            {"name": "price", "dtype": "float", "kind": "numeric", "transform": "log1p", "buckets": 10},
            {"name": "position", "dtype": "int", "kind": "numeric", "boundaries": [0.5, 1.5, 2.5, 4.5, 9.5]}]


def tiny_ranker_config(features: List[Dict] = FEATURES, **sections) -> Dict:
    """configs/ranker.yaml as a dict on the tiny shop and `features`, without the logistic baseline; `sections`
    update the named sections (`model={...}`, `training={...}`) or set top-level keys."""
    data = yaml.safe_load(CONFIG.read_text())
    data["data"]["preset"] = "tiny"
    data.update(features=features, baseline=None)
    kept = {f["name"] for f in features}
    model = data["model"]
    model.update(matches=[], price_limit=None, explain_groups={})  # match tokens and groups name other features
    if "crosses" in model:
        model["crosses"] = []
    if "bias_features" in model:
        model["bias_features"] = [n for n in model["bias_features"] if n in kept]
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data
