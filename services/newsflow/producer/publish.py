"""Send what the sources find to the raw topic, and account for every item: sent, skipped or failed.

`Publisher` is the one place that talks to Kafka. It keeps a bounded number of bytes in flight,
counts each outcome once (the run's `Tally`, Prometheus counters), and reports progress: a bar on a
terminal, a log line every few seconds otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tqdm import tqdm

from newsflow.pipeline.records import RawArticle, raw_headers
from newsflow.producer.metrics import ProducerMetrics
from newsflow.producer.settings import ProducerSettings, parse_outlet_map
from newsflow.producer.sources import STDIN, Item, Skipped, count_items, iter_inputs
from newsflow.settings import KafkaSettings, client_options
from newsflow.topics import wait_for_broker

log = logging.getLogger("newsflow.producer")

# Payload bytes waiting for the broker's acknowledgement before the next send waits: memory stays
# bounded whatever the input (a folder of 5 MB pages, a multi-GB archive).
MAX_IN_FLIGHT_BYTES = 32 << 20
PROGRESS_LOG_SECONDS = 10.0
# Items read ahead of the sends, each at most NEWSFLOW_PRODUCER_MAX_FILE_BYTES: with the queue and
# the batch taken from it, at most 2 * READ_AHEAD + 1 items wait besides the bytes in flight.
READ_AHEAD = 4


@dataclass
class Tally:
    """What a run did: sent, skipped by reason, failed by reason, bytes, time."""

    counts: Counter[str] = field(default_factory=Counter)
    sent_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    # A one-pass run stopped (Ctrl-C, SIGTERM) before the end of its input.
    interrupted: bool = False

    @property
    def sent(self) -> int:
        return self.counts["sent"]

    @property
    def failed(self) -> int:
        return sum(n for k, n in self.counts.items() if k.startswith("failed:"))

    def by(self, prefix: str) -> dict[str, int]:
        return {k.split(":", 1)[1]: n for k, n in sorted(self.counts.items()) if k.startswith(prefix + ":")}

    def _outcome(self, outcome: str) -> str:
        """Return e.g. 'skipped 3 (empty: 2, too_large: 1)', or 'failed 0'."""
        reasons = self.by(outcome)
        listed = " (" + ", ".join(f"{k}: {v}" for k, v in reasons.items()) + ")" if reasons else ""
        return f"{outcome} {sum(reasons.values())}{listed}"

    def summary(self) -> str:
        """Return e.g. 'sent 2 (3.1 kB), skipped 1 (empty: 1), failed 0 in 0.4 s (5.0/s)'."""
        seconds = max(time.monotonic() - self.started, 1e-9)
        line = f"sent {self.sent} ({self.sent_bytes / 1e6:.1f} MB), {self._outcome('skipped')}, {self._outcome('failed')}"
        if self.by("refused"):  # requests to the HTTP ingest answered 4xx/503
            line += f", {self._outcome('refused')}"
        rate = self.sent / seconds
        line += f" in {seconds:.1f} s ({rate:.{0 if rate >= 10 else 1}f} articles/s)"
        return line + (", interrupted: the rest of the input was not sent" if self.interrupted else "")


class Progress:
    """A bar on a terminal; a log line every PROGRESS_LOG_SECONDS elsewhere."""

    def __init__(self, tally: Tally, total: int | None = None, enabled: bool = True) -> None:
        self.tally = tally
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, unit=" articles", dynamic_ncols=True, leave=True)
        self.enabled = enabled
        self._last_log = time.monotonic()
        self._last_sent = 0
        self._last_counts: dict[str, int] = {}

    def step(self) -> None:
        """Count an item read."""
        if self.bar is not None:
            self.bar.update(1)
            skipped, failed = sum(self.tally.by("skipped").values()), self.tally.failed
            if skipped or failed:
                self.bar.set_postfix(skipped=skipped, failed=failed, refresh=False)
        else:
            self.tick()

    def tick(self) -> None:
        """Log a line if PROGRESS_LOG_SECONDS have passed since the last one and the counts moved
        (a watch calls it while idle too: the broker acknowledges a burst after its last item)."""
        now = time.monotonic()
        if self.bar is not None or not self.enabled or now - self._last_log < PROGRESS_LOG_SECONDS:
            return
        counts = dict(self.tally.counts)  # the summary's time and rate move on their own
        if counts == self._last_counts:  # idle: no line, and the next one's rate starts now
            self._last_log, self._last_sent = now, self.tally.sent
            return
        # The rate since the last line too: over a watch's uptime the summary's rate tends to 0.
        recent = (self.tally.sent - self._last_sent) / (now - self._last_log)
        log.info("progress: %s; lately %.1f articles/s", self.tally.summary(), recent)
        self._last_log, self._last_sent, self._last_counts = now, self.tally.sent, counts

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Publisher:
    """Sends articles to the raw topic (idempotent, acks=all) and counts every item."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: ProducerSettings,
        metrics: ProducerMetrics,
        tally: Tally | None = None,
        progress: Progress | None = None,
        producer: Any = None,
    ) -> None:
        """`producer` replaces the Kafka client (tests); by default an idempotent one, acks=all."""
        self.kafka = kafka
        self.metrics = metrics
        self.tally = tally or Tally()
        self.progress = progress
        self.producer = producer or AIOKafkaProducer(
            **client_options(kafka),
            enable_idempotence=True,
            acks="all",
            linger_ms=settings.linger_ms,
            max_batch_size=1 << 20,
            compression_type=None,
            max_request_size=kafka.max_message_bytes,
            client_id="newsflow-producer",
        )
        # Sends not yet acknowledged; each removes itself when settled, so nothing accumulates.
        self._pending: set[asyncio.Future[bool]] = set()
        self._in_flight_bytes = 0
        # When each unacknowledged send began, oldest first (a dict keeps its insertion order). The
        # client retries a queued idempotent send for as long as the broker is away and fails none: how
        # long the oldest has waited is what shows an outage (NewsflowProducerSendsStuck).
        self._unacknowledged: dict[int, float] = {}
        self._sends = itertools.count()
        metrics.oldest_unacknowledged.set_function(self.oldest_unacknowledged_seconds)

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        try:
            await self.flush()
        finally:
            await self.producer.stop()
            if self.progress is not None:
                self.progress.close()

    def refuse(self, reason: str, detail: str) -> None:
        """Count a request to the HTTP ingest that was answered with an error, as a skip is."""
        self.tally.counts[f"refused:{reason}"] += 1
        self.metrics.files.labels("refused", reason).inc()
        log.warning("POST /articles refused (%s): %s", reason, detail)

    def skip(self, item: Skipped) -> None:
        self.tally.counts[f"skipped:{item.reason}"] += 1
        self.metrics.files.labels("skipped", item.reason).inc()
        log.warning("skipped %s: %s%s", item.path, item.reason, f" ({item.detail})" if item.detail else "")
        self._step()

    def _step(self) -> None:
        if self.progress is not None:
            self.progress.step()

    async def publish(
        self,
        item: Item,
        headers: Iterable[tuple[str, bytes]] = (),
        on_sent: Callable[[RawArticle], Awaitable[None] | None] | None = None,
    ) -> asyncio.Future[bool] | None:
        """Send an article (or count a skip); return a future that says whether it was delivered."""
        if isinstance(item, Skipped):
            self.skip(item)
            return None
        while self._pending and self._in_flight_bytes + len(item.payload) > MAX_IN_FLIGHT_BYTES:
            await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
        started = time.perf_counter()
        send = next(self._sends)
        self._unacknowledged[send] = started
        try:
            sent = await self.producer.send(
                self.kafka.topic_raw,
                value=item.payload,
                key=item.article_id.encode(),
                headers=[*raw_headers(item), *headers],
            )
        except BaseException as exc:
            del self._unacknowledged[send]
            if not isinstance(exc, KafkaError):
                raise
            # Refused before sending, e.g. over max_request_size.
            self._failed(item, exc)
            refused: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            refused.set_result(False)
            return refused
        size = len(item.payload)
        self._in_flight_bytes += size

        async def settle() -> bool:
            try:
                await sent
            except KafkaError as exc:
                self._failed(item, exc)
                return False
            finally:
                self._in_flight_bytes -= size
                self._unacknowledged.pop(send, None)
            self.metrics.send_seconds.observe(time.perf_counter() - started)
            self.metrics.bytes_sent.inc(size)
            self.metrics.files.labels("sent", "").inc()
            self.tally.counts["sent"] += 1
            self.tally.sent_bytes += size
            log.debug(
                "sent %s (%s, %d bytes) as %s", item.source.path, item.source.outlet, size, item.article_id
            )
            if on_sent is not None:
                result = on_sent(item)
                if result is not None:
                    await result
            self._step()
            return True

        task = asyncio.ensure_future(settle())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        # (Settled, or cancelled, even before it ran.)
        task.add_done_callback(lambda _task: self._unacknowledged.pop(send, None))
        return task

    def oldest_unacknowledged_seconds(self) -> float:
        """How long the oldest send still unacknowledged has waited (0.0: none waits).

        Called from the metrics server's thread while the event loop changes the dict: copied in
        one step (under the GIL), not iterated, which a change between two steps would break."""
        started = list(self._unacknowledged.values())
        return time.perf_counter() - started[0] if started else 0.0

    async def flush(self) -> None:
        """Wait until every article sent so far is acknowledged (or counted as failed)."""
        while self._pending:
            await asyncio.wait(set(self._pending))

    def _failed(self, item: RawArticle, exc: Exception) -> None:
        reason = type(exc).__name__
        self.tally.counts[f"failed:{reason}"] += 1
        self.metrics.send_errors.inc()
        self.metrics.files.labels("failed", reason).inc()
        log.error("send of %s failed: %s", item.source.path, exc)
        self._step()


