"""The intent job's data half: labelled queries → query-level split → wordpiece slot tags → TFRecords.

Sources (`IntentDataConfig.source`):
- `dataset`: the searches of a synthetic (or generated) dataset, labelled by the generator's ground truth (intent
  leaf and slot values), each paired with the title of the first product the shopper chose after it;
- `labelled`: the user's own queries in the labelled-queries schema (`tfrec.data.query_labels`);
- `wands`: the WANDS product-search queries (`../shared/data/wands-queries`), intents only.
The split groups identical query texts (case-folded), so a test query was never seen in training.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Dict, List, Literal, Optional, Tuple

import numpy as np

from tfrec.data.query_labels import SLOT_NAMES, labelled_queries_from_ground_truth, read_labelled_queries, slot_spans
from tfrec.data.schema import Table
from tfrec.data.sources import DataConfig, load_source
from tfrec.text.slots import char_spans_to_byte_spans, spans_to_bio

SPLITS = ("train", "validation", "test")
CHOSEN_EVENTS = ("click", "add_to_cart", "purchase")


@dataclasses.dataclass
class IntentDataConfig:
    """Where labelled queries come from (see the module docstring) and how they are split."""

    source: Literal["dataset", "labelled", "wands"] = "dataset"
    path: Optional[str] = None  # the labelled file or the WANDS folder
    dataset: DataConfig = dataclasses.field(default_factory=DataConfig)  # for source `dataset`
    max_queries: Optional[int] = None  # keep this many (seeded sample) to bound training time
    validation_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0

    def validate(self) -> None:
        if self.source in ("labelled", "wands") and not self.path:
            raise ValueError(f"source {self.source!r} needs `path`")
        for name in ("validation_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1)")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("validation_fraction + test_fraction must leave some training queries")
        if self.max_queries is not None and self.max_queries < 10:
            raise ValueError("max_queries must be >= 10 when set")


@dataclasses.dataclass
class LabelledQueries:
    """Queries with their intent (category, '' unknown), slot spans and the chosen product's title ('' none)."""

    queries: np.ndarray
    categories: np.ndarray
    spans: List[List[Tuple[int, int, str]]]
    titles: np.ndarray

    def take(self, rows) -> "LabelledQueries":
        rows = np.asarray(rows, dtype=np.int64)
        return LabelledQueries(self.queries[rows], self.categories[rows], [self.spans[i] for i in rows],
                               self.titles[rows])

    def __len__(self) -> int:
        return len(self.queries)


def _table_spans(table: Table, strict: bool) -> List[List[Tuple[int, int, str]]]:
    columns = {s: table[s] for s in SLOT_NAMES}
    out = []
    for row, query in enumerate(table["query"]):
        values = {s: columns[s][row] for s in SLOT_NAMES}
        out.append(slot_spans(str(query), values, row=row, strict=strict))
    return out


def _chosen_titles(loaded, request_ids: np.ndarray) -> np.ndarray:
    """Per request, the title of the first item the shopper clicked, carted or bought after it ('' if none)."""
    events, catalog = loaded.dataset.events, loaded.dataset.catalog
    chosen = np.isin(events["event_type"], CHOSEN_EVENTS) & (events["request_id"] != "")
    order = np.lexsort((events["timestamp"][chosen], events["request_id"][chosen]))
    req, item = events["request_id"][chosen][order], events["item_id"][chosen][order]
    first = np.concatenate([[True], req[1:] != req[:-1]]) if len(req) else np.zeros(0, bool)
    title_of = dict(zip(catalog["item_id"], catalog["title"]))
    by_request = {r: title_of.get(i, "") for r, i in zip(req[first], item[first])}
    return np.array([by_request.get(r, "") for r in request_ids], dtype=object)


def load_labelled_queries(config: IntentDataConfig) -> LabelledQueries:
    """The labelled queries the config names (see the module docstring)."""
    if config.source == "dataset":
        loaded = load_source(config.dataset)
        if loaded.ground_truth is None:
            raise ValueError("source `dataset` needs the generator's ground truth (a synthetic source or a folder "
                             "written by `tfrec data generate`); use source `labelled` for your own queries")
        table, request_ids = labelled_queries_from_ground_truth(loaded.ground_truth, with_request_ids=True)
        spans = _table_spans(table, strict=False)
        titles = _chosen_titles(loaded, request_ids)
    elif config.source == "labelled":
        table = read_labelled_queries(config.path)
        spans = _table_spans(table, strict=True)
        titles = table.attributes.get("title", np.full(len(table), "", dtype=object))
    else:
        from tfrec.data.public.wands import load_wands

        table = load_wands(config.path).labelled().to_table()
        spans, titles = [[] for _ in range(len(table))], np.full(len(table), "", dtype=object)
    data = LabelledQueries(np.asarray(table["query"], dtype=object), np.asarray(table["category"], dtype=object),
                           spans, np.asarray(titles, dtype=object))
    if config.max_queries is not None and len(data) > config.max_queries:
        keep = np.sort(np.random.default_rng(config.seed).choice(len(data), config.max_queries, replace=False))
        data = data.take(keep)
    return data


def _bucket(text: str, seed: int) -> float:
    """A stable number in [0, 1) per case-folded query text, so duplicates land in one split."""
    digest = hashlib.sha1(f"{seed}:{' '.join(text.lower().split())}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_queries(data: LabelledQueries, config: IntentDataConfig) -> Dict[str, LabelledQueries]:
    """Train/validation/test by query text (identical texts never straddle splits)."""
    u = np.array([_bucket(q, config.seed) for q in data.queries])
    test = u < config.test_fraction
    validation = (u >= config.test_fraction) & (u < config.test_fraction + config.validation_fraction)
    train = ~(test | validation)
    return {"train": data.take(np.flatnonzero(train)), "validation": data.take(np.flatnonzero(validation)),
            "test": data.take(np.flatnonzero(test))}


def intent_vocabulary(train: LabelledQueries, extra: Optional[List[str]] = None) -> List[str]:
    """The intent classes: every category of the training split (and `extra`), sorted."""
    names = set(str(c) for c in train.categories if c) | set(extra or [])
    if not names:
        raise ValueError("no training query has an intent label (category)")
    return sorted(names)


def encode_examples(data: LabelledQueries, intents: List[str], tokenizer, max_length: int) -> Dict[str, np.ndarray]:
    """Columns for TFRecords: query, intent id (-1 unlabelled or unseen class), slot_tags [n, max_length] (-1 for
    [CLS]/[SEP]/padding; all -1 when the source has no slot labels) and title."""
    index = {name: i for i, name in enumerate(intents)}
    intent = np.array([index.get(str(c), -1) for c in data.categories], dtype=np.int64)
    tags = np.full((len(data), max_length), -1, dtype=np.int64)
    has_slots = any(data.spans)
    for start in range(0, len(data), 512):
        batch = data.queries[start : start + 512]
        encoded = tokenizer(np.asarray(batch, dtype=object).astype(str))
        starts, ends = encoded["token_starts"].numpy(), encoded["token_ends"].numpy()
        for j, query in enumerate(batch):
            if not has_slots:
                continue
            valid = starts[j] >= 0
            row_tags = spans_to_bio(starts[j][valid], ends[j][valid], char_spans_to_byte_spans(str(query), data.spans[start + j]))
            positions = np.flatnonzero(valid)
            tags[start + j, positions] = row_tags
    return {"query": data.queries.astype(object), "intent": intent, "slot_tags": tags,
            "title": data.titles.astype(object)}
