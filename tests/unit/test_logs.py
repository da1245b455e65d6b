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
