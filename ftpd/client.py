"""The Python client API for FTPD/1 (used by ftpc and the tests).

    with Client("127.0.0.1", 8021) as c:
        c.mkdir("photos")
        c.put("local.bin", "photos/remote.bin", digest="stream")
        for dirpath, dirnames, files in c.walk():
            for entry in files: ...
        c.rename("photos/remote.bin", "photos/kept.bin")
        c.get("photos/kept.bin", "copy.bin")
        c.delete("photos/kept.bin")

Every refusal of the server raises ServerError with its code (404 missing,
409 conflict, 403 forbidden, ...); the session stays usable after it.
"""

from __future__ import annotations

import os
import re
import select
import socket
import ssl
from typing import (Any, BinaryIO, Callable, Iterable, Iterator, List, Literal, Optional,
                    Sequence, Tuple, Union)

from ftpd import protocol
from ftpd.client_errors import (ClientError, ConnectionLost, IntegrityError, LocalError,
                                ProtocolViolation, ServerError)
from ftpd.client_local import (Discard, Hashing, measure, open_destination, prefix_digest,
                               unlink_quietly)
from ftpd.filehash import ReadAheadHasher
from ftpd.protocol import DEFAULT_PORT, Entry, ProtocolError
from ftpd.stream import LineTooLong, Stream, StreamClosed, StreamTimeout

__all__ = ["Client", "ClientError", "ConnectionLost", "DigestMode", "Entry", "ServerError",
           "join_path", "parse_hostport"]

Progress = Optional[Callable[[int], None]]
# A whole reply line: anything else where a reply is due means we are out of
# step (or not talking to FTPD/1), and the connection cannot be trusted.
_REPLY_LINE = re.compile(rb"\A(?:OK(?: [^\n]*)?|ERR [0-9]{3}(?: [^\n]*)?)\n\Z")
_GREETING = re.compile(rb"\AOK FTPD/1(?: [^\n]*)?\n\Z")

# How a put proves its data arrived intact (protocol.md, P): "announce" hashes
# the file first and sends the digest in the request, "stream" hashes while
# sending and sends the digest after the bytes (one read of the file), "none"
# lets the server hash what it got and only reports it.
DigestMode = Literal["announce", "stream", "none"]
WalkStep = Tuple[str, List[str], List[Entry]]
# L requests a walk keeps in flight at once, in request bytes: far below any
# socket buffer, so sending a window never waits for replies nobody reads yet.
WALK_WINDOW_BYTES = 16 << 10



def join_path(directory: str, name: str) -> str:
    """A child's path; the root directory is the empty path."""
    return f"{directory}/{name}" if directory else name


