"""Where articles come from: files and folders, JSON Lines, WARC archives. No Kafka here.

Every source yields, for each thing it finds, either a `RawArticle` ready to send or a `Skipped`
that says why not, and never raises for a bad input: a name that is not UTF-8, a FIFO, a file that
vanished or cannot be read, a gzip bomb, a bad JSON line, a WARC record that is not an HTML page.
Everything is read in bounded pieces: memory does not grow with the size of an archive.
"""

from __future__ import annotations

import argparse
import codecs
import gzip
import hashlib
import io
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

from fastwarc.stream_io import BrotliReader
from fastwarc.warc import ArchiveIterator, WarcRecordType

from newsflow.pipeline import jsonio
from newsflow.pipeline.records import (
    UNKNOWN_OUTLET,
    RawArticle,
    Rejection,
    Source,
    envelope_problem,
    host_of,
    utc_now_iso,
)

CONTENT_TYPE_BY_SUFFIX = {
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".json": "application/json",
}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
WARC_SUFFIXES = (".warc",)  # not the older ARC format, which fastwarc does not read
STDIN = "-"
READ_CHUNK = 1 << 16
# No feed has this many blank lines in a row; a file that does is not read further.
MAX_BLANK_LINES = 10_000


INPUTS_HELP = f"""inputs:
  a folder         every {", ".join(CONTENT_TYPE_BY_SUFFIX)} file below it, also gzipped (a.html.gz), and
                   the JSON Lines and WARC files in it, read as below; names
                   starting with a dot are not read; the outlet is a JSON envelope's own, else the
                   first folder below the one given (folder/<outlet>/a.html), else the host of
                   the page's canonical URL or the envelope's URL
  {" ".join(JSONL_SUFFIXES)} - JSON Lines, also gzipped (- is stdin), one envelope a line:
                   {{"url", "outlet", "html" or "text", "title", "published", "authors"}}; the outlet is
                   the envelope's, else its URL's host
  {" ".join(WARC_SUFFIXES)}       (also .gz) each HTTP 200 HTML response record (CC-NEWS); the outlet is the host
Other files are skipped and counted, as are empty, unreadable and over-large ones."""


# Why something found is not sent: files and folders, then lines of JSON Lines and arrays, then
# records of WARC archives.
SKIP_REASONS = (
    *("unsupported_extension", "empty", "unreadable", "vanished", "not_regular", "too_large"),
    *("already_read", "outside_folder", "truncated", "bad_line"),
    *("not_html", "http_status", "not_response"),
)


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something found that will not be sent, and why (a bounded vocabulary of reasons)."""

    path: str
    reason: str  # one of SKIP_REASONS
    detail: str = ""


Item = RawArticle | Skipped


def display_name(path: Path | str) -> str:
    """Return a path as text for headers and logs; bytes that are not UTF-8 become \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def content_type_for(name: str) -> str | None:
    """Return the content type implied by a file name (a trailing .gz is looked through)."""
    name = name.lower().removesuffix(".gz")
    return CONTENT_TYPE_BY_SUFFIX.get(os.path.splitext(name)[1])


def kind_of(name: str) -> str:
    """Return how a file is read: 'warc', 'jsonl' or 'article'."""
    base = name.lower().removesuffix(".gz")
    if base.endswith(WARC_SUFFIXES):
        return "warc"
    if base.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return "article"


def article_id_for(outlet: str, name: bytes | str, payload: bytes) -> str:
    """Return a stable id: the same outlet, name and bytes always give the same id.

    A name is hashed as the bytes the file system holds (names that are not UTF-8 included).
    """
    h = hashlib.sha256()
    h.update(outlet.encode() + b"\0" + (os.fsencode(name) if isinstance(name, str) else name) + b"\0")
    h.update(payload)
    return h.hexdigest()[:24]


def outlet_for(root: Path, path: Path, override: str | None) -> str:
    """Return the outlet: the override, else the first folder below the root (root/<outlet>/file), else
    'unknown' (the worker then names a page's outlet by the host of its canonical URL)."""
    if override:
        return override
    rel = path.relative_to(root).parts
    return display_name(rel[0]) if len(rel) > 1 else UNKNOWN_OUTLET


