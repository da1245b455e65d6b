"""A realistic news corpus of any size, built from the dev data: real pages, wire texts and their copies.

    python bench/corpus.py ../shared/data OUT_DIR --size 1000 [--one-outlet]

The base is every page of extraction-dev (HTML, gzipped) and every distinct text of stories-dev
(plain text), in a fixed shuffled order; each base item is written once as it is, and further
rounds write re-publications of it (other boilerplate, truncated, reordered, lightly edited: the
copies `story_eval.copy_variants` makes), so any size keeps the mix of pages, texts and copies.
Files go under one folder per outlet (`web-N` for pages, `wire-N` for texts, `aggregator` for
copies), or all under one folder with `--one-outlet` (a flat folder, one wire service).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.story_eval import copy_variants  # noqa: E402

WEB_OUTLETS, WIRE_OUTLETS = 5, 3


@dataclass(frozen=True)
class Item:
    name: str
    kind: str  # html | text
    body: bytes  # the HTML bytes, or the UTF-8 text


def base_items(data_dir: Path) -> list[Item]:
    """Return the dev data's pages and distinct texts, in a fixed shuffled order."""
    items = [
        Item(p.name.removesuffix(".html.gz"), "html", gzip.decompress(p.read_bytes()))
        for p in sorted((data_dir / "extraction-dev" / "html").glob("*.html.gz"))
    ]
    texts: dict[str, str] = {}
    for line in (data_dir / "stories-dev" / "pairs.jsonl").read_text().splitlines():
        if line.strip():
            pair = json.loads(line)
            for side in ("a", "b"):
                texts.setdefault(pair[side]["id"], pair[side]["text"])
    items += [Item(f"text-{k}", "text", v.encode()) for k, v in sorted(texts.items())]
    random.Random(7).shuffle(items)
    return items


def _outlet(item: Item, copy: bool) -> str:
    if copy:
        return "aggregator"
    n = int(hashlib.sha256(item.name.encode()).hexdigest(), 16)
    return f"web-{n % WEB_OUTLETS}" if item.kind == "html" else f"wire-{n % WIRE_OUTLETS}"


def _copy(item: Item, rng: random.Random, round_: int) -> bytes:
    if item.kind == "html":
        # A page served again (another URL, a tracking comment): the same article, other bytes.
        return item.body + f"\n<!-- r{round_} -->".encode()
    variants = copy_variants(item.body.decode(errors="replace"), rng)
    return rng.choice(variants).encode()


def build(data_dir: Path, out: Path, size: int, one_outlet: bool = False) -> list[Path]:
    """Write `size` article files under `out`; return their paths in order."""
    base = base_items(data_dir)
    rng = random.Random(size)
    files = []
    for n in range(size):
        item = base[n % len(base)]
        round_ = n // len(base)
        body = item.body if round_ == 0 else _copy(item, rng, round_)
        folder = out / ("one" if one_outlet else _outlet(item, round_ > 0))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{item.name}-r{round_}.{'html' if item.kind == 'html' else 'txt'}"
        path.write_bytes(body)
        files.append(path)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--one-outlet", action="store_true")
    args = parser.parse_args()
    files = build(args.data_dir, args.out, args.size, args.one_outlet)
    print(f"{len(files)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
