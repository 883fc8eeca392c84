"""Approximate dense index on faiss (CPU): HNSW graph by default, IVF-Flat as the cheaper-to-build alternative.

Removal, and replacement (remove + append), differ by structure:
- HNSW: a faiss HNSW graph cannot delete nodes (`IndexHNSW.remove_ids` is not implemented, and wrapping it in
  `IndexIDMap2` only forwards to that), so removed items become tombstones that an `IDSelectorBitmap` excludes at
  search time. Tombstones still cost graph hops, so once they exceed `rebuild_fraction` of the slots the graph is
  rebuilt from the live vectors.
- IVF-Flat: inverted lists support real deletion, so removed items are deleted with `remove_ids`; when dead slots
  pass `rebuild_fraction` the lists are refilled with compacted ids, reusing the trained centroids.
The index keeps its own float32 copy of the vectors (the shared `DenseIndex` store) for those rebuilds and `save`.
"""

from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import faiss
import numpy as np

from tfrec.retrieval.dense import DenseIndex

__all__ = ["FaissIndex"]

_FAISS_FILE = "faiss.index"
_KINDS = ("hnsw", "ivf_flat")


class FaissIndex(DenseIndex):
    """Approximate inner-product search with faiss.

    kind='hnsw': `M` graph neighbours per node (memory and recall up), `ef_construction` build beam, `ef_search`
    search beam (the recall/latency knob, raised to k when k is larger).
    kind='ivf_flat': `nlist` k-means cells (default 4*sqrt(n)), `nprobe` cells scanned per query.
    Ties are broken by item id among the items the approximate search found.
    """

    name = "dense_ann"

    def __init__(self, kind: str = "hnsw", M: int = 32, ef_construction: int = 100, ef_search: int = 256,
                 nlist: Optional[int] = None, nprobe: int = 32, rebuild_fraction: float = 0.2):
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        for arg, value in (("M", M), ("ef_construction", ef_construction), ("ef_search", ef_search),
                           ("nprobe", nprobe)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if nlist is not None and (isinstance(nlist, bool) or not isinstance(nlist, int) or nlist < 1):
            raise ValueError(f"nlist must be a positive integer or None, got {nlist!r}")
        if not 0.0 < rebuild_fraction <= 1.0:
            raise ValueError(f"rebuild_fraction must be in (0, 1], got {rebuild_fraction!r}")
        self.kind, self.M, self.ef_construction, self.ef_search = kind, M, ef_construction, ef_search
        self.nlist, self.nprobe, self.rebuild_fraction = nlist, nprobe, rebuild_fraction
        self._faiss = None
        self._selector = None  # (bitmap, IDSelectorBitmap) over live slots; the array must outlive the selector

    def params(self) -> dict:
        return {"kind": self.kind, "M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search,
                "nlist": self.nlist, "nprobe": self.nprobe, "rebuild_fraction": self.rebuild_fraction}

    def build(self, item_ids, vectors) -> "FaissIndex":
        self._faiss = None  # a fresh build retrains IVF centroids on the new catalog
        return super().build(item_ids, vectors)

    # -- structure maintenance ------------------------------------------------------------------------------------------

    def _effective_nlist(self, n: int) -> int:
        """Requested nlist, or 4*sqrt(n); never more cells than n/39 so k-means has enough points per centroid."""
        wanted = self.nlist if self.nlist is not None else int(4 * math.sqrt(n))
        return max(1, min(wanted, n // 39 if n >= 39 else 1))

    def _new_structure(self):
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            return index
        n = len(self)
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, self._effective_nlist(n), faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()  # the IVF index now frees the quantizer
        live = self._vectors[: self._n][self._live_mask()]
        sample = min(len(live), 32 * index.nlist)  # k-means cost grows with the sample; 32 per cell is enough
        rng = np.random.default_rng(0)  # deterministic training so rebuilds give the same cells
        index.train(live[rng.choice(len(live), sample, replace=False)] if sample < len(live) else live)
        return index

    def _live_mask(self) -> np.ndarray:
        return np.fromiter((i is not None for i in self._ids[: self._n]), dtype=bool, count=self._n)

    def _rebuild(self) -> None:
        """Compacts the slots and builds the faiss structure from scratch (IVF keeps its centroids if trained)."""
        self._compact()
        self._selector = None
        if len(self) == 0:
            self._faiss = None
            return
        if self.kind == "ivf_flat" and self._faiss is not None and self._faiss.is_trained:
            self._faiss.reset()
        else:
            self._faiss = self._new_structure()
        self._insert(np.arange(self._n))

    def _insert(self, slots: np.ndarray) -> None:
        vectors = self._vectors[slots]
        if self.kind == "hnsw":
            assert self._faiss.ntotal == slots[0], "HNSW labels must stay equal to slots"
            self._faiss.add(vectors)
        else:
            self._faiss.add_with_ids(vectors, slots.astype(np.int64))

    def _too_many_dead(self) -> bool:
        return self._n - len(self) > self.rebuild_fraction * max(self._n, 1)

    def _on_add(self, new_slots: np.ndarray, dead_slots: np.ndarray) -> None:
        if self._faiss is None or self._too_many_dead():
            self._rebuild()
            return
        self._delete(dead_slots)
        self._insert(new_slots)

    def _on_remove(self, dead_slots: np.ndarray) -> None:
        if self._too_many_dead():
            self._rebuild()
        else:
            self._delete(dead_slots)

    def _delete(self, dead_slots: np.ndarray) -> None:
        self._selector = None
        if self.kind == "ivf_flat" and len(dead_slots):
            self._faiss.remove_ids(faiss.IDSelectorBatch(dead_slots.astype(np.int64)))

    def _live_selector(self):
        """Bitmap of live slots for HNSW searches while tombstones exist (None when there are none)."""
        if self.kind != "hnsw" or len(self) == self._n:
            return None
        if self._selector is None:
            bitmap = np.packbits(self._live_mask(), bitorder="little")
            self._selector = (bitmap, faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)))
        return self._selector[1]

    # -- search and persistence -----------------------------------------------------------------------------------------

    def _search_slots(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.ef_search, k)
            selector = self._live_selector()
            if selector is not None:
                params.sel = selector
        else:
            params = faiss.SearchParametersIVF()
            params.nprobe = min(self.nprobe, self._faiss.nlist)
        scores, slots = self._faiss.search(queries, k, params=params)
        return slots, scores

    def _save_structure(self, directory: str) -> None:
        if self._faiss is not None:
            faiss.write_index(self._faiss, os.path.join(directory, _FAISS_FILE))

    def _load_structure(self, directory: str) -> None:
        path = os.path.join(directory, _FAISS_FILE)
        if not os.path.exists(path):
            self._rebuild()
            return
        self._faiss = faiss.read_index(path)
        if self._faiss.ntotal != (self._n if self.kind == "hnsw" else len(self)):
            raise ValueError(f"{path} holds {self._faiss.ntotal} vectors, the saved ids describe {self._n} slots")
