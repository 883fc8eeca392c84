"""Dense indexes: exactness of brute force, ANN recall, add/replace/remove, persistence and input validation."""

import numpy as np
import pytest

import tfrec  # noqa: F401 - sets up the environment first
from tfrec.retrieval.dense import BruteForceIndex, DenseIndex, load_index
from tfrec.retrieval.dense_ann import FaissIndex

ANN = [pytest.param(dict(kind="hnsw"), id="hnsw"), pytest.param(dict(kind="ivf_flat"), id="ivf")]


def clustered(n, d, n_clusters, seed):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, d))
    return (centers[rng.integers(0, n_clusters, n)] + 0.5 * rng.normal(size=(n, d))).astype(np.float32)


def naive_top_k(ids, vectors, queries, k):
    """Reference: score every item, sort by (-score, id) with Python's sort."""
    out_ids, out_scores = [], []
    for q in queries:
        scored = sorted(((-float(np.dot(v, q)), i) for i, v in zip(ids, vectors)))[:k]
        out_ids.append([i for _, i in scored])
        out_scores.append([-s for s, _ in scored])
    return np.array(out_ids, dtype=object), np.array(out_scores, dtype=np.float32)


def names(n, prefix="item"):
    return [f"{prefix}{i:05d}" for i in range(n)]


def test_brute_force_equals_naive_reference_with_many_ties():
    # Small integers make every dot product exact and produce many tied scores, including across the k-th position.
    rng = np.random.default_rng(1)
    vectors = rng.integers(-2, 3, size=(500, 8)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(40, 8)).astype(np.float32)
    ids = [f"id{j}" for j in rng.permutation(500)]  # id order unrelated to insertion order
    index = BruteForceIndex(max_batch_bytes=4 * 500 * 7).build(ids, vectors)  # 7 queries per batch
    for k in (1, 10, 37):
        got_ids, got_scores = index.search(queries, k)
        want_ids, want_scores = naive_top_k(ids, vectors, queries, k)
        assert got_ids.dtype == object and got_scores.dtype == np.float32
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_array_equal(got_scores, want_scores)


def test_brute_force_matches_reference_on_random_floats():
    vectors, queries = clustered(2000, 16, 20, 2), clustered(25, 16, 20, 3)
    ids = names(2000)
    got_ids, got_scores = BruteForceIndex().build(ids, vectors).search(queries, 15)
    want_ids, want_scores = naive_top_k(ids, vectors, queries, 15)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)


def test_ties_do_not_depend_on_insertion_order():
    vectors = np.ones((6, 3), dtype=np.float32)
    ids = ["f", "b", "e", "a", "d", "c"]
    got, scores = BruteForceIndex().build(ids, vectors).search(np.ones((1, 3), np.float32), 3)
    assert got.tolist() == [["a", "b", "c"]] and scores.tolist() == [[3.0, 3.0, 3.0]]


@pytest.fixture(scope="module")
def recall_data():
    vectors, queries = clustered(20_000, 32, 100, 4), clustered(300, 32, 100, 5)
    ids = names(20_000)
    exact, _ = BruteForceIndex().build(ids, vectors).search(queries, 10)
    return ids, vectors, queries, exact


@pytest.mark.parametrize("kw", ANN)
def test_ann_recall_at_10_against_brute_force(recall_data, kw):
    ids, vectors, queries, exact = recall_data
    found, scores = FaissIndex(**kw).build(ids, vectors).search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
    assert recall >= 0.9, recall
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    # The scores an ANN index reports are true inner products.
    vec = dict(zip(ids, vectors))
    np.testing.assert_allclose(scores[0], [vec[i] @ queries[0] for i in found[0]], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make", [BruteForceIndex] + [lambda kw=p.values[0]: FaissIndex(**kw) for p in ANN],
                         ids=["brute", "hnsw", "ivf"])
def test_add_replace_remove(make):
    vectors = clustered(3000, 16, 10, 6)
    index = make().build(names(3000), vectors)
    probe = np.zeros((1, 16), np.float32)
    probe[0, 0] = 1.0
    # A new item pointing far along the probe becomes the top hit.
    index.add(["new"], (probe * 100).astype(np.float32))
    assert len(index) == 3001 and index.search(probe, 5)[0][0, 0] == "new"
    # Replacing an existing id moves it: its old vector must never be returned.
    index.add(["item00007"], (probe * 200).astype(np.float32))
    ids, scores = index.search(probe, 5)
    assert len(index) == 3001 and ids[0, :2].tolist() == ["item00007", "new"] and scores[0, 0] == 200.0
    index.add(["item00007"], (-probe * 200).astype(np.float32))
    assert index.search(-probe, 1)[0][0, 0] == "item00007"
    assert index.search(probe, 5)[0][0, 0] == "new" and len(index) == 3001
    # Removed items never appear, even when asking for everything; unknown ids are ignored.
    removed = ["new"] + names(3000)[:1000:3]
    index.remove(removed + ["never-indexed"])
    index.remove(removed)
    assert len(index) == 3001 - len(removed)
    everything = index.search(np.vstack([probe, -probe, vectors[:20]]), 10_000)[0]
    present = {i for i in everything.ravel() if i is not None}
    assert present.isdisjoint(removed) and "new" not in index
    assert everything.shape[1] == len(index)


