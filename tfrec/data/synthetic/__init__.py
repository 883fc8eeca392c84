"""Built-in synthetic e-commerce data: a shop with a category tree, brands, shoppers, searches and logged lists.

`generate(SyntheticConfig.preset("tiny"))` returns `SyntheticData` with a canonical `Dataset` (catalog, users,
events) and the `GroundTruth` that produced it (true click probabilities, query intents and slots, users' best
items), so tests and demos can check what a model learned against what is actually true.
"""

from tfrec.data.synthetic.config import PRESETS, Effects, SyntheticConfig
from tfrec.data.synthetic.evaluation import ImpressionLabels, impression_labels, rank_auc
from tfrec.data.synthetic.generator import SyntheticData, generate
from tfrec.data.synthetic.ground_truth import REQUESTS_SCHEMA, GroundTruth

__all__ = [
    "PRESETS",
    "REQUESTS_SCHEMA",
    "Effects",
    "GroundTruth",
    "ImpressionLabels",
    "SyntheticConfig",
    "SyntheticData",
    "generate",
    "impression_labels",
    "rank_auc",
]
