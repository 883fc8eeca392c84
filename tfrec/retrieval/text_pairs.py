"""A query -> product text two-tower trained on judged (query, product) pairs: the learned channel fused with BM25.

Why: lexical matching misses synonyms, morphology and intent ('tresers' -> chest of drawers, '18v dewalt cutoff' ->
'DEWALT 18-Volt ... Cut-Off Tool'); a model trained on relevance judgments learns some of those, and its mistakes
differ from BM25's (on Home Depot queries the two channels' top 10 share under half their items), so fusing the two
beats either. Only text is used - query and title words plus their character trigrams, hashed - so every catalog
item, judged or not, old or new, gets an embedding, and unseen queries and model numbers still share trigram
tokens with the training data.

What training does (`train_text_two_tower`; the defaults are what measured best on held-out Home Depot queries):
- positives are the pairs judged >= `min_relevance`; a query with several positives appears once per positive, and
  in each softmax its other positives are masked out instead of being counted as negatives;
- in-batch softmax with log-Q correction (tfrs Retrieval), plus one extra negative per pair drawn from the titles
  its query was judged < `negative_below` on (or a random catalog title when it has none) - real hard negatives -
  and optionally `random_negatives` catalog titles shared by the batch;
- `pseudo_queries`: per product and epoch, a few random words of its own title as an extra (query, product) pair.
  The judgments cover ~5k queries; this teaches the towers the whole catalog's vocabulary as well;
- `shared='tower'`: query and title go through one token table and one projection, so the untrained model already
  scores token overlap (a random projection of the bag of words and trigrams) and training starts from there;
- Adagrad: it updates only the hashed-table rows a batch touches (Adam's dense moment updates were 10x slower).
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from typing import Dict, Iterable, List, Literal, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec.data.schema import Table
from tfrec.features.encoder import FeatureEncoder
from tfrec.features.spec import FeatureConfig, FeatureSpec
from tfrec.features.stats import fit_features
from tfrec.models.two_tower import SAMPLING_PROBABILITY, Tower, TowerConfig, TwoTowerConfig, TwoTowerModel
from tfrec.retrieval.base import Candidate, CandidateSource, resolve_filters
from tfrec.retrieval.dense import BruteForceIndex

__all__ = ["DenseTextChannel", "TextPairsConfig", "TextTwoTower", "embed_texts", "pseudo_queries", "text_pair_spec",
           "train_text_two_tower", "training_pairs"]

QUERY, TITLE, ITEM, NEGATIVES = "query", "title", "item_id", "negatives"
_NEG = "negative_"  # prefix of the extra-negative columns of a batch
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset("a an and by for in of on or the to with x".split())


@dataclasses.dataclass
class TextPairsConfig:
    """Features, towers and training of the text two-tower (see the module docstring for the choices)."""

    hash_bins: int = 2 ** 18
    char_ngrams: int = 3
    query_max_tokens: int = 12
    title_max_tokens: int = 32
    embedding_dim: int = 128
    hidden: List[int] = dataclasses.field(default_factory=list)
    output_dim: int = 128
    shared: Literal["none", "embeddings", "tower"] = "tower"
    temperature: float = 0.05
    min_relevance: float = 2.5
    negative_below: Optional[float] = 2.0
    random_negatives: int = 0
    pseudo_queries: float = 1.0
    pseudo_words: Sequence[int] = (1, 4)
    hard_negatives: Optional[int] = None
    logq_correction: bool = True
    batch_size: int = 256
    epochs: int = 10
    optimizer: Literal["adagrad", "adam"] = "adagrad"
    learning_rate: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        if self.pseudo_queries < 0 or self.random_negatives < 0 or self.epochs < 1 or self.batch_size < 2:
            raise ValueError("pseudo_queries and random_negatives must be >= 0, epochs >= 1, batch_size >= 2")
        low, high = self.pseudo_words
        if not 1 <= low <= high:
            raise ValueError(f"pseudo_words must be (low, high) with 1 <= low <= high, got {self.pseudo_words}")
        if self.shared not in ("none", "embeddings", "tower"):
            raise ValueError(f"shared must be 'none', 'embeddings' or 'tower', got {self.shared!r}")
        if self.optimizer not in ("adagrad", "adam"):
            raise ValueError(f"optimizer must be 'adagrad' or 'adam', got {self.optimizer!r}")
        if self.negative_below is not None and self.negative_below > self.min_relevance:
            raise ValueError(f"negative_below ({self.negative_below}) must not exceed min_relevance "
                             f"({self.min_relevance}): a pair cannot be both a positive and a negative")


def text_pair_spec(config: TextPairsConfig) -> FeatureSpec:
    """`query` and `title`: hashed word + character n-gram tokens, in the same bins so one table can serve both."""
    def text(name, max_tokens):
        return FeatureConfig(name, kind="text", hash_bins=config.hash_bins, max_tokens=max_tokens,
                             char_ngrams=config.char_ngrams)
    return FeatureSpec([text(QUERY, config.query_max_tokens), text(TITLE, config.title_max_tokens)])


def training_pairs(query: Sequence[str], item_id: Sequence[str], relevance: Sequence[float],
                   titles: Dict[str, str], min_relevance: float = 2.5,
                   negative_below: Optional[float] = 2.0) -> Dict[str, np.ndarray]:
    """Columns `query`, `title`, `item_id` of the judged pairs with relevance >= `min_relevance`; with
    `negative_below`, also `negatives`: per row, the ids its query was judged < `negative_below` on."""
    rel = np.asarray(relevance, dtype=np.float64)
    q_all, items_all = np.asarray(query, dtype=object), np.asarray(item_id, dtype=object)
    keep = rel >= min_relevance
    q, items = q_all[keep], items_all[keep]
    missing = sorted({i for i in items.tolist() if i not in titles})
    if missing:
        raise KeyError(f"{len(missing)} judged items have no title, e.g. {missing[0]!r}")
    out = {QUERY: q, TITLE: np.array([titles[i] for i in items], dtype=object), ITEM: items}
    if negative_below is not None:
        pools: Dict[str, List[str]] = {}
        for text, item, value in zip(q_all.tolist(), items_all.tolist(), rel.tolist()):
            if value < negative_below and item in titles:
                pools.setdefault(text, []).append(item)
        out[NEGATIVES] = _tuples([tuple(pools.get(text, ())) for text in q.tolist()])
    return out


def _tuples(values: List[tuple]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def pseudo_queries(titles: Sequence[str], rng: np.random.Generator, words=(1, 4)) -> np.ndarray:
    """A few random words of each title, in title order, as a stand-in query (stop words and lone digits skipped).

    Tried and dropped: building them around the title's product-type word ('... Ceiling Register, White' ->
    'register'), as shoppers often type - it scored lower on held-out queries than uniformly random words.
    """
    out = np.empty(len(titles), dtype=object)
    for i, title in enumerate(titles):
        tokens = [w for w in _WORD.findall(title) if w.lower() not in _STOP and not w.isdigit()] or [title]
        n = min(len(tokens), int(rng.integers(words[0], words[1] + 1)))
        out[i] = " ".join(tokens[j] for j in sorted(rng.choice(len(tokens), n, replace=False)))
    return out


class TextTwoTower(TwoTowerModel):
    """TwoTowerModel whose loss masks a query's other positives and scores the extra negative titles of a batch
    (`negative_*` columns) against every query of the batch."""

    def compute_loss(self, features, training: bool = False) -> tf.Tensor:
        queries, candidates = self(features, training=training)
        n = tf.shape(queries)[0]
        ids = tf.reshape(features[ITEM], [-1])
        text = tf.reshape(features[QUERY], [-1])
        probability = tf.reshape(tf.cast(features[SAMPLING_PROBABILITY], tf.float32), [-1])
        if _NEG + TITLE in features:
            negatives = self.candidate_embedding({TITLE: tf.reshape(features[_NEG + TITLE], [-1])}, training=training)
            candidates = tf.concat([candidates, negatives], axis=0)
            ids = tf.concat([ids, tf.reshape(features[_NEG + ITEM], [-1])], axis=0)
            probability = tf.concat([probability, tf.reshape(features[_NEG + SAMPLING_PROBABILITY], [-1])], axis=0)
        # The same query text twice in a batch: each copy's positive is not a negative for the other.
        m = tf.shape(candidates)[0]
        same_query = tf.pad(tf.equal(text[:, None], text[None, :]), [[0, 0], [0, m - n]])
        mask = tf.logical_or(tf.logical_not(same_query), tf.eye(n, m, dtype=tf.bool))
        return self.task(queries, candidates,
                         candidate_sampling_probability=probability if self.config.logq_correction else None,
                         candidate_ids=ids, compute_metrics=False, compute_batch_metrics=False, score_mask=mask)


def _build(config: TextPairsConfig, directory: str) -> TextTwoTower:
    fitted = fit_features(text_pair_spec(config), {QUERY: np.array([""]), TITLE: np.array([""])}, directory)
    towers = {}
    for side, name in ((QUERY, "query_tower"), (TITLE, "candidate_tower")):
        tower_config = TowerConfig([side], embedding_dim=config.embedding_dim, hidden=list(config.hidden),
                                   output_dim=config.output_dim)
        towers[side] = Tower(FeatureEncoder.from_fitted(fitted, [side], name=f"{side}_encoder"), tower_config,
                             name=name)
    if config.shared in ("embeddings", "tower"):
        towers[TITLE].embeddings.tables[TITLE] = towers[QUERY].embeddings.tables[QUERY]
    if config.shared == "tower":
        towers[TITLE].mlp = towers[QUERY].mlp
    two_tower = TwoTowerConfig(towers[QUERY].config, towers[TITLE].config, candidate_id=ITEM,
                               temperature=config.temperature, logq_correction=config.logq_correction,
                               remove_accidental_hits=True, hard_negatives=config.hard_negatives)
    return TextTwoTower(towers[QUERY], towers[TITLE], two_tower, name="text_two_tower")


def _epoch(pairs: Dict[str, np.ndarray], catalog_ids: np.ndarray, catalog_titles: np.ndarray,
           config: TextPairsConfig, rng: np.random.Generator) -> tf.data.Dataset:
    """One epoch's batches: the judged pairs plus fresh pseudo-query pairs, shuffled, with the extra negatives."""
    columns = {k: np.asarray(v, dtype=object) for k, v in pairs.items()}
    if config.pseudo_queries:
        whole, part = divmod(config.pseudo_queries, 1.0)  # 1.5: every product once, a random half twice
        reps = np.concatenate([np.repeat(np.arange(len(catalog_ids)), int(whole)),
                               np.flatnonzero(rng.random(len(catalog_ids)) < part)])
        columns[QUERY] = np.concatenate([columns[QUERY], pseudo_queries(catalog_titles[reps], rng, config.pseudo_words)])
        columns[TITLE] = np.concatenate([columns[TITLE], catalog_titles[reps]])
        columns[ITEM] = np.concatenate([columns[ITEM], catalog_ids[reps]])
        if NEGATIVES in columns:
            columns[NEGATIVES] = np.concatenate([columns[NEGATIVES], _tuples([()] * len(reps))])
    order = rng.permutation(len(columns[QUERY]))
    columns = {k: v[order] for k, v in columns.items()}
    _, inverse, counts = np.unique(columns[ITEM].astype(str), return_inverse=True, return_counts=True)
    columns[SAMPLING_PROBABILITY] = (counts[inverse] / len(order)).astype(np.float32)
    n_batches = len(order) // config.batch_size
    keep = n_batches * config.batch_size
    data = {k: tf.constant(v[:keep].astype(str) if v.dtype == object else v[:keep])
            for k, v in columns.items() if k != NEGATIVES}
    ds = tf.data.Dataset.from_tensor_slices(data).batch(config.batch_size, drop_remainder=True)
    width = config.random_negatives + (config.batch_size if NEGATIVES in columns else 0)
    if width:
        picks = rng.integers(0, len(catalog_ids), size=(n_batches, width))
        titles, ids = catalog_titles[picks], catalog_ids[picks]
        if NEGATIVES in columns:  # column j < batch_size: a judged-irrelevant title of row j's query, if it has one
            position = {item: i for i, item in enumerate(catalog_ids.tolist())}
            for row, pool in enumerate(columns[NEGATIVES][:keep].tolist()):
                if pool:
                    j = position[pool[int(rng.integers(len(pool)))]]
                    b, c = divmod(row, config.batch_size)
                    titles[b, c], ids[b, c] = catalog_titles[j], catalog_ids[j]
        negatives = tf.data.Dataset.from_tensor_slices({
            _NEG + TITLE: tf.constant(titles.astype(str)), _NEG + ITEM: tf.constant(ids.astype(str)),
            _NEG + SAMPLING_PROBABILITY: tf.fill([n_batches, width], 1.0 / len(catalog_ids)),
        })
        ds = tf.data.Dataset.zip((ds, negatives)).map(lambda a, b: {**a, **b})
    return ds.prefetch(2)


