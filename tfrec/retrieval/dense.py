"""Dense (embedding) indexes: top-k items by inner product with a query embedding, behind one interface.

Every index maps string item ids to float32 rows of an (n_items, d) matrix, scores by dot product (the two-tower
model's similarity; normalise the vectors first for cosine) and breaks score ties by item id, so results never depend
on insertion order. `BruteForceIndex` is exact and is the reference the approximate indexes (`dense_ann`) are measured
against.
"""

from __future__ import annotations

import abc
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from tfrec.retrieval.base import Candidate

__all__ = ["BruteForceIndex", "DenseIndex", "load_index"]

_META_FILE = "tfrec_dense.json"
_VECTORS_FILE = "vectors.npy"
_IDS_FILE = "item_ids.json"
_REGISTRY: Dict[str, type] = {}


def check_ids(item_ids, name: str = "item_ids") -> np.ndarray:
    """Ids must be distinct non-empty strings (Candidate.item_id is a string); returns them as an object array."""
    if isinstance(item_ids, str):
        raise ValueError(f"{name} must be a sequence of strings, got a single string {item_ids!r}")
    ids = list(item_ids)
    bad = [i for i in ids if not isinstance(i, str) or not i]
    if bad:
        raise ValueError(f"{name} must be non-empty strings, got {bad[0]!r} ({type(bad[0]).__name__})")
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i in ids:
            if i in seen:
                dup = i
                break
            seen.add(i)
        raise ValueError(f"{name} contains duplicate id {dup!r}")
    out = np.empty(len(ids), dtype=object)
    out[:] = ids
    return out


def check_vectors(vectors, name: str, dim: Optional[int] = None, rows: Optional[int] = None) -> np.ndarray:
    """A finite 2-D real float matrix (float64 is cast to float32); ints, NaN and inf are refused, not coerced."""
    arr = np.asarray(vectors)
    if arr.dtype.kind != "f":
        raise ValueError(f"{name} must be a float array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        hint = " (use vectors[None, :] for a single vector)" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n, d), got shape {arr.shape}{hint}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]}, the index has dimension {dim}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows for {rows} item ids")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has dimension 0")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        row = int(np.nonzero(~np.isfinite(arr).all(axis=1))[0][0])
        raise ValueError(f"{name} contains NaN or inf (first at row {row})")
    return arr


def check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def order_by_score_then_id(ids: np.ndarray, scores: np.ndarray, keys: np.ndarray, k: int):
    """Sorts each row by descending score, ties by ascending `keys` (an id rank), and keeps the first k columns."""
    order = np.lexsort((keys, -scores), axis=1)[:, :k]
    return np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)


