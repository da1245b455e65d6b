"""The results of the last few thousand distinct inputs of a costly, deterministic step.

News repeats itself word for word: a page fetched again after an edit elsewhere on it, a wire
story carried verbatim by several outlets, a re-publication with another headline. The NER model
and the sentence encoder give the same answer for the same input, so a worker that has just
computed one for a text does not compute it again (`EntityTagger.tag_batch`, `TextEncoder.encode`).
Inputs are keyed by a 16-byte digest, so the memory is the results', bounded by `size`.

Workers share what they compute: a wire story carried by several outlets lands on the partitions,
and so the workers, of all of them, and each worker alone would see only its share of the repeats
(with N workers, about 1/N). A shared `Recent` keeps what it computed (`put`) for `take_fresh`;
the worker publishes it, and every worker `adopt`s what the others computed. `shared_key` names a
result on the wire by the step and model that computed it, so that workers with another model or
precision never take each other's results.
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
DIGEST_BYTES = 16


def digest(data: str | bytes) -> bytes:
    """Return the key of an input."""
    return hashlib.blake2b(
        data.encode() if isinstance(data, str) else data, digest_size=DIGEST_BYTES
    ).digest()


def shared_key(step: str, key: bytes) -> bytes:
    """Return the wire key of a result: the step and model that computed it, then the input's key."""
    return step.encode() + b"/" + key


def split_shared_key(wire_key: bytes) -> tuple[str, bytes] | None:
    """Return (step, input key) of a `shared_key`, or None if it is not one."""
    step, slash, key = (
        wire_key[: -DIGEST_BYTES - 1],
        wire_key[-DIGEST_BYTES - 1 : -DIGEST_BYTES],
        wire_key[-DIGEST_BYTES:],
    )
    if not step or slash != b"/":
        return None
    try:
        return step.decode(), key
    except UnicodeDecodeError:
        return None


class Recent(Generic[V]):
    """A least-recently-used map from input digests to results, with hit and miss counts.

    With `share`, what is `put` is also kept for `take_fresh` (at most `size` of it).
    """

    def __init__(self, size: int = RECENT_INPUTS, share: bool = False) -> None:
        self.size = size
        self.share = share and size > 0
        self.hits = 0
        self.misses = 0
        self._results: OrderedDict[bytes, V] = OrderedDict()
        self._fresh: OrderedDict[bytes, V] = OrderedDict()
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

    def put(self, key: bytes, result: V, shareable: bool = True) -> None:
        """Keep a result computed here, forgetting the least recently used beyond `size` (and
        offer it to other workers, when shared and `shareable`)."""
        if self.size <= 0:
            return
        with self._lock:
            self._keep(key, result)
            if self.share and shareable:
                self._fresh[key] = result
                if len(self._fresh) > self.size:
                    self._fresh.popitem(last=False)

    def adopt(self, key: bytes, result: V) -> bool:
        """Keep a result another worker computed; return False if one was kept for the key already
        (this worker's own, come back, or a copy's)."""
        if self.size <= 0:
            return False
        with self._lock:
            if key in self._results:
                return False
            self._keep(key, result)
            return True

    def take_fresh(self) -> list[tuple[bytes, V]]:
        """Return the results `put` since the last call (only when shared), oldest first."""
        with self._lock:
            fresh = list(self._fresh.items())
            self._fresh.clear()
            return fresh

    def _keep(self, key: bytes, result: V) -> None:
        self._results[key] = result
        self._results.move_to_end(key)
        while len(self._results) > self.size:
            self._results.popitem(last=False)
