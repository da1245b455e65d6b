"""The results of the last few thousand distinct inputs of a costly, deterministic step.

News repeats itself word for word: a page fetched again after an edit elsewhere on it, a wire
story carried verbatim by several outlets, a re-publication with another headline. The NER model
and the sentence encoder give the same answer for the same input, so a worker that has just
computed one for a text does not compute it again (`EntityTagger.tag_batch`, `TextEncoder.encode`).
Inputs are keyed by a 16-byte digest, so the memory is the results', bounded by `size`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")

# Per step and worker: a few minutes of a busy stream. NER spans are kept packed (12 bytes a span:
# about 1 KB for a typical article, 21 KB for a name-dense one at the character cap) and
# embeddings as 1.5 KB of float32: some 5 MB together, at most about 45 MB.
RECENT_INPUTS = 2048


def digest(data: str | bytes) -> bytes:
    """Return the key of an input."""
    return hashlib.blake2b(data.encode() if isinstance(data, str) else data, digest_size=16).digest()


class Recent(Generic[V]):
    """A least-recently-used map from input digests to results, with hit and miss counts."""

    def __init__(self, size: int = RECENT_INPUTS) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._results: OrderedDict[bytes, V] = OrderedDict()
        self._lock = threading.Lock()  # the stages may run on a worker thread

    def __len__(self) -> int:
        return len(self._results)

    def get(self, key: bytes) -> V | None:
        """Return the result kept for this key (counted as a hit), or None (a miss)."""
        with self._lock:
            result = self._results.get(key)
            if result is None:
                self.misses += 1
                return None
            self.hits += 1
            self._results.move_to_end(key)
            return result

    def put(self, key: bytes, result: V) -> None:
        """Keep a result, forgetting the least recently used beyond `size`."""
        if self.size <= 0:
            return
        with self._lock:
            self._results[key] = result
            self._results.move_to_end(key)
            while len(self._results) > self.size:
                self._results.popitem(last=False)
