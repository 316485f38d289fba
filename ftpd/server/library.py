"""The file library: one flat directory, reached only through a directory fd.

Every name passes through `Library.path_for`; files are opened with
O_NOFOLLOW and judged by fstat on the open fd, so there is no window
between a check and its use. Uploads go to a hidden temp file of our own
pattern, are hashed while written, made durable, then renamed (or linked,
when overwriting is off) into place in one atomic step.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import stat
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from ftpd import protocol
from ftpd.server.hashing import OverlappedSha256
from ftpd.protocol import (BAD_REQUEST, FORBIDDEN, INTERNAL, NOT_FOUND, NO_SPACE,
                           TOO_LARGE, DIGEST_MISMATCH)

TEMP_PREFIX = ".ftpd~"
# .ftpd~<host>~<node pid>~<session pid>~<random>.part: the host and node pid
# let a restarting node recognise its own leftovers on a shared library.
TEMP_PATTERN = re.compile(
    r"\A\.ftpd~(?P<host>[^~/]+)~(?P<node>\d+)~(?P<pid>\d+)~[0-9a-f]{16}\.part\Z")
READ_CHUNK = 1 << 20


class LibraryError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    mtime: int


def node_host() -> str:
    return socket.gethostname().replace("~", "-").replace("/", "-") or "localhost"


def temp_name(node_pid: int, session_pid: int) -> str:
    return f"{TEMP_PREFIX}{node_host()}~{node_pid}~{session_pid}~{secrets.token_hex(8)}.part"


def pid_alive(pid: int) -> bool:
    """Whether a process exists (a permission error means it does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Library:
    def __init__(self, root: str, *, fsync: bool = True, overwrite: bool = True,
                 max_file_size: int = 0, min_free_space: int = 0,
                 node_pid: Optional[int] = None):
        self.root = root
        self.fsync = fsync
        self.overwrite = overwrite
        self.max_file_size = max_file_size
        self.min_free_space = min_free_space
        self.node_pid = node_pid if node_pid is not None else os.getpid()
        self.dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    # -- the one place a name becomes a path ---------------------------------

    @staticmethod
    def path_for(name: str) -> str:
        """A name relative to dir_fd; only valid library names get through."""
        if not protocol.is_valid_name(name):
            raise LibraryError(BAD_REQUEST, "invalid name")
        return name

    # -- reading -------------------------------------------------------------

    def list(self) -> List[Entry]:
        entries = []
        with os.scandir(self.dir_fd) as scan:
            for item in scan:
                if not protocol.is_valid_name(item.name):
                    continue
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue   # vanished between readdir and stat
                if stat.S_ISREG(info.st_mode):
                    entries.append(Entry(item.name, info.st_size, int(info.st_mtime)))
        entries.sort(key=lambda entry: entry.name)
        return entries

    def open_read(self, name: str) -> Tuple[int, int]:
        """Open a regular file: (fd, size). The fd is a snapshot of that inode."""
        path = self.path_for(name)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, dir_fd=self.dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EISDIR,
                             errno.ENXIO):
                raise LibraryError(NOT_FOUND, "no such file") from exc
            if exc.errno == errno.EACCES:
                raise LibraryError(FORBIDDEN, "permission denied") from exc
            raise LibraryError(INTERNAL, f"cannot open: {exc.strerror}") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise LibraryError(NOT_FOUND, "no such file")
        os.set_blocking(fd, True)
        return fd, info.st_size

    def hash(self, name: str) -> Tuple[int, str]:
        fd, size = self.open_read(name)
        with os.fdopen(fd, "rb", buffering=0) as handle:
            digest = hashlib.sha256()
            remaining = size   # hash the snapshot size, even if the file grows
            while remaining:
                chunk = handle.read(min(READ_CHUNK, remaining))
                if not chunk:
                    raise LibraryError(INTERNAL, "file shrank while hashing")
                digest.update(chunk)
                remaining -= len(chunk)
        return size, digest.hexdigest()

    def exists(self, name: str) -> bool:
        try:
            os.stat(self.path_for(name), dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    # -- writing -------------------------------------------------------------

    def check_upload(self, name: str, size: int) -> None:
        """Refuse before any byte is sent: 403 exists, 413 too big, 507 no room."""
        self.path_for(name)
        if not self.overwrite and self.exists(name):
            raise LibraryError(FORBIDDEN, "file exists and overwrite is disabled")
        if self.max_file_size and size > self.max_file_size:
            raise LibraryError(TOO_LARGE, f"file larger than {self.max_file_size} bytes")
        if size > self.free_space():
            raise LibraryError(NO_SPACE, "not enough free space")

    def free_space(self) -> int:
        info = os.statvfs(self.dir_fd)
        return info.f_bavail * info.f_frsize - self.min_free_space

    def begin_upload(self, name: str, session_pid: Optional[int] = None) -> "Upload":
        return Upload(self, self.path_for(name), session_pid or os.getpid())

    # -- housekeeping ----------------------------------------------------------

    def is_own_stale_temp(self, filename: str, alive: Callable[[int], bool]) -> bool:
        match = TEMP_PATTERN.match(filename)
        if not match or match.group("host") != node_host():
            return False
        node = int(match.group("node"))
        return node == self.node_pid or not alive(node)

    def cleanup_temps(self, alive: Callable[[int], bool] = pid_alive) -> List[str]:
        """Remove temps that a dead node of this host left; nothing else."""
        removed = []
        for filename in os.listdir(self.dir_fd):
            if self.is_own_stale_temp(filename, alive):
                self._unlink_quietly(filename)
                removed.append(filename)
        return removed

    def remove_session_temps(self, session_pid: int) -> List[str]:
        """After a session died without cleaning up, drop its temps."""
        marker = f"~{self.node_pid}~{session_pid}~"
        removed = []
        for filename in os.listdir(self.dir_fd):
            if TEMP_PATTERN.match(filename) and marker in filename:
                self._unlink_quietly(filename)
                removed.append(filename)
        return removed

    def _unlink_quietly(self, filename: str) -> None:
        try:
            os.unlink(filename, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass


class Upload:
    """One upload in progress: hidden temp file + running SHA-256."""

    def __init__(self, library: Library, target: str, session_pid: int):
        self.library = library
        self.target = target
        self.temp = temp_name(library.node_pid, session_pid)
        self.digest = OverlappedSha256()   # hashes chunk k while k+1 arrives
        self.size = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.fd = os.open(self.temp, flags, 0o644, dir_fd=library.dir_fd)
        except OSError as exc:
            raise _write_error(exc) from exc

    def write(self, chunk: memoryview) -> None:
        self.digest.update(chunk)
        try:
            while chunk:
                written = os.write(self.fd, chunk)
                chunk = chunk[written:]
                self.size += written
        except OSError as exc:
            raise _write_error(exc) from exc

    def commit(self, expected_digest: Optional[str]) -> str:
        """Verify, make durable, move into place. Returns the hex digest."""
        actual = self.digest.hexdigest()
        self.digest.close()
        if expected_digest is not None and expected_digest != actual:
            raise LibraryError(DIGEST_MISMATCH, "sha256 mismatch, nothing stored")
        lib = self.library
        try:
            if lib.fsync:
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            if lib.overwrite:
                os.rename(self.temp, self.target, src_dir_fd=lib.dir_fd, dst_dir_fd=lib.dir_fd)
            else:
                self._link_exclusive()
            if lib.fsync:
                os.fsync(lib.dir_fd)
        except OSError as exc:
            raise _write_error(exc) from exc
        return actual

    def _link_exclusive(self) -> None:
        # link() fails with EEXIST atomically, so two uploads cannot both create.
        lib = self.library
        try:
            os.link(self.temp, self.target, src_dir_fd=lib.dir_fd, dst_dir_fd=lib.dir_fd,
                    follow_symlinks=False)
        except FileExistsError as exc:
            raise LibraryError(FORBIDDEN, "file exists and overwrite is disabled") from exc
        lib._unlink_quietly(self.temp)

    def abort(self) -> None:
        """Drop the temp; safe to call more than once and after commit."""
        self.digest.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.library._unlink_quietly(self.temp)


def _write_error(exc: OSError) -> LibraryError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LibraryError(NO_SPACE, "not enough free space, nothing stored")
    if exc.errno == errno.EFBIG:
        return LibraryError(TOO_LARGE, "file too large")
    if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
        return LibraryError(FORBIDDEN, "a non-file of that name is in the way")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return LibraryError(FORBIDDEN, f"cannot write: {exc.strerror}")
    return LibraryError(INTERNAL, f"cannot store: {exc.strerror}")