class DenseIndex(abc.ABC):
    """Top-k inner-product search over item embeddings, updatable item by item and persistable to a directory.

    `search` returns `(ids, scores)`: an [n_queries, min(k, len(index))] object array of item ids and float32
    scores, best first. An approximate index that finds fewer than that many items pads with id None, score -inf.
    """

    #: name written into `Candidate.source` by `search_candidates`
    name: str = "dense"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(self):
        self.dim: Optional[int] = None
        self._ids = np.empty(0, dtype=object)  # per slot; None marks a removed slot
        self._vectors = np.empty((0, 0), dtype=np.float32)  # capacity buffer, first `_n` rows used
        self._n = 0
        self._slot: Dict[str, int] = {}
        self._rank: Optional[np.ndarray] = None  # per-slot position in sorted id order, rebuilt lazily

    # -- storage shared by all indexes: item id <-> slot, vectors in slot order ---------------------------------------

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, item_id) -> bool:
        return item_id in self._slot

    @property
    def item_ids(self) -> List[str]:
        """Indexed ids, in slot order."""
        return [i for i in self._ids[: self._n] if i is not None]

    def vector(self, item_id: str) -> np.ndarray:
        return self._vectors[self._slot[item_id]].copy()

    def _reset(self, dim: int) -> None:
        self.dim = dim
        self._ids = np.empty(0, dtype=object)
        self._vectors = np.empty((0, dim), dtype=np.float32)
        self._n = 0
        self._slot = {}
        self._rank = None

    def _append(self, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Appends rows (growing capacity geometrically so repeated small adds stay amortised O(rows))."""
        need = self._n + len(ids)
        if need > len(self._vectors):
            cap = max(need, 2 * len(self._vectors), 1024)
            grown = np.empty((cap, self.dim), dtype=np.float32)
            grown[: self._n] = self._vectors[: self._n]
            grown_ids = np.empty(cap, dtype=object)
            grown_ids[: self._n] = self._ids[: self._n]
            self._vectors, self._ids = grown, grown_ids
        slots = np.arange(self._n, need)
        self._vectors[slots] = vectors
        self._ids[slots] = ids
        self._slot.update(zip(ids.tolist(), slots.tolist()))
        self._n = need
        self._rank = None
        return slots

    def _detach(self, item_ids: Iterable[str]) -> np.ndarray:
        """Forgets ids (unknown ones ignored) and returns their now-dead slots."""
        dead = [self._slot.pop(i) for i in item_ids if i in self._slot]
        dead = np.asarray(dead, dtype=np.int64)
        self._ids[dead] = None
        self._rank = None
        return dead

    def _compact(self) -> None:
        """Drops dead slots so live items occupy slots 0..len-1 in their previous relative order."""
        live = np.fromiter((i is not None for i in self._ids[: self._n]), dtype=bool, count=self._n)
        ids, vectors = self._ids[: self._n][live], self._vectors[: self._n][live]
        self._reset(self.dim)
        if len(ids):
            self._append(ids, vectors)

    def _id_rank(self) -> np.ndarray:
        """Per-slot rank of the item id in sorted order (dead slots rank last), used to break score ties."""
        if self._rank is None:
            ids = self._ids[: self._n]
            live = np.nonzero(ids != None)[0]  # noqa: E711 - elementwise comparison on an object array
            rank = np.full(self._n, np.iinfo(np.int64).max, dtype=np.int64)
            rank[live[np.argsort(ids[live].astype(str), kind="stable")]] = np.arange(len(live))
            self._rank = rank
        return self._rank

    # -- public API -------------------------------------------------------------------------------------------------

    def build(self, item_ids: Sequence[str], vectors) -> "DenseIndex":
        """Replaces the whole index with these items; the vector dimension is fixed here."""
        ids = check_ids(item_ids)
        vecs = check_vectors(vectors, "vectors", rows=len(ids))
        self._reset(vecs.shape[1])
        self._append(ids, vecs)
        self._rebuild()
        return self

    def add(self, item_ids: Sequence[str], vectors) -> None:
        """Adds items; an id already indexed is replaced by its new vector (its old vector is never returned)."""
        ids = check_ids(item_ids)
        if self.dim is None:
            self.build(ids, vectors)
            return
        vecs = check_vectors(vectors, "vectors", dim=self.dim, rows=len(ids))
        if len(ids) == 0:
            return
        dead = self._detach(ids.tolist())
        slots = self._append(ids, vecs)
        self._on_add(slots, dead)

    def remove(self, item_ids: Iterable[str]) -> None:
        """Removes items by id; unknown ids are ignored so removal is idempotent."""
        if isinstance(item_ids, str):
            raise ValueError(f"item_ids must be a sequence of strings, got a single string {item_ids!r}")
        dead = self._detach(list(item_ids))
        if len(dead):
            self._on_remove(dead)

    def search(self, query_vectors, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """Top `k` items per query by inner product, ties by item id; k beyond the index size returns every item."""
        k = check_k(k)
        if self.dim is None:
            raise ValueError("the index is empty: call build() first")
        queries = check_vectors(query_vectors, "query_vectors", dim=self.dim)
        width = min(k, len(self))
        if width == 0:
            return np.empty((len(queries), 0), dtype=object), np.empty((len(queries), 0), dtype=np.float32)
        slots, scores = self._search_slots(queries, width)
        found = slots >= 0  # an approximate index marks "nothing found" with slot -1
        safe = np.where(found, slots, 0)
        ids, rank = self._ids[safe], self._id_rank()[safe]  # gathers only: no O(n_items) copy per call
        ids[~found], rank[~found] = None, np.iinfo(np.int64).max
        scores = np.where(found, scores, -np.inf).astype(np.float32)
        return order_by_score_then_id(ids, scores, rank, width)

    def search_candidates(self, query_vectors, k: int) -> List[List[Candidate]]:
        """`search` as `Candidate` lists, the form fusion with the other channels takes."""
        ids, scores = self.search(query_vectors, k)
        return [[Candidate(i, float(s), self.name) for i, s in zip(row_ids, row_scores) if i is not None]
                for row_ids, row_scores in zip(ids, scores)]

    def save(self, directory: str) -> None:
        """Writes ids, vectors, parameters and any index structure, so `load` needs no rebuild."""
        if self.dim is None:
            raise ValueError("cannot save an index that was never built")
        os.makedirs(directory, exist_ok=True)
        np.save(os.path.join(directory, _VECTORS_FILE), self._vectors[: self._n])
        with open(os.path.join(directory, _IDS_FILE), "w", encoding="utf-8") as f:
            json.dump(self._ids[: self._n].tolist(), f)
        meta = {"class": type(self).__name__, "dim": self.dim, "params": self.params()}
        self._save_structure(directory)
        with open(os.path.join(directory, _META_FILE), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)

    @classmethod
    def load(cls, directory: str) -> "DenseIndex":
        """Reads an index written by `save`; called on the base class it returns whichever subclass was saved."""
        with open(os.path.join(directory, _META_FILE), encoding="utf-8") as f:
            meta = json.load(f)
        if meta["class"] not in _REGISTRY:
            import tfrec.retrieval.dense_ann  # noqa: F401 - registers the approximate indexes

        target = _REGISTRY.get(meta["class"])
        if target is None or not issubclass(target, cls):
            raise ValueError(f"{directory} holds a {meta['class']}, not a {cls.__name__}")
        index = target(**meta["params"])
        index._reset(int(meta["dim"]))
        with open(os.path.join(directory, _IDS_FILE), encoding="utf-8") as f:
            ids = json.load(f)
        vectors = np.load(os.path.join(directory, _VECTORS_FILE))
        slot_ids = np.empty(len(ids), dtype=object)
        slot_ids[:] = ids
        if len(ids):
            index._append(slot_ids, vectors)
            index._slot = {i: s for s, i in enumerate(ids) if i is not None}
        index._load_structure(directory)
        return index

    # -- what each index implements -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def params(self) -> dict:
        """Constructor arguments, saved so `load` recreates the same configuration."""

    @abc.abstractmethod
    def _search_slots(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """[n, >=k] slots (-1 for nothing) and scores; must include every item tied with the k-th score it found."""

    def _rebuild(self) -> None:
        """Builds the search structure from the live slots."""

    def _on_add(self, new_slots: np.ndarray, dead_slots: np.ndarray) -> None:
        self._rebuild()

    def _on_remove(self, dead_slots: np.ndarray) -> None:
        self._rebuild()

    def _save_structure(self, directory: str) -> None:
        pass

    def _load_structure(self, directory: str) -> None:
        self._rebuild()


def load_index(directory: str) -> DenseIndex:
    """Loads any saved dense index."""
    return DenseIndex.load(directory)


class BruteForceIndex(DenseIndex):
    """Exact search: one BLAS matmul per query batch, argpartition for the top k, ties resolved exactly by id.

    Queries are processed in batches whose score matrix stays under `max_batch_bytes`, so a large query batch against
    a large catalog cannot allocate an n_queries x n_items matrix at once.
    """

    name = "dense_exact"

    def __init__(self, max_batch_bytes: int = 256 * 2**20):
        super().__init__()
        if max_batch_bytes < 1:
            raise ValueError(f"max_batch_bytes must be positive, got {max_batch_bytes}")
        self.max_batch_bytes = int(max_batch_bytes)

    def params(self) -> dict:
        return {"max_batch_bytes": self.max_batch_bytes}

    def _on_remove(self, dead_slots: np.ndarray) -> None:
        self._compact()  # exact search scans every row, so dead rows would cost time on every query

    def _on_add(self, new_slots: np.ndarray, dead_slots: np.ndarray) -> None:
        if len(dead_slots):
            self._compact()

    def _search_slots(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        if len(self) != self._n:
            self._compact()
        items = self._vectors[: self._n]
        rank = self._id_rank()
        batch = max(1, self.max_batch_bytes // (4 * self._n))
        out_slots = np.empty((len(queries), k), dtype=np.int64)
        out_scores = np.empty((len(queries), k), dtype=np.float32)
        for start in range(0, len(queries), batch):
            scores = queries[start:start + batch] @ items.T
            out_slots[start:start + batch], out_scores[start:start + batch] = _exact_top_k(scores, rank, k)
        return out_slots, out_scores


def _exact_top_k(scores: np.ndarray, rank: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k columns per row by (score desc, rank asc); argpartition alone would pick arbitrarily among ties at k."""
    n_items = scores.shape[1]
    if k >= n_items:
        top = np.broadcast_to(np.arange(n_items), scores.shape)
    else:
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, 1)
    slots, sorted_scores = order_by_score_then_id(top, top_scores, rank[top], k)
    if k < n_items:
        # A row whose k-th score is shared by more items than argpartition kept: redo it with all tied items.
        kth = sorted_scores[:, -1]
        crowded = np.nonzero((scores >= kth[:, None]).sum(axis=1) > k)[0]
        for row in crowded:
            cand = np.nonzero(scores[row] >= kth[row])[0]
            order = np.lexsort((rank[cand], -scores[row, cand]))[:k]
            slots[row], sorted_scores[row] = cand[order], scores[row, cand[order]]
    return slots, sorted_scores
