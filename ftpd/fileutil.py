"""Small file routines both sides share: hashing a run of a file, removing a
file that may already be gone, writing a small file atomically. One of each,
so a fix (a short read, an fsync forgotten) lands everywhere at once."""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Any, BinaryIO, Callable, Optional

HASH_CHUNK = 1 << 20


class ShortRead(OSError):
    """The file ended before the bytes that were to be hashed."""


def sha256_run(handle: BinaryIO, count: Optional[int] = None,
               digest: Optional[Any] = None) -> Any:
    """Feed `count` bytes (all that is left without it) from the handle's
    position into `digest` (a new SHA-256 without it) and return the digest
    object. A file that ends first raises ShortRead: a size taken from fstat
    is a snapshot, and a shrinking file must not pass for a whole one."""
    digest = digest if digest is not None else hashlib.sha256()
    if count is None:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(chunk)
        return digest
    remaining = count
    while remaining:
        chunk = handle.read(min(remaining, HASH_CHUNK))
        if not chunk:
            raise ShortRead(f"file ended {remaining} bytes early")
        digest.update(chunk)
        remaining -= len(chunk)
    return digest


def unlink_quietly(path: str, dir_fd: Optional[int] = None) -> None:
    """Remove a file that may already be gone (unlink never follows a link)."""
    try:
        os.unlink(path, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def write_atomically(path: str, data: bytes, mode: int,
                     commit: Optional[Callable[[str, str], None]] = None) -> None:
    """A reader sees no file, the old one or the whole new one: a temp file
    of `mode` (whatever the umask) beside `path`, fsync, then `commit(temp,
    path)` (rename by default; a caller that must not replace passes its
    own, e.g. link), then fsync of the directory. The temp never outlives us."""
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, mode)
            handle.write(data)
            handle.flush()
            os.fsync(fd)
        (commit or os.rename)(temp, path)
    finally:
        unlink_quietly(temp)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
