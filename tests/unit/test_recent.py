from __future__ import annotations

from newsflow.pipeline.recent import Recent, digest


def test_the_least_recently_used_result_goes_first_and_lookups_are_counted():
    recent: Recent[str] = Recent(size=2)
    a, b, c = digest("a"), digest("b"), digest(b"c")
    recent.put(a, "A")
    recent.put(b, "B")
    assert recent.get(a) == "A"  # a is now the more recently used
    recent.put(c, "C")
    assert recent.get(b) is None and recent.get(a) == "A" and recent.get(c) == "C"
    assert len(recent) == 2 and (recent.hits, recent.misses) == (3, 1)


def test_a_size_of_zero_keeps_nothing():
    recent: Recent[str] = Recent(size=0)
    recent.put(digest("a"), "A")
    assert recent.get(digest("a")) is None and len(recent) == 0


def test_digests_tell_inputs_apart_and_a_text_equals_its_utf8_bytes():
    assert digest("Kyiv") != digest("Kiev") and len(digest("Kyiv")) == 16
    assert digest("Kraków") == digest("Kraków".encode())
