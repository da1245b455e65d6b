"""The producer's sender keeps a bounded number of bytes in flight and nothing once they settle.

The Kafka client is replaced by a fake at its edge (acknowledgements under the test's control);
tests/integration/test_producer_kafka.py runs the real one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry

from newsflow.pipeline.records import RawArticle, Source
from newsflow.producer import publish
from newsflow.producer.metrics import create_metrics
from newsflow.producer.publish import Publisher
from newsflow.producer.settings import ProducerSettings
from newsflow.settings import KafkaSettings


class FakeKafka:
    """Accepts sends at once; acknowledges them when the test says so."""

    def __init__(self) -> None:
        self.unacked: list[asyncio.Future[Any]] = []
        self.sent = 0

    async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[Any]:
        self.sent += 1
        self.last = (topic, value, key, headers)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.unacked.append(fut)
        return fut

    def ack_all(self) -> None:
        for fut in self.unacked:
            if not fut.done():
                fut.set_result(None)
        self.unacked.clear()


def article(n: int, size: int) -> RawArticle:
    return RawArticle(f"a{n}", b"x" * size, Source(f"{n}.txt", "wire", "text/plain", "2026-12-01T00:00:00Z"))


def test_sends_wait_once_the_bytes_in_flight_reach_the_bound_and_nothing_is_kept_after(monkeypatch):
    monkeypatch.setattr(publish, "MAX_IN_FLIGHT_BYTES", 10_000)

    async def run() -> None:
        fake = FakeKafka()
        publisher = Publisher(
            KafkaSettings(), ProducerSettings(), create_metrics(CollectorRegistry()), producer=fake
        )
        for n in range(4):  # 4 x 2,000 bytes: under the bound
            await publisher.publish(article(n, 2_000))
        blocked = asyncio.ensure_future(publisher.publish(article(4, 5_000)))  # would make 13,000
        await asyncio.sleep(0.05)
        assert not blocked.done() and fake.sent == 4
        fake.ack_all()
        await asyncio.wait_for(blocked, 1)
        fake.ack_all()
        await asyncio.wait_for(publisher.flush(), 1)
        assert publisher.tally.sent == 5 and publisher.tally.sent_bytes == 13_000
        assert not publisher._pending and publisher._in_flight_bytes == 0  # noqa: SLF001

    asyncio.run(run())


def test_the_oldest_unacknowledged_send_ages_while_the_broker_is_away_and_goes_back_to_zero():
    # The idempotent client retries a queued send for as long as the broker is away and fails none: the
    # age of the oldest send it has not had acknowledged is what an outage alert can watch.
    async def run() -> None:
        fake = FakeKafka()
        registry = CollectorRegistry()
        publisher = Publisher(KafkaSettings(), ProducerSettings(), create_metrics(registry), producer=fake)

        def oldest() -> float:
            return registry.get_sample_value("newsflow_producer_oldest_unacknowledged_send_seconds")

        assert oldest() == 0.0
        await publisher.publish(article(0, 10))
        await asyncio.sleep(0.2)
        await publisher.publish(article(1, 10))
        assert 0.2 <= oldest() < 5
        fake.unacked[0].set_result(None)  # the first acknowledged: the second is now the oldest
        await asyncio.sleep(0)
        assert oldest() < 0.2
        fake.unacked[1].set_exception(publish.KafkaError("refused"))
        await asyncio.wait_for(publisher.flush(), 1)
        assert oldest() == 0.0 and publisher.tally.sent == 1

    asyncio.run(run())


async def _collect(items, stop: asyncio.Event) -> list[Any]:
    return [item async for item in publish.read_in_background(items, stop)]


def test_inputs_are_read_in_order_off_the_loop_and_errors_reach_the_caller():
    assert asyncio.run(_collect(iter(range(100)), asyncio.Event())) == list(range(100))

    def broken():
        yield 1
        raise OSError("disk gone")

    try:
        asyncio.run(_collect(broken(), asyncio.Event()))
    except OSError as exc:
        assert str(exc) == "disk gone"
    else:
        raise AssertionError("the reader's error was lost")


def test_a_stop_does_not_wait_for_an_input_that_blocks():
    # stdin with its writer still open: the next line may never come.
    never = threading.Event()

    def stdin_like():
        yield "first line"
        never.wait()
        yield "never read"

    async def run() -> tuple[list[Any], float]:
        stop = asyncio.Event()
        got: list[Any] = []
        started = time.monotonic()

        async def read() -> None:
            async for item in publish.read_in_background(stdin_like(), stop):
                got.append(item)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)
        asyncio.get_running_loop().call_soon(stop.set)  # what the SIGTERM handler does
        await asyncio.wait_for(reader, timeout=5)
        return got, time.monotonic() - started

    got, seconds = asyncio.run(run())
    assert got == ["first line"] and seconds < 2
    never.set()


def test_progress_lines_give_the_recent_rate_not_only_the_rate_since_start(monkeypatch, caplog):
    clock = [1000.0]
    monkeypatch.setattr(publish.time, "monotonic", lambda: clock[0])
    tally = publish.Tally()
    progress = publish.Progress(tally, None, enabled=True)
    clock[0] += 3600  # an hour of watching, nothing to send
    with caplog.at_level("INFO", logger="newsflow.producer"):
        progress.step()
        tally.counts["sent"] += 50
        clock[0] += 10
        progress.step()
    assert caplog.records[-1].getMessage().endswith("lately 5.0 articles/s")


def test_a_watch_reports_a_burst_acknowledged_after_its_last_file_and_is_quiet_while_idle(
    monkeypatch, caplog
):
    clock = [time.monotonic()]
    monkeypatch.setattr(publish.time, "monotonic", lambda: clock[0])
    tally = publish.Tally(started=clock[0])  # its summary's elapsed time moves with the clock
    progress, silent = (
        publish.Progress(tally, None, enabled=True),
        publish.Progress(tally, None, enabled=False),
    )
    with caplog.at_level("INFO", logger="newsflow.producer"):
        clock[0] += 30
        progress.step()  # the burst's first file: nothing acknowledged yet
        tally.counts["sent"] += 80  # the broker acknowledges the burst after its last file
        clock[0] += 5
        progress.tick()  # too soon for a line
        clock[0] += 5
        progress.tick()
        for _ in range(3):  # idle: the counts do not move, no more lines
            clock[0] += 60
            progress.tick()
        silent.step()
        silent.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "sent 80" in lines[0] and lines[0].endswith("lately 8.0 articles/s")


def test_the_sent_files_series_exists_at_zero_before_the_first_file():
    # A dashboard's rate() sees the first files after a deploy only if the series was there before.
    registry = CollectorRegistry()
    create_metrics(registry)
    assert (
        registry.get_sample_value("newsflow_producer_files_total", {"outcome": "sent", "reason": ""}) == 0.0
    )


def test_a_stop_that_comes_with_the_last_item_is_no_interruption_and_one_before_it_is():
    async def run(stop_after: str) -> tuple[list[str], bool]:
        stop, ended = asyncio.Event(), []
        got: list[str] = []
        reading = publish.read_in_background(iter(["a", "b"]), stop, lambda: ended.append(True))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)  # the reading thread has read it all
        async for item in reading:
            got.append(str(item))
            if item == stop_after:
                stop.set()  # as SIGTERM while this item is sent
        return got, bool(ended)

    assert asyncio.run(run("b")) == (["a", "b"], True)
    assert asyncio.run(run("a")) == (["a"], False)
