"""Text two-tower on a hand-made toy shop, and learned rank fusion.

The toy shop's queries name products by synonyms its titles never use ('sofa' for a couch), so no lexical overlap
helps: the towers must learn the mapping from judged pairs and generalise to colour/product combinations whose
queries they never saw.
"""

import itertools

import numpy as np
import pytest

from tfrec.data.schema import CATALOG_SCHEMA, Table
from tfrec.retrieval.base import Candidate
from tfrec.retrieval.fusion import (fit_fusion_weights, fit_score_fusion, fuse_batch, reciprocal_rank_fusion,
                                    weighted_reciprocal_rank_fusion)
from tfrec.retrieval.text_pairs import (DenseTextChannel, TextPairsConfig, pseudo_queries, train_text_two_tower,
                                        training_pairs)
from tfrec.training.metrics import recall_at_k

NOUNS = {"couch": "sofa", "faucet": "tap", "lamp": "light", "rug": "carpet", "stool": "seat", "kettle": "boiler",
         "drill": "driver", "hose": "pipe", "shelf": "rack", "mirror": "glass", "blanket": "throw", "fan": "blower"}
COLORS = ["red", "blue", "green", "black", "white", "grey", "brown", "pink"]
BRANDS = ["Acme", "Zenith", "Orion", "Vega", "Nova", "Polar"]


def toy_shop():
    ids, titles, judged = [], [], []
    for n, (noun, color, brand) in enumerate(itertools.product(NOUNS, COLORS, BRANDS)):
        ids.append(f"p{n}")
        titles.append(f"{brand} {color.title()} {noun.title()} Model {brand[:2].upper()}{n:03d}")
        judged.append((f"{color} {NOUNS[noun]}", f"p{n}", 3.0))
    queries = sorted({q for q, _, _ in judged})
    rng = np.random.default_rng(0)
    test = set(rng.choice(queries, 20, replace=False).tolist())
    return Table(CATALOG_SCHEMA, {"item_id": ids, "title": titles}), judged, test


@pytest.fixture(scope="module")
def toy():
    catalog, judged, test = toy_shop()
    train = [j for j in judged if j[0] not in test]
    titles = dict(zip(catalog["item_id"], catalog["title"]))
    q, items, rel = map(np.array, zip(*train))
    pairs = training_pairs(q.astype(object), items.astype(object), rel.astype(float), titles, 2.5)
    config = TextPairsConfig(hash_bins=4096, embedding_dim=32, output_dim=32, batch_size=32, epochs=12,
                             learning_rate=0.2, pseudo_queries=0.0, seed=0)
    model = train_text_two_tower(pairs, catalog, config)
    relevant = {}
    for query, item, _ in judged:
        relevant.setdefault(query, set()).add(item)
    return catalog, model, sorted(test), relevant


def test_towers_learn_synonyms_and_generalise_to_unseen_queries(toy):
    catalog, model, test, relevant = toy
    channel = DenseTextChannel(model, catalog)
    assert len(channel) == len(catalog)
    found = channel.search(test, k=10)
    assert all(len(row) == 10 and row[0].source == "dense_text" for row in found)
    ours = recall_at_k([[c.item_id for c in row] for row in found], [relevant[q] for q in test], 10)
    rng = np.random.default_rng(1)
    chance = recall_at_k([rng.choice(catalog["item_id"], 10, replace=False).tolist() for _ in test],
                         [relevant[q] for q in test], 10)
    print(f"toy recall@10: towers {ours:.3f}, random {chance:.3f}")
    assert ours > 0.5 and ours > chance + 0.4, (ours, chance)


def test_channel_add_and_remove_items(toy):
    catalog, model, test, _ = toy
    channel = DenseTextChannel(model, catalog.take(np.arange(10)))
    channel.remove_items(["p0", "unknown"])
    assert len(channel) == 9 and all(c.item_id != "p0" for c in channel.search(test[:2], k=20)[0])
    assert channel.search([], k=5) == [] and channel.search(test[:1], k=0) == [[]]


