"""Candidate retrieval: channels that turn a query into a few hundred candidate items, and fusion of their lists.

Retrieval is the recall stage before ranking; each channel implements `CandidateSource` so lexical (tantivy BM25) and
learned (two-tower) channels can be combined with `reciprocal_rank_fusion`.
"""

from tfrec.retrieval.base import Candidate, CandidateSource, SearchFilters
from tfrec.retrieval.dense import BruteForceIndex, DenseIndex, load_index
from tfrec.retrieval.dense_ann import FaissIndex
from tfrec.retrieval.fusion import fuse_batch, reciprocal_rank_fusion
from tfrec.retrieval.lexical import DEFAULT_BOOSTS, LexicalConfig, LexicalIndex

__all__ = [
    "BruteForceIndex",
    "DEFAULT_BOOSTS",
    "DenseIndex",
    "FaissIndex",
    "load_index",
    "Candidate",
    "CandidateSource",
    "LexicalConfig",
    "LexicalIndex",
    "SearchFilters",
    "fuse_batch",
    "reciprocal_rank_fusion",
]
