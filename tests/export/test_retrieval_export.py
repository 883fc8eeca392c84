"""`tfrec export` of a retrieval run writes three versions (retrieval with the catalog, query tower, candidate
tower), each with a card matching its SavedModel and the run and warm-up records the server replays (the
candidate tower's on catalog rows); the retrieval model's `classify` gives over real gRPC the top-k item ids and
scores of Predict, which are the in-memory towers' brute-force top k."""

import numpy as np
import pytest
import tensorflow as tf

from export_helpers import (SMALL_SHOP, check_card, check_warmup, classification_arrays, classify_request,
                            example_protos, predict_request, train_and_export)
from tfrec.training import retrieval_job

K = 10
NAMES = ("retrieval", "retrieval_query_tower", "retrieval_candidate_tower")
# configs/retrieval.yaml with small towers and mean pooling (the same graph pieces, cheaper to trace and warm up)
# and batches the small shop fills (training drops incomplete batches).
SLIM_TOWERS = {"model.query.sequence_pooling": "mean", "model.query.hidden": [], "model.query.embedding_dim": 8,
               "model.query.output_dim": 16, "model.candidate.hidden": [], "model.candidate.embedding_dim": 8,
               "model.candidate.output_dim": 16, "training.batch_size": 64}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    config, run, models = train_and_export(
        tmp_path_factory, retrieval_job, retrieval_job.train_retrieval, retrieval_job.load_retrieval_config,
        "retrieval.yaml", {"data.preset": "tiny", "data.synthetic": SMALL_SHOP, **SLIM_TOWERS}, "--k", str(K))
    return config, run, {name: models / name / "1" for name in NAMES}


@pytest.fixture(scope="module")
def served(exported, serve_models):
    return serve_models({name: path.parent for name, path in exported[2].items()})


def test_cards_match_the_saved_models_and_the_run(exported):
    config, run, paths = exported
    cards = {name: check_card(path, run.run_dir) for name, path in paths.items()}
    assert [cards[n]["model"] for n in NAMES] == ["two_tower_retrieval", "two_tower_query_tower",
                                                  "two_tower_candidate_tower"]
    assert cards["retrieval"]["k"] == K and cards["retrieval"]["catalog_size"] == SMALL_SHOP["n_items"]
    assert cards["retrieval"]["signatures"]["classify"]["outputs"]["classes"] == {"dtype": "string", "shape": [-1, K]}
    assert "classify" not in cards["retrieval_query_tower"]["signatures"]
    assert set(cards["retrieval"]["training_data"]["splits"]) == {"train", "validation", "test", "catalog"}
    assert cards["retrieval"]["metrics"]["test"][0]["name"] == "two-tower"


def test_server_replays_every_warmup_record_of_each_export(exported, served):
    config, run, paths = exported
    query = retrieval_job.read_split(config, run.run_dir, "train")
    catalog = retrieval_job.read_catalog(config, run.run_dir)
    first_query = {n: query[n][0] for n in ("user_id", "recent_items", "query")}
    check_warmup(paths["retrieval"], "retrieval", served[2], first_query)
    check_warmup(paths["retrieval_query_tower"], "retrieval_query_tower", served[2], first_query)
    check_warmup(paths["retrieval_candidate_tower"], "retrieval_candidate_tower", served[2],
                 {n: catalog[n][0] for n in ("item_id", "title", "price")})


def test_classify_gives_the_top_k_of_predict_and_of_the_in_memory_towers(exported, served):
    config, run, _ = exported
    _, stub, _ = served
    spec = run.model.query_tower.encoder.spec
    test = retrieval_job.read_split(config, run.run_dir, "test")
    rows = {n: test[n][:8] for n in spec.names}
    labels, scores = classification_arrays(stub.Classify(classify_request("retrieval", "classify",
                                                                          example_protos(rows))))
    predicted = stub.Predict(predict_request("retrieval", "serving_default", rows, spec)).outputs
    np.testing.assert_array_equal(labels, tf.make_ndarray(predicted["item_ids"]).astype(str))
    np.testing.assert_allclose(scores, tf.make_ndarray(predicted["scores"]), rtol=1e-6, atol=1e-6)

    queries = run.model.query_tower.embed(rows)
    tower = stub.Predict(predict_request("retrieval_query_tower", "serving_default", rows, spec)).outputs
    np.testing.assert_allclose(tf.make_ndarray(tower["embedding"]), queries, rtol=1e-5, atol=1e-6)
    catalog = retrieval_job.read_catalog(config, run.run_dir)
    all_scores = queries @ run.model.candidate_tower.embed(catalog).T
    np.testing.assert_allclose(scores, -np.sort(-all_scores, axis=1)[:, :K], rtol=1e-5, atol=1e-5)
    index = {item: j for j, item in enumerate(catalog["item_id"])}
    for i, row in enumerate(labels):  # each returned id scores what the brute force gives it
        np.testing.assert_allclose(all_scores[i, [index[item] for item in row]], scores[i], rtol=1e-5, atol=1e-5)
