"""SHA-256 of a local file on its way up with a streamed digest
(`P name size -`): chunk by chunk just ahead of the sender, so the file is
read once and hashing overlaps sending."""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import threading

CHUNK = 1 << 20


class ReadAheadHasher:
    """Reads and hashes `size` bytes of a file from `start` in a thread, at most two
    chunks ahead of the sender (pread and hashlib release the GIL), so
    hashing chunk k+1 overlaps sending chunk k. next_chunk() hands out each
    chunk's length in order; 0 means the file ended early."""

    def __init__(self, fd: int, start: int, size: int):
        self.digest = hashlib.sha256()
        self.ready: "queue.Queue[int]" = queue.Queue(maxsize=1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(fd, start, size), daemon=True,
                                       name="ftpd-upload-hash")
        self.thread.start()

    def _run(self, fd: int, start: int, size: int) -> None:
        # Signals must reach the main thread, or Ctrl-C waits for a blocked send.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        offset = 0
        while offset < size and not self.stopping.is_set():
            chunk = os.pread(fd, min(CHUNK, size - offset), start + offset)
            self.digest.update(chunk)
            offset += len(chunk)
            self.ready.put(len(chunk))
            if not chunk:
                return

    def next_chunk(self) -> int:
        return self.ready.get()

    def hexdigest(self) -> str:
        """The digest once every chunk was handed out."""
        self.thread.join()
        return self.digest.hexdigest()

    def stop(self) -> None:
        """End the thread early (the upload failed); safe to call when done."""
        self.stopping.set()
        while self.thread.is_alive():
            try:
                self.ready.get(timeout=0.05)
            except queue.Empty:
                pass