def test_hnsw_tombstones_trigger_rebuild_and_stay_hidden():
    vectors = clustered(2000, 8, 5, 7)
    index = FaissIndex(kind="hnsw", rebuild_fraction=0.5).build(names(2000), vectors)
    index.remove(names(2000)[:300])  # below the threshold: tombstones
    assert index._n == 2000 and len(index) == 1700
    assert not set(index.search(vectors[:50], 50)[0].ravel()) & set(names(2000)[:300])
    index.remove(names(2000)[300:1200])  # past the threshold: compacted
    assert index._n == len(index) == 800
    assert not set(index.search(vectors[:50], 50)[0].ravel()) & set(names(2000)[:1200])


@pytest.mark.parametrize("make", [BruteForceIndex, lambda: FaissIndex(kind="hnsw"), lambda: FaissIndex(kind="ivf_flat")],
                         ids=["brute", "hnsw", "ivf"])
def test_save_load_round_trip(tmp_path, make):
    vectors, queries = clustered(3000, 16, 10, 8), clustered(30, 16, 10, 9)
    index = make().build(names(3000), vectors)
    index.remove(names(3000)[:50])  # tombstones (HNSW) must survive the round trip too
    before = index.search(queries, 20)
    index.save(str(tmp_path))
    loaded = load_index(str(tmp_path))
    assert type(loaded) is type(index) and loaded.params() == index.params() and len(loaded) == len(index)
    after = loaded.search(queries, 20)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    loaded.add(["x"], queries[:1] * 10)
    assert loaded.search(queries[:1], 1)[0][0, 0] == "x"
    with pytest.raises(ValueError, match="not a"):
        (FaissIndex if isinstance(index, BruteForceIndex) else BruteForceIndex).load(str(tmp_path))


@pytest.mark.parametrize("make", [BruteForceIndex, FaissIndex], ids=["brute", "faiss"])
def test_k_larger_than_index_returns_what_exists(make):
    index = make().build(["a", "b", "c"], np.eye(3, dtype=np.float32))
    ids, scores = index.search(np.eye(3, dtype=np.float32), 10)
    assert ids.shape == scores.shape == (3, 3)
    assert ids[:, 0].tolist() == ["a", "b", "c"] and sorted(ids[0]) == ["a", "b", "c"]
    index.remove(["a", "b", "c"])
    assert index.search(np.eye(3, dtype=np.float32), 4)[0].shape == (3, 0)


def test_search_candidates_carry_the_channel_name():
    index = BruteForceIndex().build(["a", "b"], np.eye(2, dtype=np.float32))
    (cands,) = index.search_candidates(np.array([[0.0, 2.0]], np.float32), 5)
    assert [(c.item_id, c.score, c.source) for c in cands] == [("b", 2.0, "dense_exact"), ("a", 0.0, "dense_exact")]


@pytest.mark.parametrize("make", [BruteForceIndex, FaissIndex], ids=["brute", "faiss"])
def test_input_validation(make):
    index = make()
    with pytest.raises(ValueError, match="never built|empty"):
        index.search(np.zeros((1, 4), np.float32), 1)
    with pytest.raises(ValueError, match="vectors must be a float array"):
        index.build(["a"], np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="vectors contains NaN or inf \\(first at row 1\\)"):
        index.build(["a", "b"], np.array([[0, 1], [np.nan, 0]], np.float32))
    with pytest.raises(ValueError, match="vectors has 1 rows for 2 item ids"):
        index.build(["a", "b"], np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="item_ids contains duplicate id 'a'"):
        index.build(["a", "a"], np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="item_ids must be non-empty strings"):
        index.build([1, 2], np.zeros((2, 4), np.float32))
    index.build(["a", "b"], np.eye(2, 4, dtype=np.float64))  # float64 is accepted and cast
    with pytest.raises(ValueError, match="query_vectors has dimension 3, the index has dimension 4"):
        index.search(np.zeros((1, 3), np.float32), 1)
    with pytest.raises(ValueError, match="query_vectors must be 2-D .* vectors\\[None, :\\]"):
        index.search(np.zeros(4, np.float32), 1)
    with pytest.raises(ValueError, match="query_vectors contains NaN"):
        index.search(np.full((1, 4), np.inf, np.float32), 1)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(np.zeros((1, 4), np.float32), 0)
    with pytest.raises(ValueError, match="vectors has dimension 5, the index has dimension 4"):
        index.add(["c"], np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match="single string"):
        index.remove("a")
    assert len(index) == 2


def test_faiss_rejects_bad_parameters():
    with pytest.raises(ValueError, match="kind must be one of"):
        FaissIndex(kind="lsh")
    with pytest.raises(ValueError, match="ef_search must be a positive integer"):
        FaissIndex(ef_search=0)
    with pytest.raises(ValueError, match="rebuild_fraction"):
        FaissIndex(rebuild_fraction=0.0)
    assert issubclass(FaissIndex, DenseIndex)
