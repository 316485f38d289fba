"""Downloads and uploads a person can trust.

A download is written to `.NAME.ftpc-part` beside the target and renamed
over it only when complete and verified (size, and SHA-256 from an `H` sent
together with `G`, so the data is checked as soon as it has arrived, even if
the server stops right after). The partial file has a predictable name, so a
later `get` of the same file finds it and resumes it (the final SHA-256 check
guards the result).

Nothing that arrived is thrown away: after a cut connection, a local write
error or Ctrl-C the partial file is kept and ftpc says how to resume. It is
removed only when it is empty or when verification failed (its contents
cannot be trusted).

An existing local file is never replaced without `force`; without it the
final step is a hard link, which fails atomically if the target appeared
meanwhile. Everything local is prepared before a request is sent.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Optional, Tuple

from ftpd import protocol
from ftpd.client import (Client, ClientError, ConnectionLost, IntegrityError, LocalError,
                         ServerError)
from ftpd.client.local import prefix_digest
from ftpd.client.overlap import OverlappedDigest

PART_SUFFIX = ".ftpc-part"
ASIDE_SUFFIX = ".ftpc-kept"      # an existing file --continue found not to be a prefix
ProgressFactory = Callable[[str, int, int], Any]   # (label, total, initial) -> bar


class TransferError(Exception):
    """A transfer failed for a local reason (not a server refusal)."""


class LocalFileError(TransferError):
    """A local file is missing, in the way, or cannot be written."""


class VerifyError(TransferError, IntegrityError):
    """The downloaded bytes do not match what the server reports."""


class Cancelled(TransferError):
    """The user pressed Ctrl-C during a transfer."""


@dataclass(frozen=True)
class GetOptions:
    force: bool = False
    resume: bool = False
    verify: bool = True


@dataclass(frozen=True)
class Outcome:
    path: str
    size: int
    sha256: Optional[str]
    resumed_from: int = 0
    already_complete: bool = False


class NullBar:
    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def tqdm_bar(label: str, total: int, initial: int = 0) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:        # a checkout run without its dependencies: no bar
        return NullBar()
    return tqdm(total=total, initial=initial, desc=label, unit="B", unit_scale=True,
                unit_divisor=1024, file=sys.stderr, dynamic_ncols=True, leave=True)


def bar_for(quiet: bool) -> ProgressFactory:
    """The one rule for progress bars: drawn on stderr (stdout may be a pipe:
    get -o - | tar x) whenever stderr is a terminal, unless asked to be quiet."""
    return tqdm_bar if not quiet and sys.stderr.isatty() else no_bar


def no_bar(label: str, total: int, initial: int = 0) -> NullBar:
    return NullBar()


def part_path(target: str) -> str:
    head, tail = os.path.split(target)
    return os.path.join(head, f".{tail}{PART_SUFFIX}")


def local_target(name: str, local: Optional[str]) -> str:
    """Where `get NAME [LOCAL]` writes: LOCAL, or NAME's last component
    (here, or inside LOCAL if that is a directory)."""
    base = name.rpartition("/")[2]
    if not local:
        return base
    local = os.path.expanduser(local)
    return os.path.join(local, base) if os.path.isdir(local) else local


class _Sink:
    """Writes downloaded chunks, hashing them when the download is verified."""

    def __init__(self, handle: Any, digest: Any = None):
        self.handle, self.digest = handle, digest

    def write(self, chunk: Any) -> None:
        self.handle.write(chunk)
        if self.digest is not None:
            self.digest.update(chunk)


# -- download --------------------------------------------------------------------------

def download(client: Client, name: str, target: str, options: GetOptions = GetOptions(),
             bar: ProgressFactory = no_bar) -> Outcome:
    _check_remote_name(name)       # its last part becomes a local name: never ../ or /
    part = part_path(target)
    adopted = 0
    if os.path.lexists(target) and not options.force:
        if not options.resume:
            raise LocalFileError(f"{target} already exists; use --force to replace it")
        found = _adopt_existing(client, name, target, part)
        if isinstance(found, Outcome):
            return found
        adopted = found
    offset = _resumable_size(part)      # a kept partial is resumed, then verified whole
    verify = options.verify or offset > 0
    try:
        handle = open_part(part, offset)
    except OSError as exc:
        raise LocalFileError(f"cannot write {part}: {exc.strerror}") from exc
    try:
        with handle:
            size, digest, offset, mtime = _fetch_part(client, name, handle, offset, verify,
                                                      options, bar)
            os.fsync(handle.fileno())
        if mtime is not None:
            os.utime(part, (mtime, mtime))      # the server's time, as rsync -a and curl -R
        commit_part(part, target, options.force or adopted > 0)
    except BaseException as exc:
        if adopted and isinstance(exc, IntegrityError):
            raise _set_aside(part, target, adopted) from exc
        raise _after_failure(exc, client, name, part) from exc
    return Outcome(target, offset + size, digest, offset)


def _fetch_part(client: Client, name: str, handle: BinaryIO, offset: int, verify: bool,
                options: GetOptions, bar: ProgressFactory
                ) -> Tuple[int, Optional[str], int, Optional[int]]:
    """(bytes received, verified SHA-256 or None, offset actually used, the
    server's modification time of the file or None)."""
    try:
        digest = _prefix_digest(handle, offset) if verify else None
        size, sha, mtime = fetch(client, name, handle, offset, digest, bar, listed=True)
    except ServerError as exc:
        # A partial found by a plain get, longer than the file now is: it was
        # of another version. Start over (on the same session: ERR is one line).
        if exc.code != protocol.BAD_OFFSET or options.resume or not offset:
            raise
        handle.seek(0)
        handle.truncate()
        offset = 0
        size, sha, mtime = fetch(client, name, handle, 0,
                                 hashlib.sha256() if options.verify else None, bar, listed=True)
    handle.flush()
    return size, sha, offset, mtime


def fetch(client: Client, name: str, handle: Any, offset: int, digest: Any,
          bar: ProgressFactory, listed: bool = False
          ) -> Tuple[int, Optional[str], Optional[int]]:
    """G (with H first when verifying, and L first when `listed`, all sent
    at once), receive with a bar, then compare. Returns (bytes received,
    verified SHA-256 or None, the file's modification time from its L row
    or None)."""
    mtime: Optional[int] = None
    if listed:
        count, expected, row = client.start_listed_get(name, offset, digest is not None)
        mtime = row.mtime if row is not None else None
    elif digest is None:
        count, expected = client.start_get(name, offset), None
    else:
        count, expected = client.start_checked_get(name, offset)
    progress = bar(name, offset + count, offset)
    overlapped = OverlappedDigest(digest) if digest is not None else None
    try:
        client.receive(_Sink(handle, overlapped), count, progress.update)
    finally:
        progress.close()
    if overlapped is None or expected is None:
        return count, None, mtime
    got = (offset + count, overlapped.hexdigest())
    if got != expected and got != _hash_again(client, name):
        raise VerifyError(f"download of {name} does not match the server's copy "
                          f"(got {got[0]} bytes sha256 {got[1][:12]}..., server has "
                          f"{expected[0]} bytes sha256 {expected[1][:12]}...); "
                          "it may have changed during the download")
    return count, got[1], mtime


def _hash_again(client: Client, name: str) -> Optional[Tuple[int, str]]:
    # Replaced between H and G? What arrived may be the file as it is now.
    try:
        return client.hash(name)
    except ClientError:
        return None


def _adopt_existing(client: Client, name: str, target: str, part: str) -> "Outcome | int":
    """`get --continue` over an existing file (as wget -c): done if it is the
    server's copy; if shorter, it becomes the partial file to resume (its
    size is returned), checked whole by SHA-256 once the rest arrived."""
    remote_size, remote_digest = client.hash(name)
    try:
        with open(target, "rb") as handle:
            local_size = os.fstat(handle.fileno()).st_size
            local_digest = _prefix_digest(handle, local_size).hexdigest() \
                if local_size == remote_size else None
    except OSError as exc:
        raise LocalFileError(f"cannot read {target}: {exc.strerror}") from exc
    if local_digest == remote_digest:
        return Outcome(target, local_size, local_digest, already_complete=True)
    if local_size >= remote_size or not os.path.isfile(target):
        raise LocalFileError(f"{target} already exists and differs from the server's copy; "
                             "use --force to replace it")
    try:
        os.replace(target, part)
    except OSError as exc:
        raise LocalFileError(f"cannot resume {target}: {exc.strerror}") from exc
    return local_size


def _set_aside(part: str, target: str, adopted: int) -> VerifyError:
    """The file we continued was not the start of the server's: give the
    person their own bytes back, beside the target, and say where."""
    aside = target + ASIDE_SUFFIX
    try:
        os.truncate(part, adopted)
        os.replace(part, aside)
    except OSError as exc:
        return VerifyError(f"{target} was not the start of the server's file and could "
                           f"not be set aside ({exc.strerror}); its bytes are in {part}")
    return VerifyError(f"{target} was not the start of the server's file (the SHA-256 of "
                       f"the whole did not match); your file was kept as {aside}")


def _check_remote_name(name: str) -> None:
    problem = path_problem(name)
    if problem:
        raise LocalFileError(f"{name!r} cannot be a file on the server: {problem}")


def path_problem(path: str) -> Optional[str]:
    """Why `path` cannot be a path on the server (protocol.md §1), or None."""
    if not path:
        return "the path is empty"
    for part in path.split("/"):
        problem = protocol.name_problem(part)
        if problem:
            return f"a name {problem}"
    return None


def _resumable_size(part: str) -> int:
    try:
        return os.lstat(part).st_size
    except FileNotFoundError:
        return 0


def open_part(part: str, offset: int) -> BinaryIO:
    # O_NOFOLLOW: a planted symlink must not redirect our write elsewhere.
    # (Windows has no O_NOFOLLOW and needs O_BINARY: both fall back to 0.)
    flags = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
             | (0 if offset else os.O_TRUNC))
    handle = os.fdopen(os.open(part, flags, 0o666), "r+b")
    handle.seek(offset)
    return handle


