"""MinHash LSH with a compact memory layout: a few hundred bytes per indexed article.

The banding is datasketch's `MinHashLSH` (the same bands and rows for a threshold, so the same
candidates), but datasketch keeps a Python set per bucket and a list of byte strings per key:
about 6 KB per article, which at a million articles is most of the dedup index's memory. Here
each band is a sorted array of 32-bit band hashes with the row of each, searched by bisection,
plus a small dict of recent inserts that is merged into the arrays once it grows: 8 bytes per
article and band. Two bands that differ share a 32-bit hash once in four billion: at a million
articles, one query in a few hundred gets a stray candidate, which its containment then rejects.
A removed article's row is marked dead and dropped at the next merge.

Signatures keep their full 32-bit values. Fewer bits (b-bit MinHash) would not do with datasketch's
affine permutations: the low bits of `a*h + b mod 2**32` depend only on the low bits of `h`, so two
one-shingle texts whose shingle hashes share them would agree in every value, a "copy".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasketch import MinHashLSH

# Recent inserts are merged into the sorted arrays when there are this many, or a sixteenth of
# them. A pending insert costs about 2.5 KB (a dict entry and a list for each of 21 bands) where a
# merged one costs 8 bytes a band: a small share keeps the average near 250 bytes an article, and
# the merges (a sort per band) still cost only some 20 microseconds an insert at a million.
MIN_PENDING = 4096
PENDING_SHARE = 16


def signature_values(signature: Sequence[int] | np.ndarray | bytes) -> np.ndarray:
    """Return a MinHash signature's values as uint32 (`bytes` are a signature's `.tobytes()`)."""
    if isinstance(signature, bytes):
        return np.frombuffer(signature, dtype=np.uint32)
    return np.asarray(signature, dtype=np.uint32)


def band_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Return (bands, rows) as datasketch chooses them for a Jaccard threshold."""
    reference = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return int(reference.b), int(reference.r)


class BandIndex:
    """Article ids by the bands of their MinHash signatures (`num_perm` uint32 values, or their bytes)."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.bands, self.rows = band_params(threshold, num_perm)
        # Odd 64-bit multipliers, one per row, that mix a band's rows into one hash.
        self._mix = np.random.default_rng(7).integers(1, 2**63, self.rows, dtype=np.uint64) * 2 + 1
        self._ids: list[str | None] = []  # row -> article id (None once removed)
        self._dead = 0
        self._keys = [np.empty(0, dtype=np.uint32) for _ in range(self.bands)]
        self._rows = [np.empty(0, dtype=np.int32) for _ in range(self.bands)]
        self._pending: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]
        self._pending_count = 0

    def __len__(self) -> int:
        return len(self._ids) - self._dead

    def _hashes(self, signature: Sequence[int] | np.ndarray | bytes) -> list[int]:
        values = (
            signature_values(signature)
            .astype(np.uint64)[: self.bands * self.rows]
            .reshape(self.bands, self.rows)
        )
        with np.errstate(over="ignore"):  # multiplication modulo 2**64 is the point
            mixed = (values * self._mix).sum(axis=1, dtype=np.uint64)
            mixed ^= mixed >> np.uint64(32)
        mixed &= np.uint64(0xFFFFFFFF)
        return [int(h) for h in mixed]

    def insert(self, article_id: str, signature: Sequence[int] | np.ndarray | bytes) -> None:
        row = len(self._ids)
        self._ids.append(article_id)
        for band, h in enumerate(self._hashes(signature)):
            self._pending[band].setdefault(h, []).append(row)
        self._pending_count += 1
        if self._pending_count >= max(MIN_PENDING, len(self._ids) // PENDING_SHARE):
            self._merge()

    def query(self, signature: Sequence[int] | np.ndarray | bytes) -> set[str]:
        """Return the ids of the indexed articles that share at least one band with `signature`."""
        found: set[str] = set()
        for band, h in enumerate(self._hashes(signature)):
            lo, hi = self._span(band, h)
            rows = [*self._rows[band][lo:hi].tolist(), *self._pending[band].get(h, ())]
            found.update(i for i in (self._ids[r] for r in rows) if i is not None)
        return found

    def _span(self, band: int, h: int) -> tuple[int, int]:
        """Return the slice of a band's sorted arrays that holds hash `h` (one bisection each end)."""
        keys = self._keys[band]
        lo = int(keys.searchsorted(np.uint32(h)))
        hi = int(keys.searchsorted(np.uint32(h + 1))) if h < 0xFFFFFFFF else len(keys)
        return lo, hi

    def remove(self, article_id: str, signature: Sequence[int] | np.ndarray | bytes) -> None:
        """Forget an article (its signature finds its rows)."""
        h = self._hashes(signature)[0]
        lo, hi = self._span(0, h)
        for r in [*self._rows[0][lo:hi].tolist(), *self._pending[0].get(h, ())]:
            if self._ids[r] == article_id:
                self._ids[r] = None
                self._dead += 1
        if self._dead > max(MIN_PENDING, len(self._ids) // 2):
            self._merge()

    def compact(self) -> None:
        """Fold recent inserts and removals into the arrays now (before a snapshot is taken)."""
        if self._pending_count or self._dead:
            self._merge()

    def _merge(self) -> None:
        """Fold the recent inserts into the sorted arrays, dropping removed rows and renumbering."""
        alive = np.fromiter((i is not None for i in self._ids), dtype=bool, count=len(self._ids))
        renumber = np.cumsum(alive, dtype=np.int64) - 1
        for band in range(self.bands):
            pending = self._pending[band]
            new_keys = np.fromiter(
                (h for h, rows in pending.items() for _ in rows),
                dtype=np.uint32,
                count=self._pending_count_of(band),
            )
            new_rows = np.fromiter(
                (r for rows in pending.values() for r in rows), dtype=np.int64, count=len(new_keys)
            )
            keys = np.concatenate([self._keys[band], new_keys])
            rows = np.concatenate([self._rows[band].astype(np.int64), new_rows])
            keep = alive[rows]
            keys, rows = keys[keep], renumber[rows[keep]]
            order = np.argsort(keys, kind="stable")
            self._keys[band] = keys[order]
            self._rows[band] = rows[order].astype(np.int32)
            pending.clear()
        self._ids = [i for i in self._ids if i is not None]
        self._dead = 0
        self._pending_count = 0

    def _pending_count_of(self, band: int) -> int:
        return sum(len(rows) for rows in self._pending[band].values())
