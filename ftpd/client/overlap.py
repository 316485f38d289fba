"""SHA-256 of a download computed beside the receiving, not between it.

hashlib releases the GIL on large buffers, so one helper thread can hash
chunk k while the client writes it and receives chunk k+1: a verified
download runs at the speed of the slower of hashing and I/O, not of their
sum. The caller's contract (Stream.iter_exact keeps it): a chunk passed to
update() stays unchanged until the next-but-one update().

(The server has its own helper, built for forked sessions that may start
no thread; the client and the server sides never import each other.)
"""

from __future__ import annotations

import _thread
import signal
from typing import Any, Optional, Tuple

BACKGROUND_MIN = 256 << 10   # smaller chunks are hashed at once: a hand-off costs more


class _Helper:
    """One daemon thread for the process, started on the first large chunk:
    a tree of small files never starts it."""

    def __init__(self) -> None:
        self._go = _thread.allocate_lock()      # held while there is no work
        self._idle = _thread.allocate_lock()    # held while a chunk is being hashed
        self._go.acquire()
        self._job: Optional[Tuple[Any, memoryview]] = None
        self.error: Optional[Exception] = None
        # Started with every signal blocked (a thread inherits the mask), so
        # Ctrl-C always reaches the main thread.
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            _thread.start_new_thread(self._work, ())
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)

    def submit(self, digest: Any, chunk: memoryview) -> None:
        self._idle.acquire()          # the chunk before is hashed: its buffer is free
        self._job = (digest, chunk)
        self._go.release()

    def wait(self) -> None:
        self._idle.acquire()
        self._idle.release()

    def _work(self) -> None:
        while True:
            self._go.acquire()
            job = self._job
            try:
                if job is not None:
                    job[0].update(job[1])
            except Exception as exc:  # kept for hexdigest() to raise
                self.error = exc
            finally:
                self._idle.release()  # never leave the receiver waiting


_helper: Optional[_Helper] = None


class OverlappedDigest:
    """Wraps a hashlib object: large chunks are hashed by the helper thread,
    small ones at once (after the helper finished, to keep the order)."""

    def __init__(self, digest: Any):
        self.digest = digest
        self.handed_over = False

    def update(self, chunk: Any) -> None:
        global _helper
        if len(chunk) < BACKGROUND_MIN:
            self._wait()
            self.digest.update(chunk)
            return
        if _helper is None:
            _helper = _Helper()
        _helper.submit(self.digest, memoryview(chunk))
        self.handed_over = True

    def _wait(self) -> None:
        if self.handed_over and _helper is not None:
            _helper.wait()
            self.handed_over = False

    def hexdigest(self) -> str:
        self._wait()
        if _helper is not None and _helper.error is not None:
            raise _helper.error      # a digest with a chunk missing must not pass
        return str(self.digest.hexdigest())