async def broker_ready(kafka: KafkaSettings, stop: asyncio.Event | None) -> bool:
    """Wait for the broker and the raw topic (raising what `wait_for_broker` raises); return False
    if `stop` is set first: a Ctrl-C or SIGTERM while Kafka is away ends the wait at once, within
    a container's grace period, not after its 30 s."""
    waiting = asyncio.ensure_future(wait_for_broker(kafka, timeout=30, topics=[kafka.topic_raw]))
    stopping = asyncio.ensure_future((stop or asyncio.Event()).wait())
    try:
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
    if waiting.cancelled():
        return False
    waiting.result()
    return True


async def produce(
    paths: Sequence[Path | str],
    kafka: KafkaSettings,
    settings: ProducerSettings,
    metrics: ProducerMetrics,
    outlet: str | None = None,
    stop: asyncio.Event | None = None,
    sent_ids: list[str] | None = None,
    show_progress: bool = False,
) -> Tally:
    """Send every article found under `paths` once; return what happened to each item."""
    tally = Tally()
    # Files have an end a stop may come before; stdin is followed until it is stopped.
    finite = STDIN not in map(str, paths)
    if not await broker_ready(kafka, stop):
        tally.interrupted = finite
        return tally
    total = count_items(paths) if show_progress and sys.stderr.isatty() else None
    publisher = Publisher(kafka, settings, metrics, tally, Progress(tally, total, enabled=show_progress))
    await publisher.start()

    def note(item: RawArticle) -> None:
        if sent_ids is not None:
            sent_ids.append(item.article_id)

    ended: list[bool] = []  # the input's end was reached (a stop may come with its last item)
    try:
        items = iter_inputs(paths, outlet, settings.max_file_bytes, parse_outlet_map(settings.outlet_map))
        async for item in read_in_background(items, stop or asyncio.Event(), lambda: ended.append(True)):
            await publisher.publish(item, on_sent=note)
        if stop is not None and stop.is_set() and not ended:
            log.info("stopping: the rest of the input is not sent")
            tally.interrupted = finite
    finally:
        await publisher.stop()
    return tally


