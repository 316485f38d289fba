"""Per-account quotas: bytes and files counted over the account's home.

The count lives in a hidden file at the home's root, `.ftpd-usage` (JSON:
bytes, files, open reservations, and which session is mid-change). Every
reader and writer holds flock(2) on it, so sessions of one account in
separate processes (or threads: each opens its own description) never
double-spend:

- `P` reserves the bytes and file it may add before `OK ready`; ERR 507
  when the count plus every open reservation would pass the quota. The
  reservation is dropped when the upload ends either way.
- A change (upload commit, D, R) runs under the lock: the sizes of the
  paths it touches are taken before and after, and the difference is
  added, so deleting and overwriting give space back exactly.

Crash safety: a change first records its session as the writer; a file
whose writer (or reservation holder) is a dead process is repaired on the
next use, by dropping the reservation or, for a writer, recounting the
home by a walk. A missing or unreadable file is recounted the same way, so
deleting it is how an admin forces a recount after editing a home by hand.
Only changes made by the account itself are counted between recounts.
Sizes are apparent sizes (st_size) of regular files; hidden files are not
counted.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, TypeVar

from ftpd.protocol import NO_SPACE
from ftpd.server.errors import LibraryError, os_error
from ftpd.server.temps import DIR_FLAGS, pid_alive

USAGE_FILE = ".ftpd-usage"
USAGE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_WALK_DEPTH = 64
Usage = Dict[str, Any]      # bytes, files, reserved {key: [bytes, files]}, writer
T = TypeVar("T")


def session_key() -> str:
    """Who holds a reservation: process and thread (the thread model shares a pid)."""
    return f"{os.getpid()}:{threading.get_native_id()}"


def _alive(key: object) -> bool:
    return isinstance(key, str) and pid_alive(int(key.split(":", 1)[0]))


class Quota:
    """One session's view of its account's usage; home_fd is not owned."""

    def __init__(self, home_fd: int, quota: int, max_files: int):
        self.home_fd = home_fd
        self.quota = quota
        self.max_files = max_files
        self.key = session_key()

    # -- the usage file, always under its lock -----------------------------------

    def _locked(self, act: Callable[[int, Usage], T]) -> T:
        try:
            fd = os.open(USAGE_FILE, USAGE_FLAGS, 0o600, dir_fd=self.home_fd)
        except OSError as exc:
            raise os_error(exc, "cannot count usage") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            usage = self._read(fd)
            try:
                return act(fd, usage)
            finally:
                _write(fd, usage)
        finally:
            os.close(fd)           # releases the lock

    def _read(self, fd: int) -> Usage:
        usage = parse_usage(os.pread(fd, 1 << 20, 0))
        if usage is None or (usage["writer"] is not None and not _alive(usage["writer"])):
            count, files = count_tree(self.home_fd)
            return {"bytes": count, "files": files, "reserved": {}, "writer": None}
        usage["reserved"] = {key: held for key, held in usage["reserved"].items()
                             if _alive(key)}
        return usage

    # -- what sessions do ------------------------------------------------------------

    def reserve(self, size: int, replaced: Optional[int]) -> None:
        """Hold room for an upload of `size` bytes over a file of `replaced`
        bytes (None: a new file); ERR 507 when the quota has no room."""
        want = (max(0, size - (replaced or 0)), int(replaced is None))

        def act(fd: int, usage: Usage) -> None:
            held = list(usage["reserved"].values())
            used = usage["bytes"] + sum(h[0] for h in held)
            files = usage["files"] + sum(h[1] for h in held)
            if self.quota and used + want[0] > self.quota:
                raise LibraryError(NO_SPACE, f"quota exceeded: {used} of {self.quota} bytes "
                                   f"used, {want[0]} more asked")
            if self.max_files and files + want[1] > self.max_files:
                raise LibraryError(NO_SPACE, f"quota exceeded: {files} of "
                                   f"{self.max_files} files used")
            usage["reserved"][self.key] = list(want)
        self._locked(act)

    def release(self) -> None:
        self._locked(lambda fd, usage: usage["reserved"].pop(self.key, None))

    def change(self, sizes: Callable[[], Sequence[Optional[int]]], act: Callable[[], T]) -> T:
        """Run `act` under the lock; count what it did to the files `sizes`
        measures (size of each, None for no regular file), before and after."""
        def run(fd: int, usage: Usage) -> T:
            before = sizes()
            usage["writer"] = self.key          # on disk before the change: a crash shows
            _write(fd, usage)
            try:
                return act()
            finally:
                after = sizes()
                usage["bytes"] += _total(after) - _total(before)
                usage["files"] += _count(after) - _count(before)
                usage["writer"] = None
                usage["reserved"].pop(self.key, None)
        return self._locked(run)


def parse_usage(data: bytes) -> Optional[Usage]:
    """The usage file's contents, None when missing or unreadable (recount)."""
    try:
        usage = json.loads(data or b"null")
    except ValueError:
        return None
    if not (isinstance(usage, dict) and isinstance(usage.get("bytes"), int)
            and isinstance(usage.get("files"), int)
            and isinstance(usage.get("reserved", {}), dict)):
        return None
    usage.setdefault("reserved", {})
    usage.setdefault("writer", None)
    return usage


def read_usage(home_dir: str) -> Optional[Tuple[int, int]]:
    """(bytes, files) as last recorded, for `ftpd status` and `passwd --list`."""
    try:
        with open(os.path.join(home_dir, USAGE_FILE), "rb") as handle:
            usage = parse_usage(handle.read(1 << 20))
    except OSError:
        return None
    return None if usage is None else (usage["bytes"], usage["files"])


def forget(home_fd: int) -> None:
    """An account without limits keeps no count: a quota set later recounts."""
    try:
        os.unlink(USAGE_FILE, dir_fd=home_fd)
    except OSError:
        pass         # none there, or not ours to remove: the count is simply not used


def count_tree(dir_fd: int, depth: int = 0) -> Tuple[int, int]:
    """(bytes, files) of the regular, non-hidden files below a directory fd;
    symlinks are not followed, upload temps and the usage file are hidden."""
    total = files = 0
    with os.scandir(dir_fd) as scan:
        entries = list(scan)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_file(follow_symlinks=False):
            try:
                total += entry.stat(follow_symlinks=False).st_size
                files += 1
            except OSError:
                pass         # vanished meanwhile
        elif entry.is_dir(follow_symlinks=False) and depth < MAX_WALK_DEPTH:
            total, files = _add(total, files, _count_below(dir_fd, entry.name, depth + 1))
    return total, files


def _count_below(dir_fd: int, name: str, depth: int) -> Tuple[int, int]:
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return 0, 0
    try:
        return count_tree(fd, depth)
    finally:
        os.close(fd)


def _add(total: int, files: int, more: Tuple[int, int]) -> Tuple[int, int]:
    return total + more[0], files + more[1]


def file_size(info: Optional[os.stat_result]) -> Optional[int]:
    return info.st_size if info is not None and stat.S_ISREG(info.st_mode) else None


def _write(fd: int, usage: Usage) -> None:
    data = json.dumps(usage, sort_keys=True).encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


def _total(sizes: Sequence[Optional[int]]) -> int:
    return sum(size for size in sizes if size is not None)


def _count(sizes: Sequence[Optional[int]]) -> int:
    return sum(1 for size in sizes if size is not None)
