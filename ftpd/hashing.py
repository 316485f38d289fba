"""SHA-256 of an upload, computed beside the I/O instead of between it.

hashlib releases the GIL on buffers larger than 2 KiB, so a helper thread
can hash chunk k while the session writes it and receives chunk k+1: the
upload then runs at the speed of the slower of hashing and I/O, not of
their sum. The caller's contract (Stream.iter_exact keeps it): a chunk
passed to update() stays unchanged until the next-but-one update().
"""

from __future__ import annotations

import hashlib
import threading
from typing import Optional

BACKGROUND_MIN = 256 << 10   # smaller chunks are hashed at once: a hand-off costs more


class OverlappedSha256:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self._thread: Optional[threading.Thread] = None
        self._go = threading.Lock()       # held while there is no work
        self._idle = threading.Lock()     # held while a chunk is being hashed
        self._go.acquire()
        self._chunk: Optional[memoryview] = None
        self._busy = False

    def update(self, chunk) -> None:
        self._wait()
        if len(chunk) < BACKGROUND_MIN:
            self.digest.update(chunk)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="sha256", daemon=True)
            self._thread.start()
        self._chunk, self._busy = chunk, True
        self._idle.acquire()
        self._go.release()

    def hexdigest(self) -> str:
        self._wait()
        return self.digest.hexdigest()

    def close(self) -> None:
        """Stop the helper thread; safe to call more than once."""
        self._wait()
        if self._thread is not None:
            self._chunk = None
            self._go.release()
            self._thread.join()
            self._thread = None

    def _wait(self) -> None:
        if self._busy:
            self._idle.acquire()      # released by the worker when done
            self._idle.release()
            self._busy = False

    def _work(self) -> None:
        while True:
            self._go.acquire()
            chunk = self._chunk
            if chunk is None:
                return
            try:
                self.digest.update(chunk)
            finally:
                self._idle.release()   # never leave the writer waiting
