"""Client transfers: G into a path (atomic, verified) or a file object, with
H pipelined so data can be verified the moment it arrives; P from a path or
a file object with an announced, streamed or no digest."""

from __future__ import annotations

import hashlib
import os
from typing import Any, BinaryIO, Literal, Optional, Tuple, Union

from ftpd import protocol
from ftpd.client.connection import Connection, Progress, Writer, encode_request, stream_failure
from ftpd.client.errors import ClientError, ConnectionLost, IntegrityError, LocalError, ServerError
from ftpd.client.local import Discard, Hashing, measure, open_destination, prefix_digest
from ftpd.client.overlap import OverlappedDigest
from ftpd.client.readahead import CHUNK as READ_AHEAD_CHUNK, ReadAheadHasher
from ftpd.fileutil import unlink_quietly
from ftpd.protocol import Entry
from ftpd.stream import StreamClosed, StreamTimeout

# How a put proves its data arrived intact (protocol.md, P): "announce" hashes
# the file first and sends the digest in the request, "stream" hashes while
# sending and sends the digest after the bytes (one read of the file), "none"
# lets the server hash what it got and only reports it.
DigestMode = Literal["announce", "stream", "none"]


class Transfers(Connection):
    def get(self, name: str, dest: Union[str, "os.PathLike[str]", BinaryIO], offset: int = 0,
            progress: Progress = None, verify: bool = True) -> int:
        """Download `name` from byte `offset`; returns the bytes received.

        `dest` is a path or a binary file object. A path is written
        atomically: into a hidden temporary file beside it, renamed over it
        only once complete and (with `verify`, the default) once its size and
        SHA-256 match the server's; on any failure nothing is left. With
        `offset` > 0 the path is a partial file that is continued in place and
        then verified whole. A file object receives the bytes as they come;
        to verify a resumed download into one, it must be readable
        (opened "r+b"). The destination is prepared before anything is sent,
        so a local problem raises LocalError with the session intact.
        Raises IntegrityError if verification fails."""
        if isinstance(dest, (str, os.PathLike)):
            return self._get_to_path(name, os.fspath(dest), offset, progress, verify)
        if not hasattr(dest, "write"):
            raise LocalError("get() needs a path or a binary file object, "
                             f"not {type(dest).__name__}")
        digest = prefix_digest(dest, offset) if verify else None
        return self.fetch(name, dest, offset, digest, progress)[0]

    def _get_to_path(self, name: str, path: str, offset: int, progress: Progress,
                     verify: bool) -> int:
        handle, temp = open_destination(path, offset)
        try:
            with handle:
                digest = prefix_digest(handle, offset) if verify else None
                count = self.fetch(name, handle, offset, digest, progress)[0]
            if temp:
                os.replace(temp, path)
        except BaseException:
            if temp:
                unlink_quietly(temp)
            raise
        return count

    def fetch(self, name: str, handle: BinaryIO, offset: int = 0, digest: Optional[Any] = None,
              progress: Progress = None) -> Tuple[int, Optional[str]]:
        """G `name` from `offset` into `handle` (anything with write()).

        With `digest` (a hashlib.sha256 object over the `offset` bytes already
        held) the server's size and SHA-256 are asked first, pipelined with
        G, so the data is verified as soon as it has arrived, even if the
        session ends right after. Returns (bytes received, SHA-256 hex of the
        whole file or None). Raises IntegrityError on a mismatch."""
        if digest is None:
            count = self.start_get(name, offset)
            self.receive(handle, count, progress)
            return count, None
        count, expected = self.start_checked_get(name, offset)
        overlapped = OverlappedDigest(digest)      # hashes beside the receiving
        self.receive(Hashing(handle, overlapped), count, progress)
        got = (offset + count, overlapped.hexdigest())
        if got != expected and got != self._hash_again(name):
            raise IntegrityError(
                f"download of {name} does not match the server's copy (got {got[0]} bytes "
                f"sha256 {got[1][:12]}..., server has {expected[0]} bytes sha256 "
                f"{expected[1][:12]}...); it may have changed during the download")
        return count, got[1]

    def _hash_again(self, name: str) -> Optional[Tuple[int, str]]:
        # The file may have been replaced between H and G: what we got may
        # still be the file as it is now.
        try:
            return self.hash(name)
        except ClientError:
            return None

    def start_get(self, name: str, offset: int = 0) -> int:
        """Send G and return the byte count; the caller must then receive() them."""
        fields = [protocol.encode_path(name)] + ([str(offset)] if offset else [])
        return self._numbers(self.request("G", *fields), 1)[0]

    def start_checked_get(self, name: str, offset: int = 0) -> Tuple[int, Tuple[int, str]]:
        """Send H and G together (pipelining, protocol.md §1); return G's byte
        count and H's (size, sha256). The caller must then receive() the bytes."""
        field = protocol.encode_path(name)
        self._send(encode_request("H", field) + _get_request(field, offset))
        return self._read_checked_get()

    def start_listed_get(self, name: str, offset: int = 0, verify: bool = True
                         ) -> Tuple[int, Optional[Tuple[int, str]], Optional[Entry]]:
        """Send L, H (when verifying) and G at once, one round trip for all
        three; return G's byte count, H's (size, sha256) or None, and the
        file's L row (for its modification time; None if L failed or did
        not show a file). The caller must then receive() the bytes."""
        field = protocol.encode_path(name)
        checked = encode_request("H", field) if verify else b""
        self._send(encode_request("L", field) + checked + _get_request(field, offset))
        row = self._listed_file(name)
        if verify:
            count, expected = self._read_checked_get()
            return count, expected, row
        return self._numbers(self._reply(), 1)[0], None, row

    def _listed_file(self, name: str) -> Optional[Entry]:
        """The reply to `L name`: the file's one row, or None."""
        try:
            rows = self._read_listing()
        except ServerError:
            if self.closed:
                raise
            return None
        base = name.rpartition("/")[2]
        if len(rows) == 1 and not rows[0].is_dir and rows[0].name == base:
            return rows[0]
        return None

    def _read_checked_get(self) -> Tuple[int, Tuple[int, str]]:
        try:
            expected = self._hash_reply(self._reply())
        except ServerError:
            if not self.closed:
                self._abandon_get()
            raise
        return self._numbers(self._reply(), 1)[0], expected

    def _abandon_get(self) -> None:
        """Read (and throw away) the reply to a G we no longer want."""
        try:
            count = self._numbers(self._reply(), 1)[0]
            self.receive(Discard(), count)
        except ServerError:
            pass

    def receive(self, handle: Writer, count: int, progress: Progress = None) -> None:
        """Read exactly `count` file bytes into anything with write().

        If anything fails before they all arrived (the connection, a local
        write, Ctrl-C) the connection is closed: the rest of the file is
        still in flight and must never be read as replies."""
        try:
            for chunk in self.stream.iter_exact(count, self.timeout):
                handle.write(chunk)
                if progress:
                    progress(len(chunk))
        except (StreamClosed, StreamTimeout) as exc:
            self.close()
            why = stream_failure(exc, self.timeout)
            raise ConnectionLost(f"download cut short: {why}") from exc
        except OSError as exc:
            self.close()
            raise LocalError(f"cannot write the download: {exc.strerror or exc}; the "
                             "connection was closed") from exc
        except BaseException:
            self.close()
            raise

    def put(self, source: Union[str, "os.PathLike[str]", BinaryIO], name: Optional[str] = None,
            progress: Progress = None, digest: DigestMode = "announce",
            mtime: Optional[int] = None, resume: bool = False) -> Tuple[int, str]:
        """Upload a local file as `name` (a remote path; default: the local
        base name); returns the (size, sha256) the server stored.

        With `resume` the upload is resumable (`C`, docs/protocol.md): the
        file is hashed first and the server, if it kept an interrupted
        upload of this same file (name, size, digest, account), asks only
        for the bytes it lacks; if this one is cut, the next resume=True
        call continues it. `digest` is then always announced.

        `source` is a path or a seekable binary file object, sent from its
        current position to its end (`name` is then required); a source that
        cannot be read raises LocalError before anything is sent. `digest`
        picks how the server checks the data (DigestMode above); with
        "announce" or "stream" it stores nothing unless the digest matches
        (else ServerError 422). `mtime` (seconds since the epoch) becomes the
        stored file's modification time; it needs a digest mode other than
        "none". The parent directory must exist (404) and `name` must not be
        a directory (409)."""
        if digest not in ("announce", "stream", "none"):
            raise ValueError(f"digest must be announce, stream or none, not {digest!r}")
        if mtime is not None and digest == "none":
            raise ValueError("mtime needs a digest: use digest='announce' or 'stream'")
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            try:
                handle = open(path, "rb")
            except OSError as exc:
                raise LocalError(f"cannot read {path}: {exc.strerror or exc}") from exc
            with handle:
                return self._put_handle(handle, name or os.path.basename(path), progress,
                                        digest, mtime, resume)
        if not name or not hasattr(source, "read"):
            raise LocalError("put() needs a path, or a binary file object and a name")
        return self._put_handle(source, name, progress, digest, mtime, resume)

    def _put_handle(self, handle: BinaryIO, name: str, progress: Progress,
                    digest: DigestMode, mtime: Optional[int],
                    resume: bool = False) -> Tuple[int, str]:
        if resume:
            return self._resume_handle(handle, name, progress, mtime)
        start, size, announced = measure(handle, digest == "announce")
        fields = [protocol.encode_path(name), str(size)]
        if digest != "none":
            fields.append(announced or "-")
        fields += [str(mtime)] if mtime is not None else []
        self.request("P", *fields)          # OK ready, or ServerError
        if digest == "stream":
            unsent, announced = self.send_hashed(handle, start, size, progress)
            self._send(unsent + announced.encode("ascii") + b"\n")
        else:
            self._send_file(handle, start, size, progress)
        stored_size, stored_digest = self._hash_reply(self._reply())
        if announced and stored_digest != announced:
            raise ServerError(protocol.DIGEST_MISMATCH, "server stored a different digest")
        return stored_size, stored_digest

    def _resume_handle(self, handle: BinaryIO, name: str, progress: Progress,
                       mtime: Optional[int]) -> Tuple[int, str]:
        """`C name size sha256 [mtime]` -> `OK <held>`: send the rest only."""
        start, size, announced = measure(handle, True)
        fields = [protocol.encode_path(name), str(size), str(announced)]
        fields += [str(mtime)] if mtime is not None else []
        held = self._numbers(self.request("C", *fields), 1)[0]
        if held > size:
            self.close()                # we cannot send a negative rest: out of step
            raise ConnectionLost(f"server holds {held} bytes of a {size}-byte file")
        if progress and held:
            progress(held)
        self._send_file(handle, start + held, size - held, progress)
        stored_size, stored_digest = self._hash_reply(self._reply())
        if stored_digest != announced:
            raise ServerError(protocol.DIGEST_MISMATCH, "server stored a different digest")
        return stored_size, stored_digest

    def send_hashed(self, handle: BinaryIO, start: int, size: int,
                    progress: Progress) -> Tuple[bytes, str]:
        """Hash `size` bytes of the file from `start` on their way out
        (`P name size -`); returns (bytes still to send, their digest): the
        caller sends them with the digest line, and may add the next request.

        A file of at most one chunk is read and hashed here and returned
        whole, to go out in one send: a helper thread per file would cost
        more than it saves (its start alone waits for the scheduler, which
        dominated a put -r of small files). A larger one is read once by the
        read-ahead hasher, hashing chunk k+1 while chunk k is sent. A file
        that shrank meanwhile ends the connection: the server must not
        commit a short upload."""
        if size <= READ_AHEAD_CHUNK:
            try:
                data = os.pread(handle.fileno(), size, start)
            except OSError as exc:
                self.close()
                raise LocalError(f"cannot read the upload source: {exc.strerror or exc}; "
                                 "the connection was closed") from exc
            if len(data) != size:
                raise self._shrank()
            if progress:
                progress(size)
            return data, hashlib.sha256(data).hexdigest()
        return b"", self._send_read_ahead(handle, start, size, progress)

    def _send_read_ahead(self, handle: BinaryIO, start: int, size: int,
                         progress: Progress) -> str:
        hasher = ReadAheadHasher(handle.fileno(), start, size)
        try:
            sent = 0
            while sent < size:
                count = hasher.next_chunk()
                if not count:
                    raise self._shrank()
                self._send_range(handle, start + sent, count)
                sent += count
                if progress:
                    progress(count)
            return hasher.hexdigest()
        finally:
            hasher.stop()

    def _shrank(self) -> ConnectionLost:
        self.close()        # the server must not commit a short upload
        return ConnectionLost("local file shrank during upload")

    def _send_range(self, handle: BinaryIO, offset: int, count: int) -> None:
        try:
            self.sock.settimeout(self.timeout)
            if self.sock.sendfile(handle, offset, count) != count:
                raise self._shrank()
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"upload cut short: {exc}") from exc

    def _send_file(self, handle: BinaryIO, start: int, size: int, progress: Progress) -> None:
        sent = 0
        try:
            self.sock.settimeout(self.timeout)
            while sent < size:
                # small steps only to let a progress bar move
                step = min(size - sent, 1 << 20) if progress else size - sent
                done = self.sock.sendfile(handle, start + sent, step)
                if not done:
                    raise self._shrank()
                sent += done
                if progress:
                    progress(done)
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"upload cut short: {exc}") from exc


# -- local helpers -------------------------------------------------------------------

def _get_request(field: str, offset: int) -> bytes:
    return encode_request("G", field, *([str(offset)] if offset else []))

