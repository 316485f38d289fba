"""The file library: a tree reached only through directory fds.

Every path a client names passes through `Library.locate`, the one place a
path becomes something to act on. It walks from the session root's
directory fd one component at a time, each opened relative to the previous
one with O_NOFOLLOW | O_DIRECTORY, and hands back the last directory's fd
and the last name; the caller then opens, creates, removes or renames that
name relative to that fd (dir_fd=, src_dir_fd=/dst_dir_fd=). No string is
ever prefixed, joined into an absolute path or realpath()ed, so neither a
planted symlink nor a directory renamed mid-walk can lead outside the root:
a symlink anywhere on the way is simply "no such file or directory".

A session whose account has a home gets a `view` of the library: the same
settings over that home's directory fd, so nothing outside it can be named.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

from ftpd import fileutil, protocol
from ftpd.protocol import (BAD_REQUEST, CONFLICT, FORBIDDEN, INTERNAL, NOT_FOUND, NO_SPACE,
                           TOO_LARGE)
from ftpd.server import digests, partials, temps
from ftpd.server.errors import MISSING, LibraryError, os_error
from ftpd.server.upload import Upload
from ftpd.server.temps import (DIR_FLAGS, TEMP_PREFIX, node_host,  # noqa: F401 (re-exported)
                               pid_alive, temp_name)

READ_CHUNK = 1 << 20
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_MODE = 0o755
RENAME_NOREPLACE = 1
_LIBC = ctypes.CDLL(None, use_errno=True)    # loaded now: after chroot nothing can be
_RENAMEAT2 = getattr(_LIBC, "renameat2", None)

PathArg = Union[str, Sequence[str]]
Row = Tuple[str, Optional[int], int]         # name, size (None: a directory), mtime


@dataclass(frozen=True)
class Place:
    """Where a path leads: its last name, to be acted on relative to `parent`."""
    parent: int
    name: str


class Library:
    def __init__(self, root: str, *, fsync: bool = True, overwrite: bool = True,
                 max_file_size: int = 0, min_free_space: int = 0, max_depth: int = 32,
                 max_entries: int = 100000, node_pid: Optional[int] = None,
                 partial_ttl: float = 3600.0):
        self.root = root
        self.fsync = fsync
        self.overwrite = overwrite
        self.max_file_size = max_file_size
        self.min_free_space = min_free_space
        self.max_depth = max_depth
        self.max_entries = max_entries
        self.partial_ttl = partial_ttl
        self.node_pid = node_pid if node_pid is not None else os.getpid()
        self.home: Tuple[str, ...] = ()
        self.dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        # Probed once: where the file system has no user xattrs, H always hashes.
        self.digest_cache = digests.supported(self.dir_fd)

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def view(self, home: PathArg, create: bool = False) -> "Library":
        """The library as seen from `home` (relative to this view's root),
        with its own directory fd: close() it when done. `create` makes the
        home and any missing parent, each step without following a symlink."""
        parts = self.parts(home) if home else ()
        if parts:
            with self.locate(parts, create=create) as place:
                if create:
                    _mkdir_quietly(place)
                fd = _open_dir(place)
        else:
            fd = os.dup(self.dir_fd)
        seen = copy.copy(self)
        seen.dir_fd, seen.home = fd, self.home + parts
        return seen

    def shown(self, path: PathArg = ()) -> str:
        """A path as the admin sees it (from the library root), for logs and titles."""
        parts = self.home + ((path,) if isinstance(path, str) else tuple(path))
        return "/".join(parts) or "/"

    # -- the one place a path becomes something to act on ------------------------

    def parts(self, path: PathArg) -> Tuple[str, ...]:
        """A path (string or components) -> its validated components; 400 otherwise."""
        try:
            parts = protocol.parse_path(path if isinstance(path, str) else "/".join(path))
        except (protocol.ProtocolError, TypeError) as exc:
            raise LibraryError(BAD_REQUEST, "invalid name") from exc
        if not isinstance(path, str) and parts != tuple(path):
            raise LibraryError(BAD_REQUEST, "invalid name")    # a component held a '/'
        if len(parts) > self.max_depth:
            raise LibraryError(BAD_REQUEST, f"path deeper than {self.max_depth} levels")
        return parts

    @contextlib.contextmanager
    def locate(self, path: PathArg, create: bool = False) -> Iterator[Place]:
        """Walk to the directory holding the path's last name; the fd lives
        as long as the `with` block. 404 when a directory on the way is
        missing, is a file or is a symlink; `create` makes missing ones."""
        parts = self.parts(path)
        fd = os.dup(self.dir_fd)
        try:
            for name in parts[:-1]:
                parent, fd = fd, -1
                fd = _step(parent, name, create)
            yield Place(fd, parts[-1])
        finally:
            if fd >= 0:
                os.close(fd)

    # -- reading ---------------------------------------------------------------------

    def list(self, path: Optional[PathArg] = None) -> Tuple[int, List[Row]]:
        """(row count, rows): a directory's entries sorted by name, or one
        file's row. Rows are plain tuples (name, size or None for a
        directory, mtime): a listing holds names and numbers, never Entry
        objects or formatted lines for every row at once."""
        if not path:
            fd = os.dup(self.dir_fd)
        else:
            with self.locate(path) as place:
                info = _lstat(place)
                if stat.S_ISREG(info.st_mode):
                    return 1, [(place.name, info.st_size, int(info.st_mtime))]
                if not stat.S_ISDIR(info.st_mode):
                    raise LibraryError(NOT_FOUND, "no such file or directory")
                fd = _open_dir(place)
        try:
            rows = self._rows(fd)
        finally:
            os.close(fd)
        return len(rows), rows

    def _rows(self, fd: int) -> List[Row]:
        """Names and stat numbers only, sorted by code point; 413 past the limit."""
        rows: List[Row] = []
        with os.scandir(fd) as scan:
            for item in scan:
                if not protocol.is_valid_name(item.name):
                    continue           # hidden names and upload temps
                is_dir = item.is_dir(follow_symlinks=False)
                if not (is_dir or item.is_file(follow_symlinks=False)):
                    continue           # symlinks, devices, sockets, FIFOs
                if len(rows) >= self.max_entries:
                    raise LibraryError(TOO_LARGE, f"more than {self.max_entries} entries "
                                       "to list")
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue           # vanished between readdir and stat
                rows.append((item.name, None if is_dir else info.st_size, int(info.st_mtime)))
        rows.sort()
        return rows

    def open_read(self, path: PathArg) -> Tuple[int, int]:
        """Open a regular file: (fd, size). The fd is a snapshot of that inode."""
        with self.locate(path) as place:
            try:
                fd = os.open(place.name, READ_FLAGS, dir_fd=place.parent)
            except OSError as exc:
                if exc.errno in MISSING:
                    raise LibraryError(NOT_FOUND, "no such file") from exc
                raise os_error(exc, "cannot open") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise LibraryError(NOT_FOUND, "no such file")
        os.set_blocking(fd, True)
        return fd, info.st_size

    def hash(self, path: PathArg) -> Tuple[int, str]:
        """(size, sha256) of a file as it is now: the digest recorded with it
        while its size and mtime still match, else read and hashed (and
        recorded for next time)."""
        fd, size = self.open_read(path)
        with os.fdopen(fd, "rb", buffering=0) as handle:
            info = os.fstat(fd)
            if self.digest_cache:
                known = digests.recall(fd, info)
                if known is not None:
                    return size, known
            try:   # the snapshot size, even if the file grows meanwhile
                digest = fileutil.sha256_run(handle, size).hexdigest()
            except fileutil.ShortRead:
                raise LibraryError(INTERNAL, "file shrank while hashing") from None
            after = os.fstat(fd)
            unchanged = (after.st_size, after.st_mtime_ns) == (info.st_size, info.st_mtime_ns)
            if self.digest_cache and unchanged and digests.settled(after):
                digests.record(fd, digest, after)
        return size, digest

    # -- writing -----------------------------------------------------------------------

    def check_upload(self, path: PathArg, size: int) -> None:
        """Refuse before any byte is sent: 404 no parent, 409 a directory,
        403 exists (overwrite off), 413 too big, 507 no room."""
        with self.locate(path) as place:
            info = _lstat_or_none(place)
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise LibraryError(CONFLICT, "a directory of that name exists")
        if info is not None and not self.overwrite:
            raise LibraryError(FORBIDDEN, "file exists and overwrite is disabled")
        if self.max_file_size and size > self.max_file_size:
            raise LibraryError(TOO_LARGE, f"file larger than {self.max_file_size} bytes")
        if size > self.free_space():
            raise LibraryError(NO_SPACE, "not enough free space")

    def free_space(self) -> int:
        info = os.statvfs(self.dir_fd)
        return info.f_bavail * info.f_frsize - self.min_free_space

    def begin_upload(self, path: PathArg, session_pid: Optional[int] = None,
                     mtime: Optional[int] = None, partial: Optional[str] = None) -> Upload:
        """An upload into a fresh temp, or with `partial` (see partials) into
        the kept, resumable one of that name, continuing after what it holds."""
        return Upload(self, self.parts(path), session_pid or os.getpid(), mtime, partial)

    def mkdir(self, path: PathArg) -> None:
        """One directory; its parent must exist (404), the path must not (409)."""
        with self.locate(path) as place:
            try:
                os.mkdir(place.name, DIR_MODE, dir_fd=place.parent)
            except FileExistsError as exc:
                raise LibraryError(CONFLICT, "exists already") from exc
            except OSError as exc:
                raise os_error(exc, "cannot make directory") from exc
            self.sync(place.parent)

    def delete(self, path: PathArg) -> None:
        """A file, or an empty directory (409 otherwise)."""
        self.refuse_changes("deleted")
        with self.locate(path) as place:
            info = _lstat(place)
            try:
                if stat.S_ISDIR(info.st_mode):
                    os.rmdir(place.name, dir_fd=place.parent)
                elif stat.S_ISREG(info.st_mode):
                    os.unlink(place.name, dir_fd=place.parent)
                else:
                    raise LibraryError(NOT_FOUND, "no such file or directory")
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise LibraryError(CONFLICT, "directory not empty") from exc
                raise os_error(exc, "cannot delete") from exc
            self.sync(place.parent)

    def rename(self, source: PathArg, target: PathArg) -> None:
        """Move a file or directory in one rename(2). A file may replace a
        file; nothing replaces a directory, and a directory replaces nothing."""
        self.refuse_changes("renamed")
        with self.locate(source) as origin, self.locate(target) as place:
            info = _lstat(origin)
            try:
                if stat.S_ISDIR(info.st_mode):
                    _rename_noreplace(origin, place)
                elif stat.S_ISREG(info.st_mode):
                    os.rename(origin.name, place.name, src_dir_fd=origin.parent,
                              dst_dir_fd=place.parent)
                else:
                    raise LibraryError(NOT_FOUND, "no such file or directory")
            except OSError as exc:
                raise _rename_error(exc) from exc
            self.sync(place.parent)
            self.sync(origin.parent)

    def refuse_changes(self, what: str) -> None:
        if not self.overwrite:
            raise LibraryError(FORBIDDEN, f"overwrite is disabled: nothing stored may be {what}")

    def sync(self, dir_fd: int) -> None:
        if self.fsync:
            os.fsync(dir_fd)

    # -- housekeeping ------------------------------------------------------------------

    def cleanup_temps(self, alive: Callable[[int], bool] = pid_alive) -> List[str]:
        """Remove temps that a dead node of this host left, and expired
        resumable partials, anywhere in the tree."""
        return (temps.sweep(self.dir_fd, temps.stale_for_node(self.node_pid, alive))
                + partials.sweep_expired(self.dir_fd, self.partial_ttl))

    def remove_session_temps(self, session_pid: int) -> List[str]:
        """After a session died without cleaning up, drop its temps."""
        return temps.sweep(self.dir_fd, temps.of_session(self.node_pid, session_pid))


# -- steps relative to a directory fd ------------------------------------------------

def _step(parent: int, name: str, create: bool) -> int:
    """Open the directory `name` below `parent` (closing `parent`), never through a symlink."""
    try:
        if create:
            _mkdir_quietly(Place(parent, name))
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except LibraryError:
        raise
    except OSError as exc:
        raise os_error(exc, "cannot open directory") from exc
    finally:
        os.close(parent)


def _mkdir_quietly(place: Place) -> None:
    try:
        os.mkdir(place.name, DIR_MODE, dir_fd=place.parent)
    except FileExistsError:
        pass                    # a directory (fine) or something else (open says 404)
    except OSError as exc:
        raise os_error(exc, "cannot make directory") from exc


def _open_dir(place: Place) -> int:
    try:
        return os.open(place.name, DIR_FLAGS, dir_fd=place.parent)
    except OSError as exc:
        raise os_error(exc, "cannot open directory") from exc


def _lstat_or_none(place: Place) -> Optional[os.stat_result]:
    try:
        return os.stat(place.name, dir_fd=place.parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, "cannot look up") from exc


def _lstat(place: Place) -> os.stat_result:
    info = _lstat_or_none(place)
    if info is None:
        raise LibraryError(NOT_FOUND, "no such file or directory")
    return info


def _rename_noreplace(origin: Place, target: Place) -> None:
    """rename(2) that fails with EEXIST rather than replace an empty directory."""
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(origin.parent, os.fsencode(origin.name), target.parent,
                      os.fsencode(target.name), RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code))
    # No RENAME_NOREPLACE here (or it was a move into itself, which the plain
    # rename below reports again): check, then rename.
    if _lstat_or_none(target) is not None:
        raise FileExistsError(errno.EEXIST, "exists")
    os.rename(origin.name, target.name, src_dir_fd=origin.parent, dst_dir_fd=target.parent)


def _rename_error(exc: OSError) -> LibraryError:
    # The parents are already resolved, so ENOTDIR here means a directory
    # would land on a file, not that a path is missing.
    if exc.errno == errno.EINVAL:
        return LibraryError(CONFLICT, "cannot move a directory into itself")
    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
        return LibraryError(CONFLICT, "the target exists and cannot be replaced")
    return os_error(exc, "cannot rename")