async def read_in_background(
    items: Iterator[Item], stop: asyncio.Event, on_end: Callable[[], None] = lambda: None
) -> AsyncIterator[Item]:
    """Yield the items as a thread of their own reads them, until they end (`on_end` is called)
    or `stop` is set.

    Reading blocks (stdin waits for its writer, a slow disk, a large archive): on the event loop
    it would hold up the signal handlers, and Ctrl-C or SIGTERM would wait for the input to end.
    The thread is a daemon, so a stop never waits for it either.
    """
    ready: queue.Queue[Item | BaseException | None] = queue.Queue(READ_AHEAD)
    halted = threading.Event()

    def offer(x: Item | BaseException | None) -> bool:
        """Queue x once there is room; False if the reading stopped first."""
        while not halted.is_set():
            try:
                ready.put(x, timeout=0.2)
                return True
            except queue.Full:
                pass
        return False

    def read() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, which raises it
            offer(exc)

    def take() -> list[Item | BaseException | None]:
        try:
            got = [ready.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(got) < READ_AHEAD:
            try:
                got.append(ready.get_nowait())
            except queue.Empty:
                break
        return got

    threading.Thread(target=read, name="newsflow-producer-input", daemon=True).start()
    try:
        while not stop.is_set():
            taken = await asyncio.to_thread(take)
            for i, item in enumerate(taken):
                if item is None:
                    on_end()
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
                if stop.is_set():
                    # A stop that came with the last item is no interruption.
                    after = taken[i + 1 : i + 2]
                    if not after:
                        with contextlib.suppress(queue.Empty):
                            after = [ready.get_nowait()]
                    if after == [None]:
                        on_end()
                    return
    finally:
        halted.set()
