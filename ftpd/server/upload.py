"""One upload in progress: a hidden temp file in the target's own directory,
hashed while written, made durable, then moved into place in one step.

The upload keeps its directory's fd from start to end, so the temp is always
removed from where it was made. At commit the path is walked again and the
temp renamed from the kept fd to the freshly found directory: the file lands
at the path the client named as it is now, or, if that directory has been
removed or moved away meanwhile, nowhere (404, nothing stored).
"""

from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING, Optional, Tuple

from ftpd.protocol import CONFLICT, DIGEST_MISMATCH, FORBIDDEN, NOT_FOUND
from ftpd.server import digests
from ftpd.server.errors import LibraryError, os_error
from ftpd.server.hashing import OverlappedSha256
from ftpd.server.temps import temp_name

if TYPE_CHECKING:
    from ftpd.server.library import Library, Place

TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Upload:
    def __init__(self, library: "Library", parts: Tuple[str, ...], session_pid: int,
                 mtime: Optional[int] = None):
        self.library = library
        self.parts = parts
        self.mtime = mtime
        self.temp = temp_name(library.node_pid, session_pid)
        self.size = 0
        self.fd = -1
        with library.locate(parts) as place:
            self.dir_fd = os.dup(place.parent)
        self.digest = OverlappedSha256()   # hashes chunk k while k+1 arrives
        try:
            self.fd = os.open(self.temp, TEMP_FLAGS, 0o644, dir_fd=self.dir_fd)
        except OSError as exc:
            self.abort()
            raise os_error(exc, "cannot store") from exc

    def write(self, chunk: memoryview) -> None:
        self.digest.update(chunk)
        try:
            while chunk:
                written = os.write(self.fd, chunk)
                chunk = chunk[written:]
                self.size += written
        except OSError as exc:
            raise os_error(exc, "cannot store") from exc

    def commit(self, expected_digest: Optional[str]) -> str:
        """Verify, make durable, move into place. Returns the hex digest."""
        actual = self.digest.hexdigest()
        self.digest.close()
        if expected_digest is not None and expected_digest != actual:
            raise LibraryError(DIGEST_MISMATCH, "sha256 mismatch, nothing stored")
        lib = self.library
        try:
            self._stamp(actual)
            if lib.fsync:
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            with lib.locate(self.parts) as place:
                self._move_into(place)
                lib.sync(place.parent)
        except LibraryError as exc:
            if exc.code == NOT_FOUND:
                raise LibraryError(NOT_FOUND, "the directory went away during the upload, "
                                   "nothing stored") from exc
            raise
        except OSError as exc:
            raise os_error(exc, "cannot store") from exc
        return actual

    def _stamp(self, digest: str) -> None:
        """Set the final mtime, then record the digest against it: the
        record must name the mtime the file keeps. Without a client's mtime
        the file gets a fine-grained one of its own (see digests: a later
        write, stamped by the coarse clock, cannot land on the same value)."""
        now = time.time_ns()
        mtime_ns = now if self.mtime is None else self.mtime * 1_000_000_000
        os.utime(self.fd, ns=(now, mtime_ns))
        if self.library.digest_cache:
            digests.record(self.fd, digest)

    def _move_into(self, place: "Place") -> None:
        if self.library.overwrite:
            os.rename(self.temp, place.name, src_dir_fd=self.dir_fd, dst_dir_fd=place.parent)
            return
        # link() fails with EEXIST atomically, so two uploads cannot both create.
        try:
            os.link(self.temp, place.name, src_dir_fd=self.dir_fd, dst_dir_fd=place.parent,
                    follow_symlinks=False)
        except FileExistsError as exc:
            if _is_dir(place):
                raise LibraryError(CONFLICT, "a directory of that name exists") from exc
            raise LibraryError(FORBIDDEN, "file exists and overwrite is disabled") from exc
        self._unlink_temp()

    def abort(self) -> None:
        """Drop the temp; safe to call more than once and after commit."""
        self.digest.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.dir_fd >= 0:
            self._unlink_temp()
            os.close(self.dir_fd)
            self.dir_fd = -1

    def _unlink_temp(self) -> None:
        try:
            os.unlink(self.temp, dir_fd=self.dir_fd)
        except OSError:
            pass     # gone already; else the next start-up sweep removes it


def _is_dir(place: "Place") -> bool:
    try:
        info = os.stat(place.name, dir_fd=place.parent, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode)
