"""Inputs that once held a worker for seconds to minutes: how long each takes now, at two sizes.

    python bench/stall_inputs.py [--record] [--scale 1.0]

One input must never stall the stream: a worker's batch waits for its slowest article, and the
parse bound (10 s, SIGALRM) interrupts neither one long C call nor anything after extraction (NER,
entities, features). Each input below is a shape testers found to grow faster than its size (an
element of countless attributes, unclosed tags, results tables of thousands of names, runs of
punctuation, a date claim of a million words...), generated at a size and at four times it; the
table gives the time of the per-article stages (`Enricher.clean`, then `finish`: NER, entities,
embedding) for each, and the ratio of the two: about 4 is linear, 16 quadratic. The baseline in
the same run is an ordinary article of the same size (repeated prose).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))

from bench.common import publish  # noqa: E402
from newsflow.pipeline import places  # noqa: E402
from newsflow.pipeline.embed import default_encoder  # noqa: E402
from newsflow.pipeline.enrich import Enricher  # noqa: E402
from newsflow.pipeline.entities import EntityTagger  # noqa: E402
from newsflow.pipeline.extract import warm_up  # noqa: E402
from newsflow.pipeline.records import RawArticle, Source  # noqa: E402

PROSE = (
    "The league published the results of the weekend matches on Sunday, and the officials said "
    "the season would continue next week as planned.\n"
)


def _code(i: int, base: int = 65) -> str:
    return "".join(chr(base + (i // 26**k) % 26) for k in range(4))


# name -> (content type, generator of a payload of about n units)
INPUTS: dict[str, tuple[str, Callable[[int], str]]] = {
    "ordinary article (baseline)": ("text/plain", lambda n: PROSE * (n // 8)),
    "one element of n attributes": (
        "text/html",
        lambda n: "<html><body><div " + " ".join(f'a{i}="v>w"' for i in range(n)) + "><p>Kept.</p></div>",
    ),
    "n/8 elements of 676 attributes": (
        "text/html",
        lambda n: (
            "<html><body>" + (("<p " + " ".join(_code(j, 97)[:2] for j in range(676)) + ">x</p>") * (n // 8))
        ),
    ),
    "n unclosed tags": ("text/html", lambda n: "<html><body><p>" + "<a" * n),
    "club named like a city beside a country, n rows": (
        "text/plain",
        lambda n: "Results on Sunday.\n" + "Liverpool 1 France 2\n" * (n // 4),
    ),
    "n/4 distinct names in capitals": (
        "text/plain",
        lambda n: PROSE * 12 + "".join(f"KQ{_code(i)} 1 VR{_code(i)} 2\n" for i in range(n // 4)),
    ),
    "n/4 distinct two-word names": (
        "text/plain",
        lambda n: PROSE * 12 + "".join(f"Kq{_code(i, 97)} 1 Vr{_code(i, 97)} Bt 2\n" for i in range(n // 4)),
    ),
    "n/4 closing brackets after a word": ("text/plain", lambda n: PROSE * 3 + "x" + ")" * (n // 4)),
    "a date claim of n words": (
        "application/json",
        lambda n: json.dumps({"text": PROSE * 20, "published": "5 December 2026 " + "of " * n}),
    ),
}


def _time(enricher: Enricher, content_type: str, payload: bytes) -> tuple[float, float, str]:
    raw = RawArticle("bench", payload, Source("bench", "bench", content_type, "2026-12-01T00:00:00Z"))
    started = time.perf_counter()
    cleaned = enricher.clean(raw)
    clean_s = time.perf_counter() - started
    started = time.perf_counter()
    (finished,) = enricher.finish([cleaned])
    status = getattr(getattr(finished, "article", None), "extraction", None)
    return clean_s, time.perf_counter() - started, status.status if status else type(finished).__name__


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (1: n = 4,000 and 16,000)")
    args = parser.parse_args()
    enricher = Enricher(tagger=EntityTagger(), encoder=default_encoder())
    warm_up()  # as a worker does before it consumes: nothing loads lazily in the times
    places.load()
    _time(enricher, "text/plain", PROSE.encode() * 40)
    small = int(4000 * args.scale)
    rows = []
    for name, (content_type, make) in INPUTS.items():
        times = []
        for n in (small, 4 * small):
            payload = make(n).encode()
            clean_s, finish_s, status = _time(enricher, content_type, payload)
            times.append((len(payload), clean_s + finish_s, status))
        (size_a, time_a, _), (size_b, time_b, status) = times
        rows.append(
            f"| {name} | {size_a / 1e3:.0f} kB: {time_a:.2f} s | {size_b / 1e3:.0f} kB: {time_b:.2f} s "
            f"| {time_b / max(time_a, 1e-3):.1f} | {status} |"
        )
    report = "\n".join(
        [
            f"n = {small:,} and {4 * small:,}; seconds of `Enricher.clean` + `finish` for one input, warmed up",
            "",
            "| input | at n | at 4n | ratio (4: linear) | status at 4n |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    publish("Inputs that once stalled a worker (bench/stall_inputs.py)", report, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