def _prefix_digest(handle: BinaryIO, offset: int) -> Any:
    """SHA-256 state over the bytes already in the partial file (the
    client's prefix_digest, its refusal in ftpc's own error class)."""
    try:
        return prefix_digest(handle, offset)
    except LocalError as exc:
        raise LocalFileError(str(exc)) from None


def commit_part(part: str, target: str, force: bool) -> None:
    """Give the finished part file its final name (atomically; without
    `force`, never over an existing file)."""
    try:
        if force:
            os.replace(part, target)
            return
        try:
            os.link(part, target)            # fails atomically if target exists
        except OSError as exc:
            if exc.errno == errno.EEXIST or os.path.lexists(target):
                raise LocalFileError(f"{target} already exists; use --force "
                                     "to replace it") from exc
            os.rename(part, target)          # file system without hard links
            return
        os.unlink(part)
    except LocalFileError:
        raise
    except OSError as exc:
        raise LocalFileError(f"cannot create {target}: {exc.strerror}") from exc


def _after_failure(exc: BaseException, client: Client, name: str, part: str) -> BaseException:
    """Keep what arrived unless it cannot be trusted; say how to go on."""
    if isinstance(exc, KeyboardInterrupt):
        client.close()      # we may be mid-reply: the session cannot go on
    if isinstance(exc, IntegrityError) or _resumable_size(part) == 0:
        _remove(part)
    kept = _resumable_size(part)
    resume = (f"; partial data kept in {part} ({kept} bytes): run the same get again "
              f"(or get --continue {name}) to resume") if kept else ""
    if isinstance(exc, KeyboardInterrupt):
        return Cancelled("download cancelled" + (resume or "; no partial file left"))
    if isinstance(exc, IntegrityError):
        return VerifyError(f"{exc}; nothing was kept")
    if isinstance(exc, ServerError) and exc.code == protocol.BAD_OFFSET:
        return ServerError(exc.code, f"{exc.text}; the partial file {part} is longer than "
                                     "the server's file: remove it to start again")
    if isinstance(exc, ServerError):
        return ServerError(exc.code, exc.text + resume) if resume else exc
    if isinstance(exc, ConnectionLost):
        return type(exc)(str(exc) + resume)
    if isinstance(exc, OSError):
        return LocalFileError(f"cannot write {part}: {exc.strerror or exc}{resume}")
    if isinstance(exc, LocalError):
        return LocalFileError(f"{exc}{resume}")
    return exc


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def download_to_stream(client: Client, name: str, out: BinaryIO, verify: bool = True,
                       bar: ProgressFactory = no_bar) -> Outcome:
    """`get NAME -o -`: bytes cannot be taken back, but a mismatch still fails."""
    try:
        size, digest, _ = fetch(client, name, out, 0, hashlib.sha256() if verify else None,
                                bar)
    except KeyboardInterrupt as exc:
        client.close()
        raise Cancelled("download cancelled") from exc
    return Outcome("-", size, digest)


