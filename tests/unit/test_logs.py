"""Rate-limited library logs: a broker outage is a few lines a minute, not dozens a second."""

from __future__ import annotations

import logging

import pytest

from newsflow.logs import RepeatLimiter, limit_repeats


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_each_message_passes_once_per_period_then_says_how_many_were_held_back():
    now = [0.0]
    limiter = RepeatLimiter(period=30, clock=lambda: now[0])
    connect = "Unable connect to node with id %s: %s"
    assert limiter.filter(_record("aiokafka", connect, 1, "refused"))
    passed = []
    for i in range(1, 300):  # ten seconds of retries, and then some
        now[0] = i * 0.1
        passed.append(limiter.filter(_record("aiokafka", connect, 1, f"refused {i}")))
    assert not any(passed)
    # Another message, logger or level is not held back by this one.
    assert limiter.filter(_record("aiokafka", "Unable to update metadata from %s", [1]))
    assert limiter.filter(_record("aiokafka.conn", connect, 1, "refused"))
    assert limiter.filter(_record("aiokafka", connect, 1, "refused", level=logging.WARNING))
    now[0] = 30.0
    record = _record("aiokafka", connect, 2, "refused")
    assert limiter.filter(record)
    assert (
        record.getMessage()
        == "Unable connect to node with id 2: refused (299 more like this in the last 30 s)"
    )
    now[0] = 61.0
    quiet = _record("aiokafka", connect, 2, "refused")
    assert limiter.filter(quiet) and quiet.getMessage().endswith("refused")  # none held back since


def test_the_kafka_clients_loggers_are_limited_and_ours_are_not(caplog: pytest.LogCaptureFixture):
    limiter = limit_repeats(period=60)
    sender = logging.getLogger("aiokafka.producer.sender")
    ours = logging.getLogger("newsflow.producer")
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(5):
                sender.warning("Got error produce response: %s", "NodeNotReadyError")
                ours.warning("send of %s failed", "a.html")
        assert [r.name for r in caplog.records].count("aiokafka.producer.sender") == 1
        assert [r.name for r in caplog.records].count("newsflow.producer") == 5
    finally:
        for name in ("aiokafka", *logging.root.manager.loggerDict):
            logging.getLogger(name).removeFilter(limiter)


def test_text_from_inputs_is_shown_without_acting_on_the_terminal():
    """Outlets, file names and titles come from inputs: an escape sequence, a newline (a forged
    line) or a bidirectional override is shown escaped, in log messages and in the commands'
    tables alike; a tab and text in any script are shown as they are."""
    import io

    from newsflow.localrun import summary_table
    from newsflow.logs import escape_controls, printable

    hostile = "esc\x1b[31mRED\x1b]0;PWN\x07\nX-Injected \u202eevil\u2028end\x85"
    shown = printable(hostile)
    assert shown == "esc\\x1b[31mRED\\x1b]0;PWN\\x07\\x0aX-Injected \\u202eevil\\u2028end\\x85"
    assert shown.isprintable() and printable("Zürich\tКиїв 東京") == "Zürich\tКиїв 東京"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("newsflow.test.printable")
    logger.addHandler(handler)
    factory = logging.getLogRecordFactory()
    try:
        escape_controls()
        logger.warning("skipped %s: unsupported_extension", f"inbox/{hostile}.exe")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("cleaning %s failed", "a\nb")
    finally:
        logging.setLogRecordFactory(factory)
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"skipped inbox/{shown}.exe: unsupported_extension"
    assert lines[1] == "cleaning a\\x0ab failed" and lines[2] == "Traceback (most recent call last):"
    record = {
        "article_id": "a1",
        "source": {"outlet": "out\x1b[2Jlet"},
        "story_id": "s-a1",
        "word_count": 120,
        "title": "Title\nForged row",
    }
    table = summary_table([record]).splitlines()
    assert len(table) == 2 and "\x1b" not in table[1] and "Title\\x0aForged row" in table[1]