def parse_hostport(text: str, default_port: int = DEFAULT_PORT) -> Tuple[str, int]:
    """HOST, HOST:PORT, [V6] or [V6]:PORT (a bare IPv6 literal also works)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host or (port and not port.isdigit()):
        raise ValueError(f"not HOST[:PORT]: {text!r}")
    return host, int(port) if port else default_port


def _windows(paths: Sequence[str]) -> Iterator[List[str]]:
    """Split paths into runs whose L requests stay within WALK_WINDOW_BYTES."""
    window: List[str] = []
    size = 0
    for path in paths:
        cost = len(protocol.format_request("L", protocol.encode_path(path)))
        if window and size + cost > WALK_WINDOW_BYTES:
            yield window
            window, size = [], 0
        window.append(path)
        size += cost
    if window:
        yield window


class Client:
    """One FTPD/1 session: connects and reads the greeting on creation; one
    method per verb, each raising ServerError for an ERR reply (the session
    goes on) and ConnectionLost when the connection is gone."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, timeout: float = 30.0,
                 ssl_context: Optional[ssl.SSLContext] = None):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = _connect(host, port, timeout, ssl_context)
        self.stream = Stream(self.sock, whole_chunks=False)
        self.closed = False
        self.greeting = self._greeting(ssl_context is not None)

    # -- plumbing ----------------------------------------------------------------

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.closed:
            try:
                self.quit()
            except ClientError:
                pass
        self.close()

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _greeting(self, tls: bool) -> str:
        where = f"{self.host}:{self.port}"
        try:
            line = self._line(protocol.MAX_LINE)
        except ProtocolViolation:
            raise ProtocolViolation(f"{where} is not an FTPD/1 server "
                                    "(its greeting is not a line)") from None
        except ConnectionLost as exc:
            # An implicit-TLS listener waits for our handshake and says nothing.
            hint = "" if tls else "; if the server uses TLS, connect with TLS (ftpc --tls)"
            raise ConnectionLost(f"no greeting from {where}: "
                                 f"{_why(exc.__cause__, self.timeout)}{hint}") from exc
        if line.startswith(b"ERR ") and _REPLY_LINE.match(line):
            self._parse(line)                    # ERR 421: raises ServerError
        if not _GREETING.match(line):
            self.close()
            said = line[:60].decode("utf-8", "replace").strip()
            raise ProtocolViolation(f"{where} is not an FTPD/1 server (it said {said!r})")
        return " ".join(protocol.parse_reply(line))

    def ensure_alive(self) -> None:
        """Raise if the server already ended an idle session (ERR 408 or 421
        waiting unread, or the connection closed); a no-op otherwise."""
        if self.closed:
            raise ConnectionLost("the connection is closed")
        pending = getattr(self.sock, "pending", None)
        waiting = bool(self.stream.buffer) or bool(pending and pending())
        if not waiting:
            readable, _, _ = select.select([self.sock], [], [], 0)
            waiting = bool(readable)
        if waiting:         # nothing is due: any line at all ends the session
            try:
                self._reply()
            finally:
                self.close()
            raise ProtocolViolation("the server sent a reply nobody asked for")

    def _send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionLost("the connection is closed (it was lost or ended earlier)")
        try:
            self.stream.send(data, self.timeout)
        except (StreamClosed, StreamTimeout) as exc:
            self.close()
            raise ConnectionLost(f"connection lost: {exc}") from exc

    def _line(self, max_len: int = 1 << 20) -> bytes:
        try:
            return self.stream.read_line(self.timeout, max_len=max_len)
        except (StreamClosed, StreamTimeout) as exc:
            self.close()
            raise ConnectionLost(f"connection lost: {_why(exc, self.timeout)}") from exc
        except LineTooLong as exc:
            self.close()
            raise ProtocolViolation("the server sent a line too long for a reply; "
                                    "the connection was closed") from exc

    def _reply(self) -> List[str]:
        return self._parse(self._line())

    def _parse(self, line: bytes) -> List[str]:
        if not _REPLY_LINE.match(line):
            # Never guess: this may be file data, and reading on would let a
            # file's contents pose as replies.
            self.close()
            shown = line[:60].decode("utf-8", "replace").strip()
            raise ProtocolViolation(f"not an FTPD/1 reply: {shown!r}; the connection "
                                    "was closed")
        try:
            return protocol.parse_reply(line)
        except ProtocolError as exc:
            if exc.code in protocol.CLOSING_CODES:
                self.close()
            raise ServerError(exc.code, exc.text) from None

    def request(self, verb: str, *fields: str) -> List[str]:
        """Send one request (fields already on-the-wire) and return the OK fields."""
        self._send(_format(verb, *fields))
        return self._reply()

    def _numbers(self, fields: List[str], count: int) -> List[int]:
        if len(fields) < count or not all(f.isdigit() for f in fields[:count]):
            self.close()
            raise ProtocolViolation(f"malformed reply fields {fields[:3]!r}; "
                                    "the connection was closed")
        return [int(f) for f in fields[:count]]

    # -- verbs ---------------------------------------------------------------------

    def list(self, path: Optional[str] = None) -> List[Entry]:
        """Entries of a directory (the session's root without `path`),
        sorted by name; for a file's path, that file's row alone. 404 if
        the path does not exist, 413 if the directory has more entries
        than the server lists."""
        fields = [protocol.encode_path(path)] if path else []
        self._send(protocol.format_request("L", *fields))
        return self._read_listing()

    def _read_listing(self) -> List[Entry]:
        [count] = self._numbers(self._reply(), 1)
        rows = [self._line() for _ in range(count)]
        try:
            return [protocol.parse_entry(row) for row in rows]
        except ProtocolError as exc:
            self.close()        # a row we cannot read: the listing's framing is suspect
            raise ProtocolViolation(f"malformed listing row ({exc.text}); "
                                    "the connection was closed") from None

    def mkdir(self, path: str) -> None:
        """Create one directory. 404 if its parent is missing, 409 if the
        path exists, 403 without write access."""
        self.request("M", protocol.encode_path(path))

    def delete(self, path: str) -> None:
        """Remove a file or an empty directory. 404 if missing, 409 for a
        directory that is not empty, 403 without write access or where the
        server keeps what is stored (overwrite = no)."""
        self.request("D", protocol.encode_path(path))

    def rename(self, source: str, target: str) -> None:
        """Move a file or directory to `target` in one atomic step. 404 if
        `source` or the parent of `target` is missing; 409 if `target` is
        a directory or lies inside `source`; replacing a file is 403 where
        the server does not overwrite."""
        self.request("R", protocol.encode_path(source), protocol.encode_path(target))

    def walk(self, path: Optional[str] = None,
             onerror: Optional[Callable[[ServerError], None]] = None) -> Iterator[WalkStep]:
        """Yield (dirpath, dirnames, files) for the directory `path` (the
        root without it: dirpath "") and every directory below it, parents
        before children, like os.walk: dirnames are the sub-directories'
        names (remove some in place to skip them), files the file Entries.

        The order is breadth-first: each level's L requests travel
        pipelined, one round trip per window instead of one per directory.
        An error on `path` itself is raised (409 if it is a file, as for
        any request that needs a directory); a sub-directory that fails
        (say, removed meanwhile: 404) goes to onerror and is skipped, or
        ends the walk with its ServerError when there is no onerror."""
        top = path or ""
        entries = self.list(path)
        if path and self._names_a_file(path, entries):
            raise ServerError(protocol.CONFLICT, f"not a directory: {path}")
        level: Iterable[Tuple[str, List[Entry]]] = [(top, entries)]
        while True:
            below: List[str] = []
            for dirpath, found in level:
                dirnames = [entry.name for entry in found if entry.is_dir]
                yield dirpath, dirnames, [entry for entry in found if not entry.is_dir]
                below += [join_path(dirpath, name) for name in dirnames]
            if not below:
                return
            level = self._list_all(below, onerror)

    def _names_a_file(self, path: str, entries: List[Entry]) -> bool:
        """L answers a file's path with its one row, which also looks like a
        directory holding a file of its own name: the parent tells them apart."""
        parent, _, base = path.rpartition("/")
        if len(entries) != 1 or entries[0].is_dir or entries[0].name != base:
            return False
        return any(e.name == base and not e.is_dir for e in self.list(parent or None))

    def _list_all(self, paths: Sequence[str], onerror: Optional[Callable[[ServerError], None]]
                  ) -> Iterator[Tuple[str, List[Entry]]]:
        """(path, entries) for each directory, listed a window at a time."""
        for window in _windows(paths):
            for path, outcome in self._list_window(window):
                if isinstance(outcome, list):
                    yield path, outcome
                elif onerror is None:
                    raise outcome
                else:
                    onerror(outcome)

    def _list_window(self, paths: Sequence[str]
                     ) -> List[Tuple[str, Union[List[Entry], ServerError]]]:
        """Send one L per path at once, then read every reply, so a failure
        never leaves replies unread on the connection."""
        self._send(b"".join(protocol.format_request("L", protocol.encode_path(p))
                            for p in paths))
        outcomes: List[Tuple[str, Union[List[Entry], ServerError]]] = []
        for path in paths:
            try:
                outcomes.append((path, self._read_listing()))
            except ServerError as exc:
                if self.closed:
                    raise
                outcomes.append((path, exc))
        return outcomes

    def hash(self, name: str) -> Tuple[int, str]:
        """The size and SHA-256 of a stored file, as the server has it now."""
        return self._hash_reply(self.request("H", protocol.encode_path(name)))

    def _hash_reply(self, fields: List[str]) -> Tuple[int, str]:
        [size] = self._numbers(fields, 1)
        if len(fields) != 2 or not re.fullmatch(r"[0-9a-f]{64}", fields[1]):
            self.close()
            raise ProtocolViolation(f"malformed H reply {fields[:3]!r}")
        return size, fields[1]

    def login(self, user: str, password: str) -> str:
        """A: authenticate; returns the user name the server confirms (401 if wrong)."""
        fields = self.request("A", protocol.encode_text(user), protocol.encode_text(password))
        return protocol.decode_text(fields[0].encode("utf-8"))

    def quit(self) -> None:
        """Q: end the session politely, then close the connection."""
        try:
            self.request("Q")
        finally:
            self.close()

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
        self.receive(Hashing(handle, digest), count, progress)
        got = (offset + count, digest.hexdigest())
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
        self._send(_format("H", field) + _format("G", field, *([str(offset)] if offset else [])))
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

    def receive(self, handle: BinaryIO, count: int, progress: Progress = None) -> None:
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
            raise ConnectionLost(f"download cut short: {_why(exc, self.timeout)}") from exc
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
            announced = self._send_hashed(handle, start, size, progress)
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

    def _send_hashed(self, handle: BinaryIO, start: int, size: int,
                     progress: Progress) -> str:
        """Send `size` bytes of the file, hashing them on the way, then the
        digest line (`P name size -`); returns the digest sent. Each chunk
        is read from disk once, to be hashed; sendfile then sends it from
        the page cache. A file changed meanwhile fails the digest (422)."""
        hasher = ReadAheadHasher(handle.fileno(), start, size)
        try:
            sent = 0
            while sent < size:
                count = hasher.next_chunk()
                if not count:
                    self.close()        # the server must not commit a short upload
                    raise ConnectionLost("local file shrank during upload")
                self._send_range(handle, start + sent, count)
                sent += count
                if progress:
                    progress(count)
            hex_digest = hasher.hexdigest()
        finally:
            hasher.stop()
        self._send(hex_digest.encode("ascii") + b"\n")
        return hex_digest

    def _send_range(self, handle: BinaryIO, offset: int, count: int) -> None:
        try:
            self.sock.settimeout(self.timeout)
            if self.sock.sendfile(handle, offset, count) != count:
                self.close()        # the server must not commit a short upload
                raise ConnectionLost("local file shrank during upload")
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
                    self.close()        # the server must not commit a short upload
                    raise ConnectionLost("local file shrank during upload")
                sent += done
                if progress:
                    progress(done)
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"upload cut short: {exc}") from exc


# -- local helpers -------------------------------------------------------------------

def _connect(host: str, port: int, timeout: float,
             ssl_context: Optional[ssl.SSLContext]) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
    if ssl_context is None:
        return sock
    try:
        return ssl_context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
    except ssl.SSLError as exc:
        # A plaintext server greets at once; its "OK FTPD/1" is no TLS record.
        sock.close()
        raise ConnectionLost(f"cannot connect to {host}:{port} with TLS: the server does "
                             f"not speak TLS ({exc.reason or exc}); connect without it") from exc
    except OSError as exc:
        sock.close()
        raise ConnectionLost(f"cannot connect to {host}:{port}: TLS handshake failed: "
                             f"{_why(exc, timeout)}") from exc


def _why(exc: Optional[BaseException], timeout: float) -> str:
    """Words for a stream failure; a timeout's exception has none of its own."""
    if isinstance(exc, (StreamTimeout, socket.timeout)):
        return f"timed out (nothing arrived for {timeout:g} s)"
    return str(exc) or type(exc).__name__


def _format(verb: str, *fields: str) -> bytes:
    try:
        return protocol.format_request(verb, *fields)
    except ProtocolError as exc:
        raise LocalError(f"cannot send {verb}: {exc.text} (a name or field is too long)") from exc