# -- `--limit-rate`: the client paces itself through its progress callback -----------

class _Pacer:
    """A token bucket of at most one second's worth, empty at the start."""

    def __init__(self, rate: int):
        self.rate = rate
        self.tokens = 0.0
        self.stamp = time.monotonic()

    def take(self, count: int) -> None:
        now = time.monotonic()
        self.tokens = min(float(self.rate), self.tokens + (now - self.stamp) * self.rate) - count
        self.stamp = now
        if self.tokens < 0:
            time.sleep(-self.tokens / self.rate)   # asleep, not spinning


class _PacedBar:
    """Each chunk waits for its turn before the bar counts it, so the bar's
    speed is the limited speed and the next read or send waits too."""

    def __init__(self, inner: Any, rate: int):
        self.inner = inner
        self.pacer = _Pacer(rate)

    def update(self, count: int) -> None:
        self.pacer.take(count)
        self.inner.update(count)

    def close(self) -> None:
        self.inner.close()


def rate_limited(bar: ProgressFactory, rate: int) -> ProgressFactory:
    """`bar` paced to `rate` bytes per second (0: as it is), both directions."""
    if rate <= 0:
        return bar

    def paced(label: str, total: int, initial: int = 0) -> _PacedBar:
        return _PacedBar(bar(label, total, initial), rate)
    return paced