class TooLarge(Exception):
    """More bytes than allowed."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def read_bounded(stream: Readable, limit: int) -> bytes:
    """Return all of a stream's bytes; raise TooLarge as soon as there are more than `limit`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(READ_CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"over {limit} bytes")
    return b"".join(chunks)


def leads_nowhere(name: str, error: BaseException) -> Skipped:
    """The skip of a link to nothing (or to itself, or in a loop)."""
    why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return Skipped(name, "unreadable", f"a link that leads nowhere: {why}")


def _open_regular(path: Path, within: Path | None = None) -> IO[bytes] | Skipped:
    """Open a file for reading if it is a regular file (never blocks on a FIFO or a device) and,
    given `within` (a resolved folder), if the file opened is in it: a link swapped in after the
    folder was listed is caught here, where the opened file is known."""
    name = display_name(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        if path.is_symlink():  # there all along, leading nowhere
            return leads_nowhere(name, exc)
        return Skipped(name, "vanished", "gone before it could be read")
    except OSError as exc:
        return Skipped(name, "unreadable", exc.strerror or str(exc))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return Skipped(name, "not_regular", "not a regular file (FIFO, device or socket)")
        if within is not None and not (opened := _opened_path(fd, path)).is_relative_to(within):
            os.close(fd)
            return Skipped(name, "outside_folder", f"a link to {display_name(opened)}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except OSError as exc:
        os.close(fd)
        return Skipped(name, "unreadable", exc.strerror or str(exc))


def _opened_path(fd: int, path: Path) -> Path:
    """Return the path of the file a descriptor has open (Linux tells; elsewhere, the path's)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return path.resolve()


def _decompressed(path: Path, raw: IO[bytes]) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw


def read_article(
    root: Path, path: Path, outlet: str | None = None, max_bytes: int = 5_000_000, within: Path | None = None
) -> Item:
    """Read one article file (its content at most `max_bytes`, after decompression; see
    `_open_regular` for `within`)."""
    name = display_name(path.relative_to(root))
    ctype = content_type_for(path.name)
    if ctype is None:
        return Skipped(display_name(path), "unsupported_extension")
    opened = _open_regular(path, within)
    if isinstance(opened, Skipped):
        return opened
    try:
        with opened, _decompressed(path, opened) as stream:
            payload = read_bounded(stream, max_bytes)
    except TooLarge:
        return Skipped(display_name(path), "too_large", f"content over {max_bytes} bytes")
    except (OSError, EOFError, zlib.error) as exc:
        return Skipped(display_name(path), "unreadable", str(exc)[:200])
    if not payload.strip():
        return Skipped(display_name(path), "empty")
    # A JSON envelope names its outlet as a JSON line does: before the folder it was found in.
    named = _envelope_outlet(payload) if ctype == "application/json" else None
    resolved = outlet or named or outlet_for(root, path, None)
    return RawArticle(
        article_id=article_id_for(resolved, os.fsencode(path.relative_to(root)), payload),
        payload=payload,
        source=Source(path=name, outlet=resolved, content_type=ctype, received_at=utc_now_iso()),
    )


def walk(
    root: Path, _seen: set[tuple[int, int]] | None = None, within: Path | None = None
) -> Iterator[Path | Skipped]:
    """Yield the files below a folder in sorted order, and a Skipped for each folder it cannot list.

    A folder reached twice (a symbolic link loop, or two links to one folder) is read once; the
    second time is a skip (`already_read`), so that every item found is accounted for. With
    `within` (a resolved folder), a symbolic link that leads out of it is a skip
    (`outside_folder`), neither read nor listed.
    """
    seen = set() if _seen is None else _seen
    try:
        st = root.stat()
    except OSError as exc:
        yield Skipped(display_name(root), "unreadable", exc.strerror or str(exc))
        return
    if (st.st_dev, st.st_ino) in seen:
        yield Skipped(display_name(root), "already_read", "a link to a folder read already")
        return
    seen.add((st.st_dev, st.st_ino))
    try:
        entries = sorted(os.scandir(root), key=lambda e: os.fsencode(e.name))
    except OSError as exc:
        yield Skipped(display_name(root), "unreadable", exc.strerror or str(exc))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if within is not None and entry.is_symlink():
            try:
                target = path.resolve()
            except (OSError, RuntimeError):  # a loop of links: read as a file, which fails as one
                target = within
            if not target.is_relative_to(within):
                yield Skipped(display_name(path), "outside_folder", f"a link to {display_name(target)}")
                continue
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            yield from walk(path, seen, within)
        else:
            yield path


def count_items(paths: Iterable[Path | str]) -> int | None:
    """Return how many items the inputs hold, for a progress bar's ETA (None when an archive or stdin
    makes that unknown without reading it all)."""
    total = 0
    for given in paths:
        root = Path(given)
        if str(given) == STDIN:
            return None
        found = walk(root) if root.is_dir() else [root]
        for item in found:
            if isinstance(item, Path) and kind_of(item.name) != "article":
                return None
            total += 1
    return total


def holds_input(paths: Iterable[Path | str]) -> bool:
    """Return whether the inputs name stdin or hold a file of a kind the producer reads (a walk
    that stops at the first)."""
    for given in paths:
        if str(given) == STDIN:
            return True
        root = Path(given)
        for item in walk(root) if root.is_dir() else [root]:
            if isinstance(item, Path) and (kind_of(item.name) != "article" or content_type_for(item.name)):
                return True
    return False


def iter_inputs(
    paths: Iterable[Path | str],
    outlet: str | None = None,
    max_bytes: int = 5_000_000,
    outlet_by_host: dict[str, str] | None = None,
    stdin: IO[bytes] | None = None,
) -> Iterator[Item]:
    """Yield every article (or skip) in the given files, folders, archives and '-' (stdin, JSON Lines)."""
    for given in paths:
        if str(given) == STDIN:
            # A reader of its own on the descriptor, not sys.stdin's: a read that blocks holds its
            # reader's lock, and the interpreter's exit flushes sys.stdin (an abort if it is held).
            opened = (
                nullcontext(stdin) if stdin is not None else open(sys.stdin.fileno(), "rb", closefd=False)
            )
            with opened as stream:
                yield from iter_jsonl(stream, "<stdin>", outlet, max_bytes)
            continue
        root = Path(given)
        if root.is_dir():
            for found in walk(root):
                if isinstance(found, Skipped):
                    yield found
                else:
                    yield from iter_file(root, found, outlet, max_bytes, outlet_by_host)
        elif os.path.lexists(root):
            yield from iter_file(root.parent, root, outlet, max_bytes, outlet_by_host)
        else:
            yield Skipped(display_name(root), "vanished", "no such file or directory")


def iter_file(
    root: Path,
    path: Path,
    outlet: str | None = None,
    max_bytes: int = 5_000_000,
    outlet_by_host: dict[str, str] | None = None,
    within: Path | None = None,
) -> Iterator[Item]:
    """Yield the article a file is, or the articles an archive or JSON Lines file holds (see
    `_open_regular` for `within`)."""
    kind = kind_of(path.name)
    if kind == "article":
        item = read_article(root, path, outlet, max_bytes, within)
        # Envelopes without an outlet of their own take their folder's, as a file of one does.
        folder = None if (named := outlet_for(root, path, None)) == UNKNOWN_OUTLET else named
        yield from _array_items(item, outlet, folder) or (item,)
        return
    opened = _open_regular(path, within)
    if isinstance(opened, Skipped):
        yield opened
        return
    name = display_name(path.relative_to(root))
    found = False
    with opened:
        items = (
            iter_jsonl(_decompressed(path, opened), name, outlet, max_bytes)
            if kind == "jsonl"
            else iter_warc(opened, name, outlet, max_bytes, outlet_by_host or {})
        )
        for item in items:
            found = True
            yield item
    if not found:  # nothing in it at all (a file that is not an archive says so itself)
        yield Skipped(display_name(path), "empty", "no lines or records in it")


_ARRAY_ITEM = re.compile(r"\[\d+\]$")


def in_array(item: Item) -> bool:
    """Whether an item is one of a .json file's array of envelopes (named `file.json[n]`): the
    file is then read as an archive is, not as one article."""
    return bool(_ARRAY_ITEM.search(item.source.path if isinstance(item, RawArticle) else item.path))


def _array_items(item: Item, outlet: str | None, folder: str | None) -> list[Item] | None:
    """Return the articles of a .json file that holds an array of envelopes, each as a JSON line
    is read (as the HTTP ingest takes an array), `outlet` (--outlet) overriding theirs and `folder`
    the outlet of those that name none (before their URL's host); None for any other file."""
    if not isinstance(item, RawArticle) or item.source.content_type != "application/json":
        return None
    body = item.payload.removeprefix(codecs.BOM_UTF8).lstrip()
    if not body.startswith(b"["):
        return None
    try:
        envelopes = jsonio.loads(body)
    except ValueError:
        return None  # not JSON: the worker dead-letters the file, with the reason
    if not envelopes:
        return [Skipped(item.source.path, "empty", "an empty array")]
    return [
        envelope_article(jsonio.dumps(envelope), f"{item.source.path}[{n}]", outlet, folder)
        for n, envelope in enumerate(envelopes)
    ]


def unusable_paths(paths: Iterable[str]) -> str | None:
    """Return one line saying which input paths given on the command line cannot be read, and why
    (None if all can be): an empty one (a script's unset variable would otherwise read the
    current folder), one that does not exist, a link loop, a folder on the way that cannot be
    entered."""
    problems = []
    for path in paths:
        if path == STDIN:
            continue
        if not path:
            problems.append("an empty path ('')")
            continue
        try:
            os.stat(path)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
    return "; ".join(problems) or None


# -- JSON Lines ------------------------------------------------------------------------------------


def outlet_argument(value: str) -> str:
    """An --outlet given on the command line (argparse type): text that travels as UTF-8 in Kafka
    headers, not undecodable bytes of the shell (which Python keeps as surrogates)."""
    name = value.strip()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{value!a} is not text (UTF-8)") from None
    if not name:
        raise argparse.ArgumentTypeError("an outlet needs a name")
    return name


def iter_jsonl(stream: IO[bytes], name: str, outlet: str | None, max_bytes: int) -> Iterator[Item]:
    """Yield one article per line holding a JSON envelope; a bad line is a Skipped with its number."""
    number = blank = 0
    try:
        while True:
            line = stream.readline(max_bytes + 2)
            if not line:
                return
            number += 1
            where = f"{name}:{number}"
            if len(line) > max_bytes and not line.endswith(b"\n"):
                # Over the limit: skip the rest of the line in bounded reads.
                while line and not line.endswith(b"\n"):
                    line = stream.readline(READ_CHUNK)
                yield Skipped(where, "too_large", f"line over {max_bytes} bytes")
                continue
            if not line.strip():
                blank += 1
                if blank == MAX_BLANK_LINES:
                    # A compressed file of nothing but newlines (a gzip bomb of them) would keep
                    # the producer reading for minutes, every input after it waiting.
                    yield Skipped(where, "bad_line", f"{blank} blank lines in a row: the rest is not read")
                    return
                continue
            blank = 0
            yield envelope_article(line.strip(), where, outlet)
    except (OSError, EOFError, zlib.error) as exc:
        yield Skipped(f"{name}:{number + 1}", "unreadable", str(exc)[:200])


def _named_outlet(envelope: Any) -> str | None:
    """Return the outlet a parsed JSON envelope names (None for none, or one of only spaces)."""
    named = envelope.get("outlet") if isinstance(envelope, dict) else None
    return (named.strip() or None) if isinstance(named, str) else None


def _envelope_outlet(payload: bytes) -> str | None:
    """Return the outlet an envelope file's bytes name, if they are one and name one (in UTF-8, or
    in another encoding the worker reads it in: UTF-16 as Windows saves it, a legacy code page)."""
    try:
        return _named_outlet(jsonio.loads(payload))
    except ValueError:
        pass
    from newsflow.pipeline.decode import decode_payload  # deferred: heavy, and rarely needed

    decoded = decode_payload(payload, "application/json")
    if isinstance(decoded, Rejection):
        return None  # the worker dead-letters it, with the reason
    try:
        return _named_outlet(jsonio.loads(decoded[0]))
    except ValueError:
        return None


def envelope_article(body: bytes, where: str, outlet: str | None, unnamed: str | None = None) -> Item:
    """Return the article of one JSON envelope ({url, outlet, html|text, title, published, authors}):
    its outlet is `outlet`, else the envelope's own, else `unnamed` (its folder's), else its URL's host."""
    # A byte order mark (the first line of a feed Windows saved) is no part of the article: the
    # same envelope is the same article, with its id, wherever it is found.
    body = body.removeprefix(codecs.BOM_UTF8)
    try:
        envelope = jsonio.loads(body)
    except ValueError as exc:
        return Skipped(where, "bad_line", f"not JSON: {exc}"[:200])
    if not isinstance(envelope, dict):
        return Skipped(where, "bad_line", "not a JSON object")
    if problem := envelope_problem(envelope):
        return Skipped(where, "bad_line", problem)
    url = envelope.get("url")  # a string or None (envelope_problem)
    own = outlet or _named_outlet(envelope)
    resolved = own or unnamed or host_of(url) or UNKNOWN_OUTLET
    return RawArticle(
        # The same envelope is the same article wherever it is found (another file or folder, a
        # JSON line, POST /articles, a re-send): its id does not depend on the folder.
        article_id=article_id_for(own or host_of(url) or UNKNOWN_OUTLET, url or "", body),
        payload=body,
        source=Source(
            path=where, outlet=resolved, content_type="application/json", received_at=utc_now_iso(), url=url
        ),
    )


# -- WARC ------------------------------------------------------------------------------------------


def iter_warc(
    raw: IO[bytes], name: str, outlet: str | None, max_bytes: int, outlet_by_host: dict[str, str]
) -> Iterator[Item]:
    """Yield an article for every HTML `response` record with status 200; a Skipped for every other.

    The record's target URI is the article's url, its host (or `outlet_by_host[host]`) the outlet,
    its WARC-Date the time received, and the HTTP charset is carried in the content type.
    """
    try:
        # fastwarc reads the file in bounded buffers and detects gzip (one member per record) itself.
        records = ArchiveIterator(raw, parse_http=True)
        for record in records:
            try:
                yield _warc_item(record, name, outlet, max_bytes, outlet_by_host)
            except Exception as exc:  # noqa: BLE001 - one odd record must not end the archive
                yield Skipped(f"{name}#{record.stream_pos}", "unreadable", f"WARC record: {exc!r}"[:200])
    except (OSError, ValueError, RuntimeError) as exc:
        yield Skipped(name, "unreadable", f"WARC: {exc}"[:200])


_GZIP_MAGIC = b"\x1f\x8b"
# A chunk's size line (RFC 9112 7.1): hex digits, perhaps extensions, CRLF (or a bare LF).
_CHUNK_SIZE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")


class Truncated(ValueError):
    """An encoded body that ends before its encoding does."""


def _dechunked(body: bytes, max_bytes: int) -> bytes:
    """Return a chunked body's data (extensions and trailers are left out)."""
    out, pos = bytearray(), 0
    while True:
        size_line = _CHUNK_SIZE.match(body, pos)
        if size_line is None:
            if pos >= len(body):
                raise Truncated("the chunked body ends before its last chunk")
            raise ValueError("a chunk's size line is not one")
        size, pos = int(size_line.group(1), 16), size_line.end()
        if size == 0:
            return bytes(out)
        if pos + size > len(body):
            raise Truncated("the chunked body ends inside a chunk")
        out += body[pos : pos + size]
        if len(out) > max_bytes:
            raise TooLarge(f"over {max_bytes} bytes")
        pos += size
        pos += 2 if body.startswith(b"\r\n", pos) else 1 if body.startswith(b"\n", pos) else 0


def _inflated(body: bytes, wbits: tuple[int, ...], max_bytes: int) -> bytes:
    """Return a zlib-family body inflated with the first of the `wbits` framings that reads it;
    gzip members one after another (RFC 1952) are one body."""
    for bits in wbits:
        out, rest = bytearray(), body
        try:
            while True:
                inflater = zlib.decompressobj(bits)
                out += inflater.decompress(rest, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise TooLarge(f"over {max_bytes} bytes")
                if not inflater.eof:
                    raise Truncated("the compressed body ends before its end")
                rest = inflater.unused_data
                if not rest.startswith(_GZIP_MAGIC) or bits != 31:
                    return bytes(out)
        except zlib.error:
            continue
    raise ValueError("the body does not decode as its Content-Encoding says")


def _markup(body: bytes) -> bool:
    return body.lstrip()[:1] == b"<"


def _http_decoded(headers: Any, body: bytes, max_bytes: int) -> bytes:
    """Return an HTTP body without its transfer and content encodings (chunked; gzip, deflate, br).

    Crawlers that keep the body as sent (wget, warcprox, Heritrix) leave them on; Common Crawl
    stores it decoded and renames the headers. A header that does not match the bytes (a body
    decoded but still labelled) is believed only where the bytes bear it out.
    """
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower() and _CHUNK_SIZE.match(body):
        body = _dechunked(body, max_bytes)
    codings = [c.strip() for c in (headers.get("Content-Encoding") or "").lower().split(",")]
    for coding in reversed([c for c in codings if c not in ("", "identity")]):  # the last applied first
        if coding in ("gzip", "x-gzip") and body.startswith(_GZIP_MAGIC):
            body = _inflated(body, (31,), max_bytes)
        elif coding == "deflate" and not _markup(body):
            body = _inflated(body, (15, -15), max_bytes)  # as RFC 9110 says (zlib), or as IIS sent it (raw)
        elif coding == "br" and not _markup(body):
            body = read_bounded(BrotliReader(io.BytesIO(body)), max_bytes)
        elif coding not in ("gzip", "x-gzip", "deflate", "br") and not _markup(body):
            raise ValueError(f"Content-Encoding {coding} is not read")
    return body


def _not_an_html_page(record: Any, where: str, uri: str) -> Skipped | None:
    """Return why an HTTP response record is not a page to send (its status, its type), or None."""
    status = record.http_headers.status_code
    if status != 200:
        return Skipped(where, "http_status", f"HTTP {status} for {uri}"[:200])
    ctype = (record.http_content_type or "").lower()
    if ctype not in ("text/html", "application/xhtml+xml"):
        return Skipped(where, "not_html", f"{ctype or 'no content type'} at {uri}"[:200])
    return None


def _warc_item(
    record: Any, name: str, outlet: str | None, max_bytes: int, outlet_by_host: dict[str, str]
) -> Item:
    # WARC/1.0 as some tools read it writes the URI in angle brackets, as WARC-Record-ID is.
    uri = (record.headers.get("WARC-Target-URI") or "").strip().removeprefix("<").removesuffix(">")
    where = f"{name}#{record.stream_pos}"
    if record.headers.get("Content-Length") is None:  # mandatory in every WARC record
        return Skipped(where, "truncated", "the archive ends inside the record's WARC headers")
    if record.record_type != WarcRecordType.response:
        return Skipped(where, "not_response", record.headers.get("WARC-Type") or "")
    if cut := record.headers.get("WARC-Truncated"):  # the crawler kept only part of it
        return Skipped(where, "truncated", f"WARC-Truncated: {cut}"[:200])
    if not record.is_http:
        if (record.headers.get("Content-Type") or "").lower().startswith("application/http"):
            return Skipped(where, "unreadable", "HTTP headers cut short or malformed")
        return Skipped(where, "not_html", "not an HTTP response")
    if record.content_length > max_bytes + 64 * 1024:
        record.reader.consume()
        return _not_an_html_page(record, where, uri) or Skipped(
            where, "too_large", f"record over {max_bytes} bytes"
        )
    try:
        # Read before its status is believed: a record the archive cuts short may end inside it.
        body = read_bounded(record.reader, max_bytes)
        if len(body) < record.content_length:
            return Skipped(
                where,
                "truncated",
                f"{len(body)} of {record.content_length} bytes: the archive ends inside it",
            )
        if (not_a_page := _not_an_html_page(record, where, uri)) is not None:
            return not_a_page
        payload = _http_decoded(record.http_headers, body, max_bytes)
    except TooLarge:
        return _not_an_html_page(record, where, uri) or Skipped(
            where, "too_large", f"content over {max_bytes} bytes"
        )
    except Truncated as exc:
        return Skipped(where, "truncated", str(exc))
    except (OSError, ValueError) as exc:
        return Skipped(where, "unreadable", f"HTTP body: {exc}"[:200])
    if not payload.strip():
        return Skipped(where, "empty")
    host = host_of(uri) or ""
    resolved = outlet or outlet_by_host.get(host) or host or UNKNOWN_OUTLET
    charset = record.http_charset
    received = record.record_date
    return RawArticle(
        article_id=article_id_for(resolved, uri, payload),
        payload=payload,
        source=Source(
            path=where,
            outlet=resolved,
            content_type="text/html",
            received_at=received.isoformat().replace("+00:00", "Z") if received else utc_now_iso(),
            url=uri or None,
            charset=charset or None,
        ),
    )
