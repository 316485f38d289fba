"""Many uploads on one connection with one round trip per file, not two.

FTPD/1 lets a client pipeline every request except a P's bytes, which wait
for its `OK ready` (protocol.md §1). So the best legal schedule sends file
k's bytes, its digest line and the request for file k+1 in one go, then
reads k's final reply and k+1's `OK ready` together:

    P1 ->            <- OK ready
    bytes1 sha1 P2 ->
                     <- OK 4096 sha1
                     <- OK ready            (or ERR: no bytes for file 2)
    bytes2 sha2 P3 -> ...
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator, List, Optional, Tuple, Union

from ftpd import protocol
from ftpd.client.connection import Progress, encode_request
from ftpd.client.readahead import CHUNK as READ_AHEAD_CHUNK
from ftpd.client.errors import ClientError, LocalError, ServerError
from ftpd.client.transfers import Transfers


@dataclass(frozen=True)
class Upload:
    source: str                   # the local file
    name: str                     # its path on the server
    mtime: Optional[int] = None   # seconds since the epoch, kept by the server


# (size, sha256) the server stored, or why this one file was not stored.
UploadOutcome = Union[Tuple[int, str], ClientError]


@dataclass
class _Announced:
    """A file whose P went out; its bytes wait for `OK ready`."""
    upload: Upload
    handle: BinaryIO
    size: int
    body: Optional[Tuple[bytes, str]] = None   # read and hashed while the server works


class Pipelines(Transfers):
    def put_many(self, uploads: Iterable[Upload], progress: Progress = None,
                 stop: Callable[[], bool] = lambda: False
                 ) -> Iterator[Tuple[Upload, UploadOutcome]]:
        """Upload files with streamed digests (`P name size - mtime`), the
        next request sent with the previous file's bytes; yields each
        upload with its (size, sha256) or the error that left it unstored
        (a refusal, a local file that cannot be read), and goes on.

        `stop` is asked before each further request: once it says yes,
        the files already under way finish and nothing more is sent. An
        error that ends the session (ConnectionLost, a closing ERR) is
        raised. Parent directories must exist (make them with M first).
        A caller that stops iterating early ends the connection: a request
        is out whose replies nobody will read."""
        pending = iter(uploads)
        current, failures = self._announce(pending, stop, b"")
        yield from failures
        try:
            while current is not None:
                outcome, current, failures = self._complete(current, pending, stop, progress)
                yield outcome
                yield from failures
        finally:
            if current is not None:     # left early: its P is out, its replies unread
                current.handle.close()
                self.close()

    def _complete(self, current: _Announced, pending: Iterator[Upload],
                  stop: Callable[[], bool], progress: Progress
                  ) -> Tuple[Tuple[Upload, UploadOutcome], Optional[_Announced],
                             List[Tuple[Upload, UploadOutcome]]]:
        """Wait for `current`'s OK ready, send its bytes with the next P,
        read its final reply: (its outcome, the next announced, files
        that could not be opened on the way)."""
        with current.handle:
            try:
                self._reply()                       # OK ready
            except ServerError as refused:
                if self.closed:
                    raise
                following, failures = self._announce(pending, stop, b"")
                return (current.upload, refused), following, failures
            if current.body is None:
                unsent, digest = self.send_hashed(current.handle, 0, current.size, progress)
            else:
                unsent, digest = current.body
                if progress:
                    progress(current.size)
        following, failures = self._announce(pending, stop,
                                             unsent + digest.encode("ascii") + b"\n")
        _prepare(following)
        try:
            stored = self._hash_reply(self._reply())
            if stored[1] != digest:
                raise ServerError(protocol.DIGEST_MISMATCH, "server stored a different digest")
        except ServerError as exc:
            if not self.closed:
                return (current.upload, exc), following, failures
            _close(following)
            raise
        except BaseException:
            _close(following)
            raise
        return (current.upload, stored), following, failures

    def _announce(self, pending: Iterator[Upload], stop: Callable[[], bool], before: bytes
                  ) -> Tuple[Optional[_Announced], List[Tuple[Upload, UploadOutcome]]]:
        """Send `before` and the P of the next file that opens; returns it
        (None when there is none, or `stop` said so) and those that did not."""
        failures: List[Tuple[Upload, UploadOutcome]] = []
        for upload in pending:
            if stop():
                break
            try:
                announced = _open(upload)
            except LocalError as exc:
                failures.append((upload, exc))
                continue
            fields = [protocol.encode_path(upload.name), str(announced.size), "-"]
            try:
                request = encode_request("P", *fields, *_mtime_field(upload))
            except LocalError as exc:
                announced.handle.close()
                failures.append((upload, exc))
                continue
            try:
                self._send(before + request)
            except BaseException:
                announced.handle.close()
                raise
            return announced, failures
        if before:
            self._send(before)
        return None, failures


def _open(upload: Upload) -> _Announced:
    try:
        handle = open(upload.source, "rb")
    except OSError as exc:
        raise LocalError(f"cannot read {upload.source}: {exc.strerror or exc}") from exc
    try:
        size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        handle.close()
        raise LocalError(f"cannot read {upload.source}: {exc.strerror or exc}") from exc
    return _Announced(upload, handle, size)


def _prepare(announced: Optional[_Announced]) -> None:
    """Read and hash a small file while the server commits the one before
    and answers its P (the replies are not read yet): client and server
    work at once. A file that cannot be read whole here is left to
    send_hashed, which fails it properly once its OK ready is in."""
    if announced is None or announced.size > READ_AHEAD_CHUNK:
        return
    try:
        data = os.pread(announced.handle.fileno(), announced.size, 0)
    except OSError:
        return
    if len(data) == announced.size:
        announced.body = (data, hashlib.sha256(data).hexdigest())


def _close(announced: Optional[_Announced]) -> None:
    if announced is not None:
        announced.handle.close()


def _mtime_field(upload: Upload) -> List[str]:
    return [str(upload.mtime)] if upload.mtime is not None else []
