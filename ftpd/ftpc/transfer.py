"""Downloads and uploads a person can trust.

A download is written to `.NAME.ftpc-part` beside the target and renamed
over it only when complete and verified (size, and SHA-256 via `H`). The
partial file has a predictable name so `get --continue` can find it.

What happens to the partial file:
- the connection is cut: it is kept, and `--continue` resumes it;
- Ctrl-C: it is removed, unless this run was itself a `--continue` run
  (the user already chose to keep partial data);
- verification fails or the server refuses: it is removed, since its
  contents cannot be trusted (a refused `--continue` run keeps its partial).

An existing local file is never replaced without `force`; without it the
final step is a hard link, which fails atomically if the target appeared
meanwhile.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Optional

from ftpd import protocol
from ftpd.client import Client, ConnectionLost, ServerError

PART_SUFFIX = ".ftpc-part"
ProgressFactory = Callable[[str, int, int], Any]   # (label, total, initial) -> bar


class TransferError(Exception):
    """A transfer failed for a local reason (not a server refusal)."""


class LocalFileError(TransferError):
    """A local file is missing, in the way, or cannot be written."""


class VerifyError(TransferError):
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


def no_bar(label: str, total: int, initial: int = 0) -> NullBar:
    return NullBar()


def part_path(target: str) -> str:
    head, tail = os.path.split(target)
    return os.path.join(head, f".{tail}{PART_SUFFIX}")


def local_target(name: str, local: Optional[str]) -> str:
    """Where `get NAME [LOCAL]` writes: LOCAL, or NAME inside LOCAL if a dir."""
    if not local:
        return name
    local = os.path.expanduser(local)
    return os.path.join(local, name) if os.path.isdir(local) else local


class _Sink:
    """Writes downloaded chunks, hashing them when the download is to be
    verified, and advancing the bar."""

    def __init__(self, handle: BinaryIO, digest: Any = None):
        self.handle, self.digest, self.bar = handle, digest, NullBar()

    def write(self, chunk: Any) -> None:
        self.handle.write(chunk)
        if self.digest is not None:
            self.digest.update(chunk)
        self.bar.update(len(chunk))

    def hexdigest(self) -> Optional[str]:
        return None if self.digest is None else self.digest.hexdigest()


# -- download --------------------------------------------------------------------------

def download(client: Client, name: str, target: str, options: GetOptions = GetOptions(),
             bar: ProgressFactory = no_bar) -> Outcome:
    _check_remote_name(name)       # it becomes a local path: never ../ or /
    if os.path.lexists(target) and not options.force:
        raise LocalFileError(f"{target} already exists; use --force to replace it")
    part = part_path(target)
    offset = _resumable_size(part) if options.resume else 0
    verify = options.verify or offset > 0     # a resumed file is always checked whole
    try:
        handle = _open_part(part, offset)
    except OSError as exc:
        raise LocalFileError(f"cannot write {part}: {exc.strerror}") from exc
    try:
        with handle:
            sink = _Sink(handle, _prefix_digest(handle, offset) if verify else None)
            size = _receive(client, name, offset, sink, bar)
            os.fsync(handle.fileno())
        digest = sink.hexdigest()
        if digest is not None:
            _verify(client, name, offset + size, digest)
        _commit(part, target, options.force)
    except BaseException as exc:
        _after_failure(exc, client, part, options.resume)
        raise _translate(exc, part, options.resume) from exc
    return Outcome(target, offset + size, digest, offset)


def _check_remote_name(name: str) -> None:
    problem = protocol.name_problem(name)
    if problem:
        raise LocalFileError(f"{name!r} cannot be a file on the server: a name {problem}")


def _resumable_size(part: str) -> int:
    try:
        return os.lstat(part).st_size
    except FileNotFoundError:
        return 0


def _open_part(part: str, offset: int) -> BinaryIO:
    # O_NOFOLLOW: a planted symlink must not redirect our write elsewhere.
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | (0 if offset else os.O_TRUNC)
    handle = os.fdopen(os.open(part, flags, 0o666), "r+b")
    handle.seek(offset)
    return handle


def _prefix_digest(handle: BinaryIO, offset: int) -> Any:
    """SHA-256 state over the bytes already in the partial file."""
    digest = hashlib.sha256()
    if offset:
        handle.seek(0)
        remaining = offset
        while remaining:
            chunk = handle.read(min(remaining, 1 << 20))
            if not chunk:
                raise LocalFileError("the partial file shrank while it was being read")
            digest.update(chunk)
            remaining -= len(chunk)
    return digest


def _receive(client: Client, name: str, offset: int, sink: _Sink, bar: ProgressFactory) -> int:
    count = client.start_get(name, offset)
    sink.bar = bar(name, offset + count, offset)
    try:
        client.receive(sink, count)
        sink.handle.flush()
    finally:
        sink.bar.close()
    return count


def _verify(client: Client, name: str, size: int, digest: str) -> None:
    remote_size, remote_digest = client.hash(name)
    if remote_size != size or remote_digest != digest:
        raise VerifyError(f"download of {name} does not match the server's copy "
                          f"(got {size} bytes sha256 {digest[:12]}..., server has "
                          f"{remote_size} bytes sha256 {remote_digest[:12]}...); "
                          "it may have changed during the download; nothing was kept")


def _commit(part: str, target: str, force: bool) -> None:
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


def _after_failure(exc: BaseException, client: Client, part: str, resumed: bool) -> None:
    if isinstance(exc, KeyboardInterrupt):
        client.close()      # the rest of the file is still in flight: the session is lost
    keep = isinstance(exc, ConnectionLost) or (resumed and not isinstance(exc, VerifyError))
    if not keep or _resumable_size(part) == 0:
        _remove(part)


def _translate(exc: BaseException, part: str, resumed: bool) -> BaseException:
    if isinstance(exc, KeyboardInterrupt):
        kept = f"; partial data kept in {part}" if os.path.exists(part) else \
            "; no partial file left"
        return Cancelled(f"download cancelled{kept}")
    if isinstance(exc, ConnectionLost) and os.path.exists(part):
        return ConnectionLost(f"{exc}; partial data kept in {part}, "
                              "resume with get --continue")
    if isinstance(exc, ServerError) and exc.code == protocol.BAD_OFFSET and resumed:
        return ServerError(exc.code, f"{exc.text}; run get without --continue to start again")
    return exc


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def download_to_stream(client: Client, name: str, out: BinaryIO, verify: bool = True,
                       bar: ProgressFactory = no_bar) -> Outcome:
    """`get NAME -o -`: bytes cannot be taken back, but a mismatch still fails."""
    sink = _Sink(out, hashlib.sha256() if verify else None)
    try:
        size = _receive(client, name, 0, sink, bar)
    except KeyboardInterrupt as exc:
        client.close()
        raise Cancelled("download cancelled") from exc
    digest = sink.hexdigest()
    if digest is not None:
        _verify(client, name, size, digest)
    return Outcome("-", size, digest)


# -- upload --------------------------------------------------------------------------

def upload(client: Client, path: str, name: Optional[str] = None,
           bar: ProgressFactory = no_bar) -> Outcome:
    """Send a local file; `P` announces its SHA-256 so the server verifies it."""
    path = os.path.expanduser(path)
    name = name or os.path.basename(os.path.normpath(path))
    problem = protocol.name_problem(name)
    if problem:
        raise LocalFileError(f"cannot store as {name!r}: a name {problem}; "
                             "choose another name")
    if not os.path.isfile(path):
        what = "is not a regular file" if os.path.exists(path) else "does not exist"
        raise LocalFileError(f"{path} {what}")
    progress = bar(name, os.path.getsize(path), 0)
    try:
        size, digest = client.put(path, name, progress=progress.update)
    except KeyboardInterrupt as exc:
        client.close()      # a cut upload is never committed by the server
        raise Cancelled("upload cancelled; nothing was stored on the server") from exc
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        progress.close()
    return Outcome(name, size, digest)