def test_pseudo_queries_are_title_words_in_order():
    rng = np.random.default_rng(0)
    out = pseudo_queries(["BEHR Premium Textured DeckOver 1-gal. Tugboat Wood Coating"] * 50, rng, (1, 3))
    words = "BEHR Premium Textured DeckOver 1 gal Tugboat Wood Coating".split()
    for text in out:
        parts = text.split()
        assert 1 <= len(parts) <= 3 and "1" not in parts
        assert [words.index(p) for p in parts] == sorted(words.index(p) for p in parts)


def ranked(*ids, source="s"):
    return [Candidate(i, float(len(ids) - n), source) for n, i in enumerate(ids)]


def test_weighted_rrf_with_equal_weights_is_plain_rrf():
    a = [ranked("a", "b", "c"), ranked("x", "y")]
    b = [ranked("b", "d"), ranked("y", "z", "x")]
    for weights in (None, {"lex": 1.0, "dense": 1.0}, {"lex": 2.5, "dense": 2.5}):
        fused = weighted_reciprocal_rank_fusion({"lex": a, "dense": b}, weights, k=60)
        assert [[c.item_id for c in row] for row in fused] == [[c.item_id for c in row] for row in fuse_batch([a, b])]
    fused = weighted_reciprocal_rank_fusion({"lex": a, "dense": b}, {"lex": 1.0, "dense": 3.0}, k=10)
    assert fused[0] == reciprocal_rank_fusion([a[0], b[0]], k=10, weights=[1.0, 3.0], source="weighted_rrf")
    with pytest.raises(ValueError, match="weights name channels"):
        weighted_reciprocal_rank_fusion({"lex": a, "dense": b}, {"lex": 1.0})


def test_fit_fusion_weights_drops_a_useless_channel():
    rng = np.random.default_rng(0)
    items = [f"i{j}" for j in range(200)]
    relevant, good, noise = [], [], []
    for _ in range(60):
        target = rng.choice(items, 2, replace=False).tolist()
        others = [i for i in rng.permutation(items).tolist() if i not in target]
        relevant.append(set(target))
        good.append(ranked(*(others[:3] + target + others[3:40])))  # relevant at ranks 4 and 5
        noise.append(ranked(*others[40:80]))  # never relevant
    for order in (("good", "noise"), ("noise", "good")):
        channels = {"good": good, "noise": noise}
        fitted = fit_fusion_weights({n: channels[n] for n in order}, relevant, metric="recall@5")
        assert fitted.weights["good"] == 1.0 and fitted.weights["noise"] == 0.0, fitted
        assert fitted.score == pytest.approx(1.0)
        fused = fitted.fuse({n: channels[n] for n in order}, limit=5)
        assert [set(c.item_id for c in row[3:5]) for row in fused] == relevant
    plain = fit_fusion_weights({"a": good, "b": good}, relevant)
    assert plain.weights == {"a": 1.0, "b": 1.0} and plain.k == 60.0  # ties keep plain RRF


def test_score_fusion_learns_that_agreement_means_relevant():
    # Each channel ranks two junk items of its own above the relevant item, which both list third.
    rng = np.random.default_rng(0)
    a, b, relevant = [], [], []
    for q in range(80):
        items = rng.permutation([f"q{q}i{j}" for j in range(40)]).tolist()
        target, junk_a, junk_b, rest = items[0], items[1:3], items[3:5], items[5:]
        relevant.append({target})
        a.append(ranked(*junk_a, target, *rest[:15]))
        b.append(ranked(*junk_b, target, *rest[15:30]))
    train, test = slice(0, 60), slice(60, 80)
    model = fit_score_fusion({"a": a[train], "b": b[train]}, relevant[train])
    fused = model.fuse({"b": b[test], "a": a[test]}, limit=10)  # channel order does not matter
    assert recall_at_k([[c.item_id for c in row] for row in fused], relevant[test], 1) == 1.0
    assert recall_at_k([[c.item_id for c in row] for row in a[test]], relevant[test], 2) == 0.0
    assert len(fused[0]) == 10 and fused[0][0].source == "score_fusion"
    with pytest.raises(ValueError, match="fitted on channels"):
        model.fuse({"a": a[test]})
