"""SHA-256 of an upload, computed beside the I/O instead of between it.

hashlib releases the GIL on buffers larger than 2 KiB, so a helper thread
can hash chunk k while the session writes it and receives chunk k+1: the
upload then runs at the speed of the slower of hashing and I/O, not of
their sum. The caller's contract (Stream.iter_exact keeps it): a chunk
passed to update() stays unchanged until the next-but-one update().

A confined session process has RLIMIT_NPROC 0 and can start no thread, so
it starts its helper with `prestart()` before confining itself; without a
helper, chunks are simply hashed inline.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub: signal.py's C core
import _thread
import hashlib
from typing import Any, Optional, Tuple

ALL_SIGNALS = _signal.valid_signals()
BACKGROUND_MIN = 256 << 10   # smaller chunks are hashed at once: a hand-off costs more


class HashThread:
    """A helper thread hashing one handed-over chunk at a time.

    Built on `_thread` rather than `threading`: Thread.start() waits for the
    new thread to run and builds Event and Condition objects first, which in
    a freshly forked session cost 0.8 ms before its greeting and copied
    pages of shared memory; a bare thread and three locks do the job."""

    def __init__(self) -> None:
        self._go = _thread.allocate_lock()      # held while there is no work
        self._idle = _thread.allocate_lock()    # held while a chunk is being hashed
        self._done = _thread.allocate_lock()    # held while the worker runs
        self._go.acquire()
        self._job: Optional[Tuple[Any, memoryview]] = None
        self._busy = False
        self._running = False

    def start(self) -> bool:
        self._done.acquire()
        # Started with every signal blocked (a new thread inherits the mask):
        # a signal for the process then always reaches the main thread, and
        # interrupts the call it is blocked in, instead of waking a helper.
        # Through _signal: signal.py's wrappers turn every number into a
        # Signals member, and each real-time one (not a member) raises and
        # catches a ValueError, some sixty per call in a fresh child.
        unblocked = _signal.pthread_sigmask(_signal.SIG_BLOCK, ALL_SIGNALS)
        try:
            _thread.start_new_thread(self._work, ())
        except RuntimeError:                    # no thread allowed (RLIMIT_NPROC)
            self._done.release()
            return False
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, unblocked)
        self._running = True
        return True

    def submit(self, digest: Any, chunk: memoryview) -> None:
        self.wait()
        self._job, self._busy = (digest, chunk), True
        self._idle.acquire()
        self._go.release()

    def wait(self) -> None:
        if self._busy:
            self._idle.acquire()          # released by the worker when done
            self._idle.release()
            self._busy = False

    def stop(self) -> None:
        self.wait()
        if self._running:
            self._job = None
            self._go.release()
            self._done.acquire()          # released by the worker as it returns
            self._done.release()
            self._running = False

    def _work(self) -> None:
        try:
            while True:
                self._go.acquire()
                job = self._job
                if job is None:
                    return
                try:
                    job[0].update(job[1])
                finally:
                    self._idle.release()  # never leave the writer waiting
        finally:
            self._done.release()


_process_helper: Optional[HashThread] = None


def prestart() -> None:
    """Start this session process's helper now, while threads may be started."""
    global _process_helper
    if _process_helper is None:
        helper = HashThread()
        _process_helper = helper if helper.start() else None


class OverlappedSha256:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self._helper = _process_helper
        self._own: Optional[HashThread] = None
        self._tried = self._helper is not None

    def update(self, chunk: memoryview) -> None:
        helper = self._helper_for(len(chunk))
        if helper is None:
            if self._helper is not None:
                self._helper.wait()
            self.digest.update(chunk)
            return
        helper.submit(self.digest, chunk)

    def _helper_for(self, size: int) -> Optional[HashThread]:
        if size < BACKGROUND_MIN:
            return None
        if not self._tried:               # thread mode: a helper of our own
            self._tried = True
            own = HashThread()
            if own.start():
                self._helper = self._own = own
        return self._helper

    def hexdigest(self) -> str:
        if self._helper is not None:
            self._helper.wait()
        return self.digest.hexdigest()

    def close(self) -> None:
        """Stop a helper of our own; safe to call more than once."""
        if self._helper is not None:
            self._helper.wait()
        if self._own is not None:
            self._own.stop()
            self._own = None
            self._helper = None
