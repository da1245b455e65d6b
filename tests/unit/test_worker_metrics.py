"""The worker's metrics keep their label sets bounded."""

from __future__ import annotations

from newsflow.worker.metrics import OTHER_OUTLETS, OutletLabels


def test_outlets_beyond_the_limit_share_one_label():
    label = OutletLabels(limit=2)
    assert [label(o) for o in ("a.example", "b.example", "c.example", "a.example")] == [
        "a.example",
        "b.example",
        OTHER_OUTLETS,
        "a.example",
    ]
    assert label.known == {"a.example", "b.example"}
