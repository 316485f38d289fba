"""One upload in progress: a hidden temp file in the target's own directory,
hashed while written, made durable, then moved into place in one step.

The upload keeps its directory's fd from start to end, so the temp is always
removed from where it was made. At commit the path is walked again and the
temp renamed from the kept fd to the freshly found directory: the file lands
at the path the client named as it is now, or, if that directory has been
removed or moved away meanwhile, nowhere (404, nothing stored).
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from typing import TYPE_CHECKING, Optional, Tuple

from ftpd.protocol import CONFLICT, DIGEST_MISMATCH, FORBIDDEN, NOT_FOUND
from ftpd.server import digests, partials
from ftpd.server.errors import LibraryError, os_error
from ftpd.server.hashing import OverlappedSha256
from ftpd.server.temps import temp_name

if TYPE_CHECKING:
    from ftpd.server.library import Library, Place

TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
PARTIAL_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
READ_CHUNK = 1 << 20


class Upload:
    def __init__(self, library: "Library", parts: Tuple[str, ...], session_pid: int,
                 mtime: Optional[int] = None, partial: Optional[str] = None):
        self.library = library
        self.parts = parts
        self.mtime = mtime
        self.temp = partial or temp_name(library.node_pid, session_pid)
        self.resumable = partial is not None
        self.owned = not self.resumable     # a partial is ours once locked
        self.size = 0
        self.fd = -1
        with library.locate(parts) as place:
            self.dir_fd = os.dup(place.parent)
        self.digest = OverlappedSha256()   # hashes chunk k while k+1 arrives
        try:
            if self.resumable:
                self._open_partial()
            else:
                self.fd = os.open(self.temp, TEMP_FLAGS, 0o644, dir_fd=self.dir_fd)
        except OSError as exc:
            self.abort()
            raise os_error(exc, "cannot store") from exc
        except LibraryError:
            self.abort()
            raise

    def _open_partial(self) -> None:
        """Open (or start) the kept partial, take it, and hash what it holds:
        a hash state cannot be saved, so the kept prefix is read again."""
        partials.drop_expired_in(self.dir_fd, self.library.partial_ttl)
        self.fd = os.open(self.temp, PARTIAL_FLAGS, 0o644, dir_fd=self.dir_fd)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LibraryError(CONFLICT, "this upload is in progress in another "
                               "session") from exc
        self.owned = True
        info = os.fstat(self.fd)
        if not stat.S_ISREG(info.st_mode):
            raise LibraryError(CONFLICT, "the kept partial upload is not a file")
        while self.size < info.st_size:
            chunk = os.pread(self.fd, min(READ_CHUNK, info.st_size - self.size), self.size)
            if not chunk:
                break          # shrank meanwhile: keep what was read
            self.digest.update(memoryview(chunk))
            self.size += len(chunk)
        os.ftruncate(self.fd, self.size)
        os.lseek(self.fd, self.size, os.SEEK_SET)

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
            self.owned = False           # the name may be a new partial's from now on
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

    def abort(self, keep: bool = False) -> None:
        """Drop the temp, or with `keep` leave a resumable one for a later C;
        safe to call more than once and after commit."""
        self.digest.close()
        if self.fd >= 0:
            os.close(self.fd)            # also releases a partial's lock
            self.fd = -1
        if self.dir_fd >= 0:
            if self.owned and not (keep and self.resumable):
                self._unlink_temp()
            os.close(self.dir_fd)
            self.dir_fd = -1

    def _unlink_temp(self) -> None:
        self.owned = False
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
