"""Logging shared by the services: a library's repeated messages, at most one per period.

While the broker is down, aiokafka logs every reconnect attempt, metadata refresh and refused
produce request: about 35 lines a second from one producer, which buries everything else in an
operator's logs. Each message (logger, level and format string, whatever its arguments) is let
through once per period, the next one saying how many like it were held back.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable

# The Kafka client: reconnects and retries are its own to log, and it logs each one. Its modules
# are imported before the filters go on (a logger made later would have none): the admin client's
# too, which some services import only when they use it.
LIBRARY = "aiokafka"
MODULES = ("aiokafka", "aiokafka.admin")


class RepeatLimiter(logging.Filter):
    """Let each message through at most once per `period` seconds."""

    MAX_KEYS = 2_000  # format strings are few; a library that logged formatted text would not grow this

    def __init__(self, period: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.period = period
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # -> (let through at, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, record.levelno, template)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.period:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        if len(self._seen) >= self.MAX_KEYS:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if seen is not None and seen[1] and isinstance(record.msg, str):
            record.msg += f" ({seen[1]} more like this in the last {now - seen[0]:.0f} s)"
        return True


def limit_repeats(period: float = 30.0) -> RepeatLimiter:
    """Put one RepeatLimiter on every logger of the Kafka client and return it."""
    for module in MODULES:
        importlib.import_module(module)
    limiter = RepeatLimiter(period)
    for name in list(logging.root.manager.loggerDict):
        if name == LIBRARY or name.startswith(LIBRARY + "."):
            logging.getLogger(name).addFilter(limiter)
    return limiter
