"""Small WARC archives made by hand for tests (one gzip member per record, as CC-NEWS has them)."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path

ARTICLE_TEXT = "Мэр открыл мост после двух лет ремонта. Жители района пришли на церемонию. " * 8


def record(kind: str, uri: str, block: bytes, date: str = "2026-11-30T10:00:00Z", http: bool = True) -> bytes:
    """Return one WARC/1.0 record."""
    head = [
        "WARC/1.0",
        f"WARC-Type: {kind}",
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, kind + uri)}>",
        f"WARC-Date: {date}",
    ]
    if uri:
        head.append(f"WARC-Target-URI: {uri}")
    head.append(f"Content-Type: {'application/http; msgtype=' + kind if http else 'application/warc-fields'}")
    head.append(f"Content-Length: {len(block)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + block + b"\r\n\r\n"


def response(status: int, content_type: str, body: bytes, more: str = "") -> bytes:
    """Return an HTTP/1.1 response as a WARC response record's block (`more`: header lines)."""
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{more}\r\n".encode()
        + body
    )


def page(text: str) -> str:
    return f"<html><head><title>Мост</title></head><body><article><p>{text}</p></article></body></html>"


def write_warc(path: Path) -> Path:
    """Write a .warc.gz with two HTML articles among a warcinfo, a 404, an image, a request and a revisit."""
    records = [
        record("warcinfo", "", b"software: newsflow tests\r\n", http=False),
        record(
            "response",
            "https://www.example.com/news/bridge",
            response(200, "text/html; charset=windows-1251", page(ARTICLE_TEXT).encode("cp1251")),
        ),
        record("request", "https://www.example.com/news/bridge", b"GET /news/bridge HTTP/1.1\r\n\r\n"),
        record("response", "https://example.org/missing", response(404, "text/html", b"<html>gone</html>")),
        record("response", "https://example.org/photo.jpg", response(200, "image/jpeg", b"\xff\xd8\xff\xe0")),
        record("revisit", "https://www.example.com/news/bridge", b""),
        record(
            "response",
            "https://example.net/story",
            response(200, "text/html", page("The council approved the budget. " * 20).encode()),
        ),
    ]
    with path.open("wb") as fh:
        for r in records:
            fh.write(gzip.compress(r))
    return path
