"""A query -> product text two-tower trained on judged (query, product) pairs: the learned channel fused with BM25.

Why: lexical matching misses synonyms, morphology and intent ('tresers' -> chest of drawers, 'ceiling diffuser' ->
register); an embedding model trained on relevance judgments learns those, and its errors differ from BM25's, so
reciprocal-rank fusion of the two beats either. Only text is used (query words, title words, their character
trigrams, all hashed), so every catalog item - judged or not, old or new - gets an embedding, and unseen queries
and model numbers still share trigram tokens with the training data.

Training (`train_text_two_tower`):
- positives are the (query, product) pairs judged >= `min_relevance`; a query with several positives appears once
  per positive, and in each softmax its other positives are masked out instead of being counted as negatives;
- in-batch softmax with log-Q correction (tfrs Retrieval) plus `random_negatives` titles drawn uniformly from the
  whole catalog per batch: judged products are a biased sample, while retrieval ranks all of them;
- `pseudo_queries`: per product and epoch, a few random words of its own title as an extra (query, product) pair,
  which teaches the towers the whole catalog's vocabulary, not only the words of the training queries;
- `shared_embeddings`: one hashed token table for query and title words, so a word means the same in both towers
  from the first step (the towers' dense layers stay separate).
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec.data.schema import Table
from tfrec.features.encoder import FeatureEncoder
from tfrec.features.spec import FeatureConfig, FeatureSpec
from tfrec.features.stats import fit_features
from tfrec.models.two_tower import SAMPLING_PROBABILITY, Tower, TowerConfig, TwoTowerConfig, TwoTowerModel
from tfrec.retrieval.base import Candidate, CandidateSource, resolve_filters
from tfrec.retrieval.dense import BruteForceIndex

__all__ = ["TextPairsConfig", "TextTwoTower", "DenseTextChannel", "pseudo_queries", "text_pair_spec",
           "train_text_two_tower", "training_pairs"]

QUERY, TITLE, ITEM, NEGATIVES = "query", "title", "item_id", "negatives"
_NEG = "negative_"  # prefix of the random-negative columns in a batch
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset("a an and for in of on or the to with x by".split())
_HEAD_END = re.compile(r" in (?=[A-Z])| with | for |,|\(| - ")  # ' in Chrome', not the size '22 in. '


@dataclasses.dataclass
class TextPairsConfig:
    """Features, towers and training of the text two-tower (see the module docstring for the choices)."""

    hash_bins: int = 2 ** 18
    char_ngrams: int = 3
    query_max_tokens: int = 12
    title_max_tokens: int = 32
    embedding_dim: int = 64
    hidden: List[int] = dataclasses.field(default_factory=list)
    output_dim: int = 64
    temperature: float = 0.05
    min_relevance: float = 2.5
    pseudo_queries: int = 0
    pseudo_words: Sequence[int] = (1, 4)
    pseudo_style: str = "random"
    query_word_dropout: float = 0.0
    random_negatives: int = 0
    negative_below: Optional[float] = None
    mined_negatives: int = 0
    shared_embeddings: bool = False
    shared_tower: bool = False
    split_grams: bool = False
    hard_negatives: Optional[int] = None
    logq_correction: bool = True
    batch_size: int = 256
    epochs: int = 8
    learning_rate: float = 0.005
    optimizer: str = "adam"
    seed: int = 0

    def validate(self) -> None:
        if self.pseudo_queries < 0 or self.random_negatives < 0 or self.epochs < 1 or self.batch_size < 2:
            raise ValueError("pseudo_queries and random_negatives must be >= 0, epochs >= 1, batch_size >= 2")
        low, high = self.pseudo_words
        if not 1 <= low <= high:
            raise ValueError(f"pseudo_words must be (low, high) with 1 <= low <= high, got {self.pseudo_words}")


def _features(config: "TextPairsConfig", side: str) -> List[str]:
    return [f"{side}_words", f"{side}_grams"] if config.split_grams else [side]


def text_pair_spec(config: TextPairsConfig) -> FeatureSpec:
    """Hashed text features of the query and title sides (the same bins, so tables can be shared): `query`/`title`
    (words + character n-grams in one bag) or, with `split_grams`, `<side>_words` and `<side>_grams` (two bags)."""
    features = []
    for side, max_tokens in ((QUERY, config.query_max_tokens), (TITLE, config.title_max_tokens)):
        for name in _features(config, side):
            grams = 0 if name.endswith("_words") else config.char_ngrams
            features.append(FeatureConfig(name, kind="text", hash_bins=config.hash_bins, max_tokens=max_tokens,
                                          char_ngrams=grams))
    return FeatureSpec(features)


class TextTower(Tower):
    """A Tower whose features all read one raw text input (`source`), e.g. its words and its character n-grams."""

    def __init__(self, encoder: FeatureEncoder, config: TowerConfig, source: str, **kwargs):
        super().__init__(encoder, config, **kwargs)
        self.source = source

    def call(self, features, training=False):
        text = features[self.source]
        return super().call({name: text for name in self.config.features}, training=training)

    def get_config(self):
        return {**super().get_config(), "source": self.source}


def training_pairs(query: Sequence[str], item_id: Sequence[str], relevance: Sequence[float],
                   titles: Dict[str, str], min_relevance: float, negative_below: Optional[float] = None,
                   mined: Optional[Mapping[str, Sequence[str]]] = None) -> Dict[str, np.ndarray]:
    """Columns `query`, `title`, `item_id` of the judged pairs with relevance >= `min_relevance`, and with
    `negative_below` or `mined` a `negatives` column: per row, ids to draw its extra negative from - those its query
    was judged < `negative_below` on, plus `mined[query]` (e.g. unjudged top lexical hits) minus anything judged
    >= `negative_below`."""
    rel = np.asarray(relevance, dtype=np.float64)
    q_all = np.asarray(query, dtype=object)
    items_all = np.asarray(item_id, dtype=object)
    keep = rel >= min_relevance
    q, items = q_all[keep], items_all[keep]
    out = {QUERY: q, TITLE: np.array([titles[i] for i in items], dtype=object), ITEM: items}
    if negative_below is not None or mined:
        cut = min_relevance if negative_below is None else negative_below
        pools: Dict[str, Dict[str, None]] = {}
        good: Dict[str, set] = {}
        for text, item, value in zip(q_all.tolist(), items_all.tolist(), rel.tolist()):
            if value < cut:
                pools.setdefault(text, {})[item] = None
            else:
                good.setdefault(text, set()).add(item)
        for text, found in (mined or {}).items():
            pool = pools.setdefault(text, {})
            pool.update((i, None) for i in found if i not in good.get(text, ()))
        out[NEGATIVES] = np.empty(len(q), dtype=object)
        out[NEGATIVES][:] = [tuple(pools.get(text, ())) for text in q.tolist()]
    return out


def pseudo_queries(titles: Sequence[str], rng: np.random.Generator, words=(1, 4), style: str = "random") -> np.ndarray:
    """Stand-in queries made of a few words of each title, in title order (stop words and lone digits skipped).

    `random`: any words. `head`: the last word before the first ' in <Colour>', ' with ', ' for ', ',', '(' or ' - ' -
    usually the product type ('... Ceiling Register, White with ...' -> 'Register') - plus random others, as
    shoppers type it.
    """
    out = np.empty(len(titles), dtype=object)
    for i, title in enumerate(titles):
        tokens = [w for w in _WORD.findall(title) if w.lower() not in _STOP and not w.isdigit()] or [title]
        n = min(len(tokens), int(rng.integers(words[0], words[1] + 1)))
        if style == "head":
            head_words = [w for w in _WORD.findall(_HEAD_END.split(title)[0]) if w in tokens]
            head = tokens.index(head_words[-1]) if head_words else len(tokens) - 1
            others = [j for j in range(len(tokens)) if j != head]
            picked = [head] + (rng.choice(others, n - 1, replace=False).tolist() if n > 1 else [])
        else:
            picked = rng.choice(len(tokens), n, replace=False).tolist()
        out[i] = " ".join(tokens[j] for j in sorted(picked))
    return out


def drop_words(texts: Sequence[str], rng: np.random.Generator, rate: float) -> np.ndarray:
    """Each word of each text dropped with probability `rate` (at least one kept): augmentation of real queries."""
    out = np.empty(len(texts), dtype=object)
    for i, text in enumerate(texts):
        words = text.split()
        kept = [w for w in words if rng.random() >= rate] if len(words) > 1 else words
        out[i] = " ".join(kept) if kept else words[int(rng.integers(len(words)))]
    return out


class TextTwoTower(TwoTowerModel):
    """TwoTowerModel whose loss masks a query's other positives and scores extra negative titles (`negative_*`
    batch columns: judged-irrelevant and random catalog titles) against every query of the batch."""

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
        # The same query text twice in a batch: each copy's other positive is not a negative for it.
        m = tf.shape(candidates)[0]
        same_query = tf.pad(tf.equal(text[:, None], text[None, :]), [[0, 0], [0, m - n]])
        mask = tf.logical_or(tf.logical_not(same_query), tf.eye(n, m, dtype=tf.bool))
        return self.task(queries, candidates,
                         candidate_sampling_probability=probability if self.config.logq_correction else None,
                         candidate_ids=ids, compute_metrics=False, compute_batch_metrics=False, score_mask=mask)


def _build(config: TextPairsConfig, directory: str) -> TextTwoTower:
    spec = text_pair_spec(config)
    fitted = fit_features(spec, {n: np.array([""], dtype=object) for n in spec.names}, directory)  # hashing only
    towers = {}
    for side, name in ((QUERY, "query_tower"), (TITLE, "candidate_tower")):
        features = _features(config, side)
        tower_config = TowerConfig(features, embedding_dim=config.embedding_dim, hidden=list(config.hidden),
                                   output_dim=config.output_dim)
        encoder = FeatureEncoder.from_fitted(fitted, features, name=f"{side}_encoder")
        towers[side] = TextTower(encoder, tower_config, source=side, name=name)
    if config.shared_embeddings or config.shared_tower:
        for query_feature, title_feature in zip(_features(config, QUERY), _features(config, TITLE)):
            towers[TITLE].embeddings.tables[title_feature] = towers[QUERY].embeddings.tables[query_feature]
    if config.shared_tower:
        towers[TITLE].mlp = towers[QUERY].mlp
    two_tower = TwoTowerConfig(towers[QUERY].config, towers[TITLE].config, candidate_id=ITEM,
                               temperature=config.temperature, logq_correction=config.logq_correction,
                               remove_accidental_hits=True, hard_negatives=config.hard_negatives)
    return TextTwoTower(towers[QUERY], towers[TITLE], two_tower, name="text_two_tower")


def _epoch(pairs: Dict[str, np.ndarray], catalog_ids: np.ndarray, catalog_titles: np.ndarray,
           config: TextPairsConfig, rng: np.random.Generator) -> tf.data.Dataset:
    columns = {k: np.asarray(v, dtype=object) for k, v in pairs.items()}
    if config.query_word_dropout:
        columns[QUERY] = drop_words(columns[QUERY], rng, config.query_word_dropout)
    if config.pseudo_queries:
        reps = np.repeat(np.arange(len(catalog_ids)), config.pseudo_queries)
        fake = pseudo_queries(catalog_titles[reps], rng, config.pseudo_words, config.pseudo_style)
        columns[QUERY] = np.concatenate([columns[QUERY], fake])
        columns[TITLE] = np.concatenate([columns[TITLE], catalog_titles[reps]])
        columns[ITEM] = np.concatenate([columns[ITEM], catalog_ids[reps]])
        if NEGATIVES in columns:
            none = np.empty(len(reps), dtype=object)
            none[:] = [()] * len(reps)
            columns[NEGATIVES] = np.concatenate([columns[NEGATIVES], none])
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
        if NEGATIVES in columns:  # one judged-irrelevant title of the row's own query where it has one
            index = {item: i for i, item in enumerate(catalog_ids.tolist())}
            for row, pool in enumerate(columns[NEGATIVES][:keep].tolist()):
                if pool:
                    j = index[pool[int(rng.integers(len(pool)))]]
                    titles[row // config.batch_size, row % config.batch_size] = catalog_titles[j]
                    ids[row // config.batch_size, row % config.batch_size] = catalog_ids[j]
        negatives = tf.data.Dataset.from_tensor_slices({
            _NEG + TITLE: tf.constant(titles.astype(str)), _NEG + ITEM: tf.constant(ids.astype(str)),
            _NEG + SAMPLING_PROBABILITY: tf.fill([n_batches, width], 1.0 / len(catalog_ids)),
        })
        ds = tf.data.Dataset.zip((ds, negatives)).map(lambda a, b: {**a, **b})
    return ds.prefetch(2)


def train_text_two_tower(pairs: Dict[str, np.ndarray], catalog: Table, config: Optional[TextPairsConfig] = None,
                         directory: Optional[str] = None, verbose: int = 0) -> TextTwoTower:
    """Trains the two-tower on `pairs` (columns query/title/item_id, see `training_pairs`) over `catalog`'s titles."""
    config = config or TextPairsConfig()
    config.validate()
    missing = [c for c in (QUERY, TITLE, ITEM) if c not in pairs]
    if missing:
        raise KeyError(f"training pairs need columns {missing}")
    if len(pairs[QUERY]) < config.batch_size and not config.pseudo_queries:
        raise ValueError(f"{len(pairs[QUERY])} training pairs are fewer than one batch of {config.batch_size}")
    tf.keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    directory = directory or tempfile.mkdtemp(prefix="tfrec_text_pairs_")
    model = _build(config, directory)
    model.compile(optimizer=_optimizer(config))
    ids = np.asarray(catalog["item_id"], dtype=object)
    titles = np.asarray(catalog["title"], dtype=object)
    for epoch in range(config.epochs):
        history = model.fit(_epoch(pairs, ids, titles, config, rng), epochs=1, verbose=0)
        if verbose:
            print(f"epoch {epoch + 1}/{config.epochs}: loss {history.history['loss'][-1]:.4f}", flush=True)
    return model


