"""The compact LSH finds exactly the candidates datasketch's MinHashLSH finds, through merges and removals."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHashLSH

from newsflow.pipeline import lsh as lsh_module
from newsflow.pipeline.features import MINHASH_SCHEME, NUM_PERM
from newsflow.pipeline.lsh import BandIndex


def _signatures(n: int, rng: random.Random) -> list[np.ndarray]:
    """Random signatures, many of which copy some bands of an earlier one (as near-copies do)."""
    out: list[np.ndarray] = []
    for _ in range(n):
        sig = np.array([rng.getrandbits(32) for _ in range(NUM_PERM)], dtype=np.uint32)
        if out and rng.random() < 0.6:
            other = rng.choice(out)
            for band in rng.sample(range(21), k=rng.randint(1, 4)):
                sig[band * 3 : band * 3 + 3] = other[band * 3 : band * 3 + 3]
        out.append(sig)
    return out


@pytest.mark.parametrize("pending", [4096, 7])
def test_same_candidates_as_datasketch_through_merges_and_removals(monkeypatch, pending):
    monkeypatch.setattr(lsh_module, "MIN_PENDING", pending)  # 7: merge (and renumber) often
    rng = random.Random(3)
    sigs = _signatures(600, rng)
    ours = BandIndex(0.3, NUM_PERM)
    theirs = MinHashLSH(threshold=0.3, num_perm=NUM_PERM)
    assert (ours.bands, ours.rows) == (theirs.b, theirs.r)

    def lean(sig: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=7, hashvalues=sig, scheme=MINHASH_SCHEME)

    live: dict[str, np.ndarray] = {}
    for i, sig in enumerate(sigs):
        key = f"a{i}"
        if i % 5 == 0 and live:  # remove one now and then
            gone = rng.choice(sorted(live))
            ours.remove(gone, live[gone])
            theirs.remove(gone)
            del live[gone]
        assert ours.query(sig) == set(theirs.query(lean(sig))), f"before inserting {key}"
        ours.insert(key, sig)
        theirs.insert(key, lean(sig))
        live[key] = sig
    assert len(ours) == len(live)
    for key, sig in live.items():
        assert key in ours.query(sig)


def test_bands_of_any_width_work():
    # a higher threshold makes wider bands (more rows per band)
    index = BandIndex(0.8, NUM_PERM)
    assert index.rows > 4
    sig = np.arange(NUM_PERM, dtype=np.uint32)
    index.insert("a", sig)
    assert index.query(sig) == {"a"}
