"""The purity benchmark's event labels (bench/story_eval.py `Events`), on pairs made up here."""

from __future__ import annotations

import pytest

from bench.story_eval import Events


def _pair(a: str, b: str, overall: float) -> dict:
    return {"pair_id": f"{a}_{b}", "overall": overall, "a": {"id": a}, "b": {"id": b}}


PAIRS = [_pair("a1", "a2", 1.0), _pair("b1", "b2", 1.5), _pair("c1", "c2", 2.5), _pair("d1", "d2", 4.0)]


def test_labels_join_pairs_and_ambiguity_never_hides_a_link():
    events = Events(PAIRS, {"same_event": [["a2", "b1"]], "ambiguous": [["a1", "a2", "b1", "c1"]]})
    assert events.event["a1"] == events.event["b2"]  # a judged pair, a label, a judged pair
    # The ambiguous group covers a1..b1, all one event: only its links to c1 are left out.
    assert events.ambiguous == {frozenset(("a1", "c1")), frozenset(("a2", "c1")), frozenset(("b1", "c1"))} | {
        frozenset(("c1", "c2"))
    }
    # Two stories: the a/b event together, everything else alone.
    stories = {"a1": "s", "a2": "s", "b1": "s", "b2": "s", "c1": "t", "c2": "u", "d1": "v", "d2": "w"}
    assert events.purity(stories) == (1.0, 1.0)
    # d1 and c1 put with the a/b event: 6 right pairs, 6 wrong ones (d1 with each of the five
    # others, c1 with b2); c1 with a1, a2 and b1 is ambiguous and not counted.
    stories |= {"d1": "s", "c1": "s"}
    assert events.purity(stories) == pytest.approx((6 / 12, 1.0))


def test_labels_may_not_overrule_a_pair_judged_different():
    with pytest.raises(ValueError, match="d1/d2"):
        Events(PAIRS, {"same_event": [["d1", "a1", "d2"]], "ambiguous": []})