def _optimizer(config: TextPairsConfig):
    if config.optimizer == "adam":
        return tf.keras.optimizers.Adam(config.learning_rate)
    if config.optimizer == "adagrad":  # updates only the rows of the hashed tables a batch touches: fast
        return tf.keras.optimizers.Adagrad(config.learning_rate)
    raise ValueError(f"optimizer must be 'adam' or 'adagrad', got {config.optimizer!r}")


def embed(tower: TextTower, texts: Iterable[str], batch_size: int = 2048) -> np.ndarray:
    """L2-normalised tower embeddings of raw texts, float32."""
    column = np.asarray(list(texts), dtype=object).astype(str)
    parts = [tower({tower.source: tf.constant(column[i:i + batch_size])}).numpy()
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
        self.index.add(ids, embed(self.model.candidate_tower, [str(t) for t in items["title"]]))

    def remove_items(self, item_ids: Iterable[str]) -> None:
        self.index.remove([i for i in item_ids if i in self.index])

    def search(self, queries: Sequence[str], k: int, filters=None) -> List[List[Candidate]]:
        if isinstance(queries, str):
            raise TypeError("search takes a list of queries; wrap a single query in a list")
        if any(f is not None for f in resolve_filters(filters, len(queries))):
            raise NotImplementedError("DenseTextChannel has no filters; filter the fused list instead")
        if not queries or k == 0:
            return [[] for _ in queries]
        found = self.index.search_candidates(embed(self.model.query_tower, queries), min(k, len(self.index)))
        return [[Candidate(c.item_id, c.score, self.name) for c in row] for row in found]
