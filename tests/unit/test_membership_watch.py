"""`MembershipWatch` (worker/transport.py) on the states aiokafka's group coordinator can be in.

The coordinator here is a stand-in holding real asyncio tasks; the watch reads only its task and
its parked error. tests/integration/test_group_membership_kafka.py makes a real coordinator fail."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import GroupAuthorizationFailedError, KafkaError

from newsflow.worker.transport import MembershipWatch


def _task(outcome: str) -> asyncio.Task[None]:
    async def routine() -> None:
        if outcome == "raised":
            raise KafkaError("Unexpected error during coordination")
        if outcome == "running":
            await asyncio.sleep(3600)

    loop = asyncio.new_event_loop()
    task = loop.create_task(routine())
    if outcome == "cancelled":
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()  # a task still pending stays pending: the watch only reads its state
    return task


def _app(task: Any, parked: BaseException | None = None) -> Any:
    coordinator = SimpleNamespace(_coordination_task=task, _pending_exception=parked)
    return SimpleNamespace(
        _consumer=SimpleNamespace(
            _thread=SimpleNamespace(_consumer=SimpleNamespace(_coordinator=coordinator))
        )
    )


def test_a_coordination_task_that_raised_is_a_failure():
    assert isinstance(MembershipWatch(_app(_task("raised"))).failure(), KafkaError)


def test_a_running_finished_or_cancelled_task_is_not():
    for outcome in ("running", "finished", "cancelled"):
        assert MembershipWatch(_app(_task(outcome))).failure() is None, outcome


def test_no_consumer_yet_is_not_a_failure_and_creates_none():
    app = SimpleNamespace(_consumer=None)
    assert MembershipWatch(app).failure() is None
    assert app._consumer is None


def test_a_parked_error_is_a_failure_once_still_there_at_the_next_look():
    error = GroupAuthorizationFailedError()
    app = _app(_task("running"), parked=error)
    watch = MembershipWatch(app)
    assert watch.failure() is None  # the fetch loop may take it at its next call
    assert watch.failure() is error


def test_a_parked_error_taken_in_between_is_not():
    app = _app(_task("running"), parked=GroupAuthorizationFailedError())
    watch = MembershipWatch(app)
    assert watch.failure() is None
    app._consumer._thread._consumer._coordinator._pending_exception = None  # a commit took it
    assert watch.failure() is None
    app._consumer._thread._consumer._coordinator._pending_exception = KafkaError("another")
    assert watch.failure() is None  # a new one gets its own grace
