"""The one place that encodes and decodes JSON, so every topic gets identical bytes for identical records."""

from __future__ import annotations

import codecs
from typing import Any

import orjson

# Sorted keys make records byte-stable (diffable outputs, reproducible tests);
# naive datetimes are refused upstream, so UTC offsets always serialize.
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY


def dumps(obj: Any) -> bytes:
    """Return compact, key-sorted JSON bytes."""
    return orjson.dumps(obj, option=_OPTIONS)


def dumps_line(obj: Any) -> bytes:
    """Return one JSON Lines record (with its trailing newline)."""
    return orjson.dumps(obj, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON bytes or text; raises orjson.JSONDecodeError (a ValueError) on bad input.

    A UTF-8 byte order mark before it is ignored, as RFC 8259 allows: Windows tools write one
    (Notepad, PowerShell's Out-File), and a feed or envelope saved so is still JSON.
    """
    if isinstance(data, str):
        return orjson.loads(data.removeprefix("\ufeff"))
    if isinstance(data, memoryview):
        data = data.tobytes()
    return orjson.loads(data.removeprefix(codecs.BOM_UTF8))
