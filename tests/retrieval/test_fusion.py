"""Reciprocal-rank fusion: the maths on hand-computed lists, weights, and order-independent tie-breaking."""

import pytest

from tfrec.retrieval import Candidate, fuse_batch, reciprocal_rank_fusion


def ranked(*ids, source="s"):
    return [Candidate(i, float(len(ids) - n), source) for n, i in enumerate(ids)]


def as_dict(fused):
    return {c.item_id: c.score for c in fused}


def test_hand_computed_example_k60():
    fused = reciprocal_rank_fusion([ranked("a", "b", "c"), ranked("b", "d")], k=60)
    assert [c.item_id for c in fused] == ["b", "a", "d", "c"]
    assert as_dict(fused) == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 63, "d": 1 / 62})
    assert {c.source for c in fused} == {"rrf"}


def test_weights_scale_each_list():
    fused = reciprocal_rank_fusion([ranked("a", "b", "c"), ranked("b", "d")], k=60, weights=[1.0, 3.0])
    assert as_dict(fused) == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 3 / 61, "c": 1 / 63, "d": 3 / 62})
    # d (rank 2 of the heavy list) now beats a (rank 1 of the light list).
    assert [c.item_id for c in fused] == ["b", "d", "a", "c"]


def test_zero_weight_ignores_a_list_but_keeps_its_items_at_zero():
    fused = reciprocal_rank_fusion([ranked("a"), ranked("z")], weights=[1.0, 0.0])
    assert [(c.item_id, c.score) for c in fused] == [("a", pytest.approx(1 / 61)), ("z", 0.0)]


def test_ties_broken_by_best_rank_then_item_id_whatever_the_input_order():
    # k=0 keeps the scores exact: x=y=1, q=zm=an=1/2 (an: 1/4+1/4), p=r=1/3.
    first = ranked("x", "zm", "p", "an")
    second = ranked("y", "q", "r", "an")
    expected = ["x", "y", "q", "zm", "an", "p", "r"]
    assert [c.item_id for c in reciprocal_rank_fusion([first, second], k=0)] == expected
    assert [c.item_id for c in reciprocal_rank_fusion([second, first], k=0)] == expected


def test_duplicate_in_one_list_counts_once_at_its_best_rank():
    fused = reciprocal_rank_fusion([ranked("a", "b", "a")], k=10)
    assert as_dict(fused) == pytest.approx({"a": 1 / 11, "b": 1 / 12})


def test_limit_and_empty_inputs():
    lists = [ranked("a", "b", "c"), ranked("c", "d")]
    assert [c.item_id for c in reciprocal_rank_fusion(lists, limit=2)] == ["c", "a"]
    assert reciprocal_rank_fusion(lists, limit=0) == []
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


@pytest.mark.parametrize("kwargs", [dict(k=-1), dict(weights=[1.0]), dict(weights=[1.0, -2.0]), dict(limit=-1),
                                    dict(k=float("inf"))])
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([ranked("a"), ranked("b")], **kwargs)


def test_fuse_batch_fuses_query_by_query():
    lexical = [ranked("a", "b"), ranked("x")]
    dense = [ranked("b", "c"), []]
    fused = fuse_batch([lexical, dense], k=60)
    assert [[c.item_id for c in q] for q in fused] == [["b", "a", "c"], ["x"]]
    assert fuse_batch([]) == []
    with pytest.raises(ValueError, match="different numbers of queries"):
        fuse_batch([lexical, dense[:1]])
