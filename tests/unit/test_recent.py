from __future__ import annotations

from newsflow.pipeline.recent import Recent, digest, shared_key, split_shared_key


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


def test_a_shared_cache_hands_out_what_it_computed_once_and_keeps_what_others_did_apart():
    recent: Recent[str] = Recent(size=4, share=True)
    a, b, c = digest("a"), digest("b"), digest("c")
    recent.put(a, "A")
    recent.put(b, "B")
    assert recent.take_fresh() == [(a, "A"), (b, "B")] and recent.take_fresh() == []
    # Another worker's result is kept for lookups but not handed out again (no echo between
    # workers); one kept already (this worker's own, come back) is not taken.
    assert recent.adopt(c, "C") and not recent.adopt(a, "other")
    assert recent.take_fresh() == [] and recent.get(c) == "C" and recent.get(a) == "A"
    # Unshared, nothing is kept for others.
    alone: Recent[str] = Recent(size=4)
    alone.put(a, "A")
    assert alone.take_fresh() == [] and alone.get(a) == "A"


def test_a_shared_results_key_names_its_step_and_input_and_nothing_else_parses_as_one():
    key = digest("text")
    assert split_shared_key(shared_key("ner:en_core_web_sm:3.8.0", key)) == ("ner:en_core_web_sm:3.8.0", key)
    assert split_shared_key(key) is None  # no step
    assert split_shared_key(b"ner" + key) is None  # no separator
    assert split_shared_key(b"\xff/" + key) is None  # not a step's name