def train_text_two_tower(pairs: Dict[str, np.ndarray], catalog: Table, config: Optional[TextPairsConfig] = None,
                         directory: Optional[str] = None, verbose: int = 0) -> TextTwoTower:
    """Trains the towers on `pairs` (columns of `training_pairs`) and pseudo-queries over `catalog`'s titles.

    `directory` receives the fitted feature spec (hashing only, no vocabulary); a temporary one by default.
    """
    config = config or TextPairsConfig()
    config.validate()
    missing = [c for c in (QUERY, TITLE, ITEM) if c not in pairs]
    if missing:
        raise KeyError(f"training pairs need columns {missing}")
    if len(pairs[QUERY]) + config.pseudo_queries * len(catalog) < config.batch_size:
        raise ValueError(f"fewer training pairs than one batch of {config.batch_size}")
    tf.keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = _build(config, directory or tempfile.mkdtemp(prefix="tfrec_text_pairs_"))
    optimizer = tf.keras.optimizers.Adagrad if config.optimizer == "adagrad" else tf.keras.optimizers.Adam
    model.compile(optimizer=optimizer(config.learning_rate))
    ids = np.asarray(catalog["item_id"], dtype=object)
    titles = np.asarray(catalog["title"], dtype=object)
    for epoch in range(config.epochs):
        history = model.fit(_epoch(pairs, ids, titles, config, rng), epochs=1, verbose=0)
        if verbose:
            print(f"epoch {epoch + 1}/{config.epochs}: loss {history.history['loss'][-1]:.4f}", flush=True)
    return model


