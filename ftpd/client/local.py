"""The local side of ftpd.client's transfers: destinations opened before a
request is sent, digests of partial files, upload sources measured.

Every OSError here becomes a LocalError, so a caller sees one documented
exception type for anything that went wrong on this machine.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Any, BinaryIO, Callable, Optional, Sequence, Set, Tuple, cast

from ftpd.client.errors import LocalError
from ftpd.fileutil import ShortRead, sha256_run

class Hashing:
    """A write() target that also feeds a digest."""

    def __init__(self, handle: BinaryIO, digest: Any):
        self.handle, self.digest = handle, digest

    def write(self, chunk: Any) -> None:
        self.handle.write(chunk)
        self.digest.update(chunk)


class Discard:
    def write(self, chunk: Any) -> None:
        pass


def open_destination(path: str, offset: int) -> Tuple[BinaryIO, Optional[str]]:
    """(open handle at `offset`, temporary path to rename, or None when continued in place)."""
    try:
        if offset:
            handle = open(path, "r+b")
            if os.fstat(handle.fileno()).st_size < offset:
                handle.close()
                raise LocalError(f"cannot continue {path}: it is shorter than offset {offset}")
            handle.seek(offset)
            return handle, None
        head, tail = os.path.split(path)
        temp = os.path.join(head, f".{tail}.{secrets.token_hex(4)}.part")
        # O_EXCL: a fresh file of our own, never a planted link
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        return os.fdopen(fd, "wb"), temp
    except OSError as exc:
        raise LocalError(f"cannot write {path}: {exc.strerror or exc}") from exc


def prefix_digest(handle: BinaryIO, offset: int) -> Any:
    """SHA-256 state over the first `offset` bytes of `handle`, left at `offset`."""
    if not offset:
        return hashlib.sha256()
    try:
        handle.seek(0)
        digest = sha256_run(handle, offset)
        handle.seek(offset)
    except ShortRead:
        raise LocalError(f"the partial file is shorter than offset {offset}") from None
    except (OSError, ValueError) as exc:      # io.UnsupportedOperation is both
        raise LocalError("verifying a resumed download needs the partial file readable "
                         f"and seekable (open it 'r+b', or pass verify=False): {exc}") from exc
    return digest


def measure(handle: BinaryIO, with_digest: bool) -> Tuple[int, int, Optional[str]]:
    """(start position, bytes from there to the end, their SHA-256 or None)."""
    try:
        start = handle.tell()
        size = handle.seek(0, os.SEEK_END) - start
        handle.seek(start)
        digest = sha256_run(handle).hexdigest() if with_digest else None
        handle.seek(start)      # TLS sendfile reads from the file position
    except (OSError, ValueError) as exc:
        raise LocalError(f"cannot read the upload source: {exc}; it must be a seekable "
                         "binary file") from exc
    return start, size, digest



def make_durable(paths: Sequence[str]) -> None:
    """Put the data of every file in `paths` on stable storage: one
    syncfs(2) per file system where the C library has it (Linux), which
    costs one journal commit for the lot instead of one fsync per file;
    else an fsync of each. LocalError if any of it fails."""
    syncfs = _syncfs()
    try:
        if syncfs is None:
            for path in paths:
                _fsync_path(path)
            return
        done: Set[int] = set()
        for path in paths:
            device = os.lstat(path).st_dev
            if device in done:
                continue
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                if syncfs(fd) != 0:
                    raise OSError(_errno(), os.strerror(_errno()))
            finally:
                os.close(fd)
            done.add(device)
    except OSError as exc:
        raise LocalError(f"cannot make the received files durable: "
                         f"{exc.strerror or exc}") from exc


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs() -> Optional[Callable[[int], int]]:
    import ctypes       # here: only a tree download needs it, not every ftpc start
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError, TypeError):
        return None
    function.argtypes = [ctypes.c_int]
    return cast(Callable[[int], int], function)


def _errno() -> int:
    import ctypes
    return ctypes.get_errno()
