"""Faust's Kafka transport, with fixes for records lost around a rebalance or a stop.

1. Partitions without a committed offset are re-read, not lost. faust-streaming 0.15.3 drops
records it has already fetched when a rebalance stops the flow (or the generation changes) in the
middle of a batch, and relies on "seek to the committed offsets" afterwards to read them again.
aiokafka's `seek_to_committed` leaves alone every partition whose committed offset is missing (or
0), so for those the dropped records are gone: the consumer's position is already past them. It
bites exactly when a second worker joins before the first has committed: in the two-worker grouping
test about one start in five lost the first messages of a raw partition.

With `consumer_auto_offset_reset="earliest"`, "no committed offset" means "from the beginning",
so that is where such partitions are sought. Changelog partitions are left to Faust's recovery,
which positions them itself.

2. No table recovery to fix. faust-streaming issue #596 loses records fetched while a table's
recovery ends (its last flow resume clears the stream queues); these workers keep no Faust tables
(the writer's state is in its own compacted topics), and without tables Faust's recovery only
resumes the streams. An override of `Recovery.on_recovery_completed` that stopped the flow first
was removed with the last table: `App` refuses tables until it is back.

3. A stop does not wait for a batch, and what it interrupts is read again. With its default
`stream_wait_empty`, Faust's stop waits until every message being processed is acknowledged: a
batch of 32 long pages kept a SIGTERM waiting 16 s. The worker turns that off, so Faust cancels
its agents at once; but a cancelled `take_events` batch acknowledges all its events on the way
out, and the consumer's final commit would then skip the ones never forwarded. An agent
interrupted mid-batch `withhold`s them first: marked acknowledged without entering the
consumer's list of acknowledged offsets, they leave a gap the commit cannot pass.

4. Topics whose offsets another party commits are left alone. The dedup writer commits the features
offsets inside its Kafka transactions (worker/writer.py); Faust's own commit of the same partition
would acknowledge a batch whose transaction failed. `App.self_committed_topics` names them; their
acknowledgements are not recorded at all (a record of them would only grow).

5. Records a stream skips are not acknowledged as read. Faust's stream skips a record it takes from
its queue while the flow is stopped (a stop, a rebalance) or that was fetched under an earlier
group generation, and acknowledges it "so that the lag does not grow", though no agent saw it.
At a stop, the consumer's final commit then carries the committed offset past records never
processed: in the grouping test's restart (SIGTERM while articles arrived), about one run in four
lost a run of 20-23 consecutive articles of one raw partition, committed but never forwarded
(found with the test's `trace_missing`). The consumer now withholds such acknowledgements
(as `withhold` does): the records are read again by whoever owns the partition next. An agent
that finishes a batch after the flow stopped has its acknowledgements withheld too; the batch is
then cleaned again, and the writer drops the repeat. A withheld offset holds the commit back
only until the next commit after an acknowledgement of the offset right after it (Faust's check
for a gap at the head of the acknowledged offsets is one offset lenient); that never happens
here, as a stopped flow is followed by a seek to the committed offsets (a rebalance) or by the
end of the process (a stop).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka


async def seek_to_committed_or_beginning(
    consumer: AIOKafkaConsumer, skip_topics: Collection[str] = ()
) -> Mapping[TopicPartition, int | None]:
    """Seek every assigned partition to its committed offset, or to its beginning if it has none.

    Returns the committed offsets (None where there is none), as `seek_to_committed` does.
    """
    committed: Mapping[TopicPartition, int | None] = await consumer.seek_to_committed()
    uncommitted = [tp for tp, offset in committed.items() if not offset and tp.topic not in skip_topics]
    if uncommitted:
        # To a concrete offset, not aiokafka's lazy reset: a reset still pending when the fetcher
        # resumes can leave the partition where it was.
        for tp, offset in (await consumer.beginning_offsets(uncommitted)).items():
            consumer.seek(tp, offset)
    return committed


def withhold(events: Iterable[Any]) -> None:
    """Keep the offsets of these events (and all after them on their partitions) uncommitted.

    For an agent cancelled before it finished with them (fix 3 above). `Consumer.ack` records an
    offset only for a message not yet marked acknowledged.
    """
    for event in events:
        withhold_message(event.message)


def withhold_message(message: Any) -> None:
    """`withhold` for one message: `Consumer.ack` records an offset only for a message not yet
    marked acknowledged."""
    message.acked = True


class MembershipWatch:
    """Tells when the worker's Kafka consumer group membership has failed for good.

    aiokafka runs the group membership (joins, heartbeats) as one task. When that task fails
    (e.g. "assignment for unsubscribed topic", when a static member id is reused by a worker of
    other topics before the broker has forgotten it) the consumer stays open with no partitions,
    and Faust does not notice: the worker would idle, up and silent, forever. An error that needs
    an operator (group authorization, a static member id fenced by another process) the task
    parks instead, for the next consumer call that checks; Faust's fetcher makes none, so a
    parked error still there at the next look is a failure too.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._parked: BaseException | None = None

    def failure(self) -> BaseException | None:
        """The error that ended the membership, or None while it lasts."""
        thread = getattr(self.app._consumer, "_thread", None)  # noqa: SLF001 - `app.consumer` would create one
        coordinator = getattr(getattr(thread, "_consumer", None), "_coordinator", None)
        task = getattr(coordinator, "_coordination_task", None)
        failure: BaseException | None = (
            task.exception() if task is not None and task.done() and not task.cancelled() else None
        )
        if failure is not None:
            return failure
        parked, self._parked = self._parked, getattr(coordinator, "_pending_exception", None)
        return parked if parked is not None and parked is self._parked else None


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[Any, int]:
        changelogs = self.app.tables.changelog_topics
        result: Mapping[Any, int] = await self.call_thread(
            seek_to_committed_or_beginning, self._ensure_consumer(), changelogs
        )
        return result


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Any) -> bool:
        app = self.app
        if message.topic in getattr(app, "self_committed_topics", ()):
            # Fix 4: never committed here, so not recorded either. Faust's list of acknowledged
            # offsets of such a partition is never emptied after a restart (its committed offset
            # is never updated), and would grow by one entry per message.
            message.acked = True
            return True
        # Fix 5: an acknowledgement while the flow is stopped, or of a record of an earlier
        # generation, may be of a record the stream skipped unprocessed.
        if not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id:
            withhold_message(message)
            return False
        acked: bool = super().ack(message)
        return acked

    def _filter_committable_offsets(self, tps: Any) -> dict[Any, int]:
        offsets: dict[Any, int] = super()._filter_committable_offsets(tps)
        skip: frozenset[str] = getattr(self.app, "self_committed_topics", frozenset())
        return {tp: offset for tp, offset in offsets.items() if tp.topic not in skip}


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class App(faust.App):
    """faust.App on the fixed transport (the broker URLs must be kafka://)."""

    def __init__(self, *args: Any, self_committed_topics: Collection[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.self_committed_topics = frozenset(self_committed_topics)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def Table(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Faust table brings back faust-streaming #596 (transport.py, fix 2)")

    GlobalTable = SetTable = SetGlobalTable = Table
