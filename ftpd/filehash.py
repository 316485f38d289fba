"""SHA-256 of local files on their way up: the whole file before an upload
that announces its digest, or chunk by chunk just ahead of the sender for
one that streams it (`P name size -`), so the file is read once."""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import threading
from typing import BinaryIO

CHUNK = 1 << 20


def file_digest(handle: BinaryIO) -> str:
    """SHA-256 of the rest of an open file (lower-case hex)."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


class ReadAheadHasher:
    """Reads and hashes a file's first `size` bytes in a thread, at most two
    chunks ahead of the sender (pread and hashlib release the GIL), so
    hashing chunk k+1 overlaps sending chunk k. next_chunk() hands out each
    chunk's length in order; 0 means the file ended early."""

    def __init__(self, fd: int, size: int):
        self.digest = hashlib.sha256()
        self.ready: "queue.Queue[int]" = queue.Queue(maxsize=1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(fd, size), daemon=True,
                                       name="ftpd-upload-hash")
        self.thread.start()

    def _run(self, fd: int, size: int) -> None:
        # Signals must reach the main thread, or Ctrl-C waits for a blocked send.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        offset = 0
        while offset < size and not self.stopping.is_set():
            chunk = os.pread(fd, min(CHUNK, size - offset), offset)
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