def embed_texts(tower: Tower, texts: Iterable[str], batch_size: int = 2048) -> np.ndarray:
    """L2-normalised embeddings of raw texts by a one-feature tower (the query or the candidate tower), float32."""
    feature = tower.config.features[0]
    column = np.asarray(list(texts), dtype=object).astype(str)
    parts = [tower({feature: tf.constant(column[i:i + batch_size])}).numpy()
             for i in range(0, len(column), batch_size)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, tower.config.output_dim), np.float32)


class DenseTextChannel(CandidateSource):
    """The trained towers as a retrieval channel: titles embedded once into an exact index, queries at search time."""

    def __init__(self, model: TextTwoTower, catalog: Optional[Table] = None, name: str = "dense_text"):
        self.model = model
        self.name = name
        self.index = BruteForceIndex()
        if catalog is not None and len(catalog):
            self.add_items(catalog)

    def __len__(self) -> int:
        return len(self.index)

    def add_items(self, items: Table) -> None:
        ids = [str(i) for i in items["item_id"]]
        self.index.add(ids, embed_texts(self.model.candidate_tower, [str(t) for t in items["title"]]))

    def remove_items(self, item_ids: Iterable[str]) -> None:
        self.index.remove([i for i in item_ids if i in self.index])

    def search(self, queries: Sequence[str], k: int, filters=None) -> List[List[Candidate]]:
        if isinstance(queries, str):
            raise TypeError("search takes a list of queries; wrap a single query in a list")
        if any(f is not None for f in resolve_filters(filters, len(queries))):
            raise NotImplementedError("DenseTextChannel has no filters; filter the fused list instead")
        if not queries or k == 0 or not len(self.index):
            return [[] for _ in queries]
        found = self.index.search_candidates(embed_texts(self.model.query_tower, queries), min(k, len(self.index)))
        return [[Candidate(c.item_id, c.score, self.name) for c in row] for row in found]
