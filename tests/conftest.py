"""Shared helpers: paths to the seeds and fixtures, and raw articles made from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsflow.pipeline.records import RawArticle
from newsflow.producer.sources import read_article

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def raw_from_file(path: Path, root: Path | None = None, outlet: str | None = None) -> RawArticle:
    """Read a file the way the producer does."""
    item = read_article(root or path.parent, path, outlet)
    assert isinstance(item, RawArticle), item
    return item


@pytest.fixture
def seed_raws() -> list[RawArticle]:
    return [raw_from_file(p) for p in sorted(SEEDS.glob("*.txt"))]


@pytest.fixture
def fixture_raws() -> list[RawArticle]:
    root = FIXTURES / "articles"
    return [raw_from_file(p, root) for p in sorted(root.rglob("*.*"))]
