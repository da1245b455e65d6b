"""Find article files and turn each into a RawArticle (or a reason to skip it)."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from newsflow.pipeline.records import RawArticle, Source, utc_now_iso

CONTENT_TYPE_BY_SUFFIX = {
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".json": "application/json",
}


@dataclass(frozen=True, slots=True)
class Skipped:
    path: str
    reason: str  # unsupported_extension | empty | unreadable | too_large


def content_type_for(path: Path) -> str | None:
    """Return the content type implied by the file name (a trailing .gz is looked through)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return CONTENT_TYPE_BY_SUFFIX.get(os.path.splitext(name)[1])


def iter_files(paths: list[Path]) -> Iterator[tuple[Path, Path]]:
    """Yield (root, file) for every regular file under the given files and directories, sorted."""
    for root in paths:
        if root.is_dir():
            for f in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
                yield root, f
        else:
            yield root.parent, root


def outlet_for(root: Path, path: Path, override: str | None) -> str:
    """Return the outlet: the override, else the first folder below the root (root/<outlet>/file), else 'unknown'."""
    if override:
        return override
    rel = path.relative_to(root).parts
    return rel[0] if len(rel) > 1 else "unknown"


def article_id_for(outlet: str, name: str, payload: bytes) -> str:
    """Return a stable id: the same outlet, file name and bytes always give the same id."""
    h = hashlib.sha256()
    h.update(outlet.encode() + b"\0" + name.encode() + b"\0")
    h.update(payload)
    return h.hexdigest()[:24]


def read_article(
    root: Path, path: Path, outlet: str | None = None, max_bytes: int = 5_000_000
) -> RawArticle | Skipped:
    """Read one file into a RawArticle, or say why it is skipped."""
    ctype = content_type_for(path)
    if ctype is None:
        return Skipped(str(path), "unsupported_extension")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Skipped(str(path), "too_large")
        payload = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            payload = gzip.decompress(payload)
    except (OSError, EOFError, gzip.BadGzipFile):
        return Skipped(str(path), "unreadable")
    if not payload.strip():
        return Skipped(str(path), "empty")
    resolved_outlet = outlet_for(root, path, outlet)
    name = path.relative_to(root).as_posix()
    return RawArticle(
        article_id=article_id_for(resolved_outlet, name, payload),
        payload=payload,
        source=Source(path=name, outlet=resolved_outlet, content_type=ctype, received_at=utc_now_iso()),
    )
