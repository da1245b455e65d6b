"""Bad inputs of every kind the pipeline must survive, drawn from a seeded random generator.

Hypothesis drives `bad_input` in the unit fuzz tests (it shrinks a failing case to its seed);
the broker fuzz test and `bench/fuzz_bench.py` draw from it with a plain `random.Random`.
"""

from __future__ import annotations

import json
import random
from typing import Any

TEXT = (
    "The council approved the new budget on Tuesday after a long debate about schools and roads. "
    "Residents said they hoped the plan would fix the old bridge before winter. "
)
ENCODINGS = (
    "utf-8",
    "utf-16",
    "utf-16-le",
    "utf-16-be",
    "latin-1",
    "cp1252",
    "koi8-r",
    "shift_jis",
    "utf-32",
)
DATES: tuple[Any, ...] = (
    "2099-01-01",
    "1970-01-01T00:00:00",
    "0001-01-01",
    "yesterday",
    "2024-02-30",
    "Tue, 03 Mar 2025 10:00:00 +0000",
    "2025-03-14T12:00:00+14:00",
    "",
    None,
    12345,
    ["2025-03-14"],
    {"date": "2025"},
    "9" * 400,
)
KINDS = ("bytes", "encoding", "markup", "envelope", "date", "size", "headers")


def _random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _markup(rng: random.Random) -> bytes:
    depth = rng.choice((1, 50, 300, 3000, 30_000))
    tag = rng.choice(("div", "span", "p", "table", "b", "article"))
    unclosed = rng.random() < 0.3
    html = (
        "<html><body>"
        + f"<{tag}>" * depth
        + TEXT * rng.randint(0, 8)
        + ("" if unclosed else f"</{tag}>" * depth)
    )
    if rng.random() < 0.3:
        html = html.replace("<", "<!--", rng.randint(1, 5))
    return html.encode()


def _envelope(rng: random.Random) -> bytes:
    values: tuple[Any, ...] = (
        None,
        5,
        1.5,
        True,
        [],
        {},
        "",
        TEXT,
        "<p>" + TEXT * 3 + "</p>",
        ["a", 1],
        "\x00\ud7ff",
    )
    env = {
        k: rng.choice(values)
        for k in ("url", "outlet", "html", "text", "title", "published", "authors")
        if rng.random() < 0.8
    }
    if rng.random() < 0.2:
        return json.dumps([env]).encode()
    if rng.random() < 0.2:
        return json.dumps(env).encode()[: rng.randint(0, 40)]
    return json.dumps(env).encode()


def bad_input(rng: random.Random, size_limit: int = 5_000) -> tuple[str, bytes, dict[str, str]]:
    """Return (content type, bytes, extra headers) of one bad or odd input.

    `size_limit` is the extraction limit the caller configured: sizes are drawn around it.
    """
    kind = rng.choice(KINDS)
    ctype = rng.choice(("text/html", "text/plain", "application/json"))
    headers: dict[str, str] = {}
    if kind == "bytes":
        body = _random_bytes(rng, rng.choice((0, 1, 7, 300, 3000)))
    elif kind == "encoding":
        encoding = rng.choice(ENCODINGS)
        text = (TEXT + "Straße, café, Москва, 東京. ") * rng.randint(1, 6)
        body = text.encode(encoding, errors="replace")
        if rng.random() < 0.5:
            ctype = "text/html"
            declared = rng.choice(ENCODINGS + ("bogus-charset",))
            body = (
                f'<html><head><meta charset="{declared}"></head><body><p>'.encode()
                + body
                + b"</p></body></html>"
            )
    elif kind == "markup":
        ctype, body = "text/html", _markup(rng)
    elif kind == "envelope":
        ctype, body = "application/json", _envelope(rng)
    elif kind == "date":
        ctype = "application/json"
        body = json.dumps({"text": TEXT * 4, "published": rng.choice(DATES)}, default=str).encode()
    elif kind == "size":
        n = max(0, size_limit + rng.choice((-1, 0, 1, 1000, -1000)))
        body = (TEXT.encode() * (n // len(TEXT) + 1))[:n]
    else:
        body = TEXT.encode() * 3
        headers = {
            rng.choice(("url", "received-at", "source-path", "replay-count", "x-extra")): rng.choice(
                ("", "not a url", "2099-99-99", "-3", "\u00e9" * 500, "10")
            )
        }
        ctype = rng.choice(("text/plain", "text/markdown", "", "application/json"))
    return ctype, body, headers
