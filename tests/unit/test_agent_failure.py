"""A fault no article is to blame for ends the worker, not the batch: the clean agent withholds
the batch's offsets (read again by whoever owns the partitions next) and the process exits for its
supervisor to restart it, rather than Faust restarting the agent in place, past the batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from newsflow.worker import app as app_module
from newsflow.worker.agents import CleanAgent
from newsflow.worker.app import EXIT_AGENT_FAILED, exit_on_failure
from newsflow.worker.metrics import create_metrics


class _Exited(BaseException):
    pass


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes: list[int] = []

    def _exit(code: int) -> None:
        codes.append(code)
        raise _Exited

    monkeypatch.setattr(app_module.os, "_exit", _exit)
    return codes


def _drain(agent: Any, stream: Any = None) -> int:
    async def run() -> int:
        return len([x async for x in agent(stream)])

    return asyncio.run(run())


def test_an_agent_that_fails_exits_the_process_with_its_code(exits: list[int]):
    closed = []

    async def run(_stream: Any) -> AsyncIterator[None]:
        try:
            yield None
            raise ValueError("a fault of the agent's own")
        finally:
            closed.append(True)

    with pytest.raises(_Exited):
        _drain(exit_on_failure("clean", run))
    assert exits == [EXIT_AGENT_FAILED] and closed == [True]


def test_an_agent_that_ends_or_is_cancelled_does_not_exit(exits: list[int]):
    async def ends(_stream: Any) -> AsyncIterator[None]:
        for _ in range(3):
            yield None

    async def cancelled(_stream: Any) -> AsyncIterator[None]:
        yield None
        raise asyncio.CancelledError

    assert _drain(exit_on_failure("dedup", ends)) == 3
    with pytest.raises(asyncio.CancelledError):
        _drain(exit_on_failure("dedup", cancelled))
    assert exits == []


class _Replica:
    @contextlib.asynccontextmanager
    async def running(self, _wait_seconds: float) -> AsyncIterator[None]:
        yield


class _Stream:
    def __init__(self, events: list[Any]) -> None:
        self.events = events

    async def take_events(self, _size: int, within: float) -> AsyncIterator[list[Any]]:  # noqa: ARG002
        yield self.events


class _Forwarder:
    def message(self, _result: Any, event: Any) -> tuple[bytes, bytes]:
        return event.key, b"{}"

    async def forward(self, _messages: Any, _events: Any) -> None:
        raise RuntimeError("a fault outside every article's guard")


def _event(n: int) -> Any:
    message = SimpleNamespace(topic="raw", partition=0, offset=n, timestamp=0.0, acked=False)
    return SimpleNamespace(key=b"k%d" % n, value=b"<p>text</p>", headers=[], message=message)


def test_a_batch_the_clean_agent_fails_on_is_withheld_from_the_commit():
    enricher: Any = SimpleNamespace(
        clean=lambda raw: raw, finish=lambda cleaned, _received: list(cleaned), reused=dict
    )
    agent = CleanAgent(
        enricher,
        _Forwarder(),  # type: ignore[arg-type]
        _Replica(),  # type: ignore[arg-type]
        create_metrics(CollectorRegistry()),
        lambda: False,
        (32, 0.01),
    )
    events = [_event(n) for n in range(3)]
    with pytest.raises(RuntimeError):
        _drain(agent.run, _Stream(events))
    # Marked acknowledged without being recorded as such: Faust's commit cannot pass them.
    assert [e.message.acked for e in events] == [True, True, True]


class _Recording(_Forwarder):
    def __init__(self) -> None:
        self.forwarded: list[tuple[Any, Any]] = []

    def message(self, result: Any, event: Any) -> tuple[bytes, bytes]:
        self.forwarded.append((result, event))
        return event.key, b"{}"

    async def forward(self, _messages: Any, _events: Any) -> None:
        return None


def test_a_message_whose_decoding_raises_is_its_own_rejection_and_the_batch_goes_on(monkeypatch):
    # A header the decoder raised on escaped the batch: withheld, the worker exited, and read the
    # same message again at every restart.
    from newsflow.worker import agents

    real = agents.raw_from_message

    def raw_from_message(key: bytes, *args: Any) -> Any:
        if key == b"k1":
            raise ValueError("offset must be a timedelta strictly between -24 h and 24 h")
        return real(key, *args)

    monkeypatch.setattr(agents, "raw_from_message", raw_from_message)
    enricher: Any = SimpleNamespace(
        clean=lambda raw: raw, finish=lambda cleaned, _received: list(cleaned), reused=dict
    )
    forwarder = _Recording()
    agent = CleanAgent(
        enricher,
        forwarder,  # type: ignore[arg-type]
        _Replica(),  # type: ignore[arg-type]
        create_metrics(CollectorRegistry()),
        lambda: False,
        (32, 0.01),
    )
    events = [_event(n) for n in range(3)]
    for event in events:
        event.headers = [("content-type", b"text/html")]
    assert _drain(agent.run, _Stream(events)) == 1
    results = [result for result, _ in forwarder.forwarded]
    assert [type(r).__name__ for r in results] == ["RawArticle", "Rejection", "RawArticle"]
    assert (results[1].stage, results[1].reason) == ("decode", "internal_error")
    assert not any(e.message.acked for e in events)  # nothing withheld: all of it went on
