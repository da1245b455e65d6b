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


def test_dated_times_put_one_events_reports_within_two_days_and_a_backfill_at_once():
    from bench.story_eval import DATED_SPAN_DAYS, REPORT_HOURS, dated_times

    events = Events(PAIRS, {"same_event": [["a2", "b1"]], "ambiguous": []})
    live = dated_times(events, seed=3, live=True)
    assert set(live) == set(events.event)
    for x, y in [("a1", "a2"), ("a1", "b2"), ("c1", "c2")]:
        if events.event[x] == events.event[y]:
            assert abs(live[x][0] - live[y][0]) <= REPORT_HOURS * 3600
    published = sorted(t for t, _ in live.values())
    assert published[-1] - published[0] <= (DATED_SPAN_DAYS * 24 + REPORT_HOURS) * 3600
    # Live: received within the hour after publication. Backfill: the same dates, one receipt time.
    assert all(0 <= received - t <= 3600 for t, received in live.values())
    backfill = dated_times(events, seed=3, live=False)
    assert [t for t, _ in backfill.values()] == [t for t, _ in live.values()]
    assert len({received for _, received in backfill.values()}) == 1
    assert min(backfill.values())[1] > published[-1]
    assert dated_times(events, seed=4, live=True) != live
