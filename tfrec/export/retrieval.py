"""Exports of a two-tower model for TF Serving: the query tower, the candidate tower, and a retrieval model whose
graph holds the whole catalog's candidate embeddings (brute force: a matmul and top-k, plain TF ops any stock TF
Serving runs).

Re-indexing a changed catalog (new or removed items) only recomputes candidate embeddings and writes a new version
of the retrieval model; the towers are not retrained.

`export_two_tower` traces the query tower once (`query_function`) for both the retrieval model and the query tower.
The retrieval model's `classify` signature (serialized tf.Examples of query features as `inputs`) returns the top-k
item ids as classes with their scores, for TF Serving's Classify API. Warm-up records use the caller's query rows
(retrieval, query tower) and the first catalog rows (candidate tower).
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec._tfrs import tfrs
from tfrec.export.saved_model import default_row, export_saved_model
from tfrec.export.signatures import top_k_classify
from tfrec.models.two_tower import TwoTowerModel

WARMUP_CATALOG_ROWS = 8  # catalog rows in the candidate tower's warm-up records


def embed_candidates(model: TwoTowerModel, catalog_features: Mapping[str, np.ndarray], batch_size: int = 4096) -> np.ndarray:
    """Candidate-tower embeddings of every catalog row, batched."""
    return model.candidate_tower.embed(catalog_features, batch_size)


def build_brute_force_index(model: TwoTowerModel, item_ids: np.ndarray, embeddings: np.ndarray, k: int,
                            query_tower: bool = True):
    """A tfrs BruteForce layer over the given candidate embeddings, querying through the query tower (or, with
    `query_tower=False`, taking query embeddings)."""
    if len(item_ids) != len(embeddings):
        raise ValueError(f"{len(item_ids)} item ids but {len(embeddings)} embeddings")
    if len(item_ids) == 0:
        raise ValueError("cannot index an empty catalog")
    index = tfrs.layers.factorized_top_k.BruteForce(model.query_tower if query_tower else None, k=min(k, len(item_ids)))
    index.index(tf.constant(embeddings, tf.float32), tf.constant(np.asarray(item_ids).astype(str)))
    return index


def query_function(model: TwoTowerModel) -> Callable[[Dict[str, tf.Tensor]], tf.Tensor]:
    """The query tower (raw query features → normalised embedding) as one traced concrete function."""
    spec = model.query_tower.encoder.spec
    try:
        model.query_embedding(default_row(spec))  # variables first, so the trace below happens once
    except Exception:  # noqa: BLE001 - only a speed-up, as in export_saved_model
        pass

    @tf.function(input_signature=[spec.signature()])
    def embed(features):
        return model.query_embedding(features)

    return embed.get_concrete_function()


def export_retrieval(
    model: TwoTowerModel,
    catalog_features: Mapping[str, np.ndarray],
    base_dir: str,
    name: str = "retrieval",
    k: int = 100,
    version: Optional[int] = None,
    info: Optional[Mapping] = None,
    overwrite: bool = False,
    query_fn: Optional[Callable] = None,
    warmup_rows: Optional[Mapping[str, Sequence]] = None,
) -> str:
    """Writes the retrieval model: raw query features in, `item_ids` [batch, k] and `scores` [batch, k] out.
    `query_fn` (default `query_function(model)`) embeds the queries; `warmup_rows`: a few real query rows."""
    embeddings = embed_candidates(model, catalog_features)
    k = min(k, len(embeddings))
    index = build_brute_force_index(model, catalog_features[model.config.candidate_id], embeddings, k, query_tower=False)
    query_fn = query_fn or query_function(model)

    def outputs(features) -> Dict[str, tf.Tensor]:
        scores, ids = index(query_fn(features))
        return {"item_ids": ids, "scores": scores}

    state = tf.Module()  # what the signature reads: the index and the query tower
    state.index, state.query_tower = index, model.query_tower
    card = {"model": "two_tower_retrieval", "k": int(k), "catalog_size": int(len(embeddings)), **dict(info or {})}
    return export_saved_model(state, outputs, model.query_tower.encoder.spec, base_dir, name, version, card, overwrite,
                              {"classify": top_k_classify("item_ids", "scores")}, warmup_rows)


def export_query_tower(model: TwoTowerModel, base_dir: str, name: str = "query_tower", version: Optional[int] = None,
                       info: Optional[Mapping] = None, overwrite: bool = False, query_fn: Optional[Callable] = None,
                       warmup_rows: Optional[Mapping[str, Sequence]] = None) -> str:
    """Raw query features in, the normalised `embedding` out."""
    query_fn = query_fn or model.query_embedding
    return export_saved_model(
        model.query_tower, lambda f: {"embedding": query_fn(f)}, model.query_tower.encoder.spec,
        base_dir, name, version, {"model": "two_tower_query_tower", **dict(info or {})}, overwrite,
        warmup_rows=warmup_rows,
    )


def export_candidate_tower(model: TwoTowerModel, base_dir: str, name: str = "candidate_tower", version: Optional[int] = None,
                           info: Optional[Mapping] = None, overwrite: bool = False,
                           warmup_rows: Optional[Mapping[str, Sequence]] = None) -> str:
    """Raw item features in, the normalised `embedding` out."""
    return export_saved_model(
        model.candidate_tower, lambda f: {"embedding": model.candidate_embedding(f)}, model.candidate_tower.encoder.spec,
        base_dir, name, version, {"model": "two_tower_candidate_tower", **dict(info or {})}, overwrite,
        warmup_rows=warmup_rows,
    )


def export_two_tower(model: TwoTowerModel, catalog_features: Mapping[str, np.ndarray], base_dir: str,
                     name: str = "retrieval", k: int = 100, version: Optional[int] = None,
                     info: Optional[Mapping] = None, overwrite: bool = False,
                     warmup_rows: Optional[Mapping[str, Sequence]] = None) -> Dict[str, str]:
    """All three exports: `<name>` (retrieval with the catalog), `<name>_query_tower`, `<name>_candidate_tower`.
    `warmup_rows`: a few real query rows for the warm-up records (the candidate tower's come from the catalog)."""
    query_fn = query_function(model)
    catalog_rows = {k: np.asarray(v)[:WARMUP_CATALOG_ROWS] for k, v in catalog_features.items()}
    return {
        "retrieval": export_retrieval(model, catalog_features, base_dir, name, k, version, info, overwrite, query_fn,
                                      warmup_rows),
        "query_tower": export_query_tower(model, base_dir, f"{name}_query_tower", version, info, overwrite, query_fn,
                                          warmup_rows),
        "candidate_tower": export_candidate_tower(model, base_dir, f"{name}_candidate_tower", version, info, overwrite,
                                                  catalog_rows),
    }
