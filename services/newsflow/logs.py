"""Logging shared by the services: a library's repeated messages, at most one per period; text
from inputs made safe to show on a terminal.

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


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, quiet: bool = False) -> None:
    """Log to stderr at `level` (NEWSFLOW_LOG_LEVEL), and no lower than warnings if `quiet` asks."""
    number = logging.getLevelName(level.upper())
    logging.basicConfig(level=max(number, logging.WARNING) if quiet else number, format=FORMAT)


def limit_repeats(period: float = 30.0) -> RepeatLimiter:
    """Put one RepeatLimiter on every logger of the Kafka client and return it."""
    for module in MODULES:
        importlib.import_module(module)
    limiter = RepeatLimiter(period)
    for name in list(logging.root.manager.loggerDict):
        if name == LIBRARY or name.startswith(LIBRARY + "."):
            logging.getLogger(name).addFilter(limiter)
    return limiter


# Characters that act on a terminal or on how a line reads rather than being shown: C0 and C1
# controls (escape sequences, carriage return, newline: a forged log line), line and paragraph
# separators, and the bidirectional marks and overrides that reorder what follows them. A tab is
# shown as is.
_UNPRINTABLE = [c for c in (*range(0x20), *range(0x7F, 0xA0)) if c != 0x09] + [
    0x061C,
    0x200E,
    0x200F,
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_ESCAPES = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNPRINTABLE}


def printable(text: str) -> str:
    """Return text with the characters that would act on a terminal as `\\xNN` / `\\uNNNN` escapes:
    outlets, file names, titles and ids come from inputs, and a line shown to an operator must
    not clear the screen, set a window title or forge another line."""
    return text.translate(_ESCAPES)


class _PrintableRecord(logging.LogRecord):
    def getMessage(self) -> str:  # noqa: N802 - logging's name
        return printable(super().getMessage())


def escape_controls() -> None:
    """Make every log message printable (`printable`), whoever configures the handlers: a
    message's arguments name files, outlets and articles that inputs chose. Tracebacks are not
    messages and keep their lines."""
    logging.setLogRecordFactory(_PrintableRecord)
