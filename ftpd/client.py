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
import socket
import ssl
from typing import (BinaryIO, Callable, Iterable, Iterator, List, Literal, Optional,
                    Sequence, Tuple, Union)

from ftpd import protocol
from ftpd.filehash import ReadAheadHasher, file_digest
from ftpd.protocol import DEFAULT_PORT, Entry, ProtocolError
from ftpd.stream import Stream, StreamClosed, StreamTimeout

__all__ = ["Client", "ClientError", "ConnectionLost", "DigestMode", "Entry", "ServerError",
           "join_path", "parse_hostport"]

Progress = Optional[Callable[[int], None]]
# How a put proves its data arrived intact (protocol.md, P): "announce" hashes
# the file first and sends the digest in the request, "stream" hashes while
# sending and sends the digest after the bytes (one read of the file), "none"
# lets the server hash what it got and only reports it.
DigestMode = Literal["announce", "stream", "none"]
WalkStep = Tuple[str, List[str], List[Entry]]
# L requests a walk keeps in flight at once, in request bytes: far below any
# socket buffer, so sending a window never waits for replies nobody reads yet.
WALK_WINDOW_BYTES = 16 << 10


class ClientError(Exception):
    """Base of everything the client raises."""


class ServerError(ClientError):
    """The server answered ERR <code> <text> (or the client saw the very
    condition the protocol gives that code, e.g. walk() on a file: 409)."""

    def __init__(self, code: int, text: str):
        super().__init__(f"ERR {code} {text}")
        self.code = code
        self.text = text


class ConnectionLost(ClientError):
    """Could not connect, or the connection broke or timed out."""


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
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
        self.sock = sock
        self.stream = Stream(sock, whole_chunks=False)
        self.closed = False
        self.greeting = " ".join(self._reply())

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

    def _send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionLost("not connected")
        try:
            self.stream.send(data, self.timeout)
        except (StreamClosed, StreamTimeout) as exc:
            self.close()
            raise ConnectionLost(f"connection lost: {exc}") from exc

    def _line(self) -> bytes:
        try:
            return self.stream.read_line(self.timeout, max_len=1 << 20)
        except (StreamClosed, StreamTimeout) as exc:
            self.close()
            raise ConnectionLost(f"connection lost: {exc or 'timed out'}") from exc

    def _reply(self) -> List[str]:
        try:
            return protocol.parse_reply(self._line())
        except ProtocolError as exc:
            if exc.code in protocol.CLOSING_CODES:
                self.close()
            raise ServerError(exc.code, exc.text) from None

    def request(self, verb: str, *fields: str) -> List[str]:
        """Send one request (fields already on-the-wire) and return the OK fields."""
        self._send(protocol.format_request(verb, *fields))
        return self._reply()

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
        count = int(self._reply()[0])
        rows = [self._line() for _ in range(count)]
        try:
            return [protocol.parse_entry(row) for row in rows]
        except ProtocolError as exc:
            raise ServerError(exc.code, exc.text) from None

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
        size, digest = self.request("H", protocol.encode_path(name))
        return int(size), digest

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

    def get(self, name: str, dest: Union[str, BinaryIO], offset: int = 0,
            progress: Progress = None) -> int:
        """Download from `offset` into a path or a binary file; returns bytes."""
        count = self.start_get(name, offset)
        if not isinstance(dest, str):
            self.receive(dest, count, progress)
            return count
        with open(dest, "r+b" if offset else "wb") as handle:
            handle.seek(offset)
            self.receive(handle, count, progress)
        return count

    def start_get(self, name: str, offset: int = 0) -> int:
        """Send G and return the byte count; the caller must then receive() them."""
        fields = [protocol.encode_path(name)] + ([str(offset)] if offset else [])
        return int(self.request("G", *fields)[0])

    def receive(self, handle: BinaryIO, count: int, progress: Progress = None) -> None:
        """Read exactly `count` file bytes into anything with write()."""
        try:
            for chunk in self.stream.iter_exact(count, self.timeout):
                handle.write(chunk)
                if progress:
                    progress(len(chunk))
        except (StreamClosed, StreamTimeout) as exc:
            self.close()
            raise ConnectionLost(f"download cut short: {exc or 'timed out'}") from exc

    def put(self, path: str, name: Optional[str] = None, progress: Progress = None,
            digest: DigestMode = "announce", mtime: Optional[int] = None) -> Tuple[int, str]:
        """Upload the local file `path` as `name` (a remote path; default:
        the local base name); returns the (size, sha256) the server stored.

        `digest` picks how the server checks the data (DigestMode above);
        with "announce" or "stream" it stores nothing unless the digest
        matches (else ServerError 422). `mtime` (seconds since the epoch)
        becomes the stored file's modification time; it needs a digest
        mode other than "none". The parent directory must exist (404) and
        `name` must not be a directory (409)."""
        if digest not in ("announce", "stream", "none"):
            raise ValueError(f"digest must be announce, stream or none, not {digest!r}")
        if mtime is not None and digest == "none":
            raise ValueError("mtime needs a digest: use digest='announce' or 'stream'")
        remote = protocol.encode_path(name or os.path.basename(path))
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            announced = file_digest(handle) if digest == "announce" else None
            handle.seek(0)       # TLS sendfile reads from the file position
            fields = [remote, str(size)]
            if digest != "none":
                fields.append(announced or "-")
            fields += [str(mtime)] if mtime is not None else []
            self.request("P", *fields)          # OK ready, or ServerError
            if digest == "stream":
                announced = self._send_hashed(handle, size, progress)
            else:
                self._send_file(handle, size, progress)
        stored_size, stored_digest = self._reply()
        if announced and stored_digest != announced:
            raise ServerError(protocol.DIGEST_MISMATCH, "server stored a different digest")
        return int(stored_size), stored_digest

    def _send_hashed(self, handle: BinaryIO, size: int, progress: Progress) -> str:
        """Send `size` bytes of the file, hashing them on the way, then the
        digest line (`P name size -`); returns the digest sent. Each chunk
        is read from disk once, to be hashed; sendfile then sends it from
        the page cache. A file changed meanwhile fails the digest (422)."""
        hasher = ReadAheadHasher(handle.fileno(), size)
        try:
            sent = 0
            while sent < size:
                count = hasher.next_chunk()
                if not count:
                    self.close()        # the server must not commit a short upload
                    raise ConnectionLost("local file shrank during upload")
                self._send_range(handle, sent, count)
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

    def _send_file(self, handle: BinaryIO, size: int, progress: Progress) -> None:
        sent = 0
        try:
            self.sock.settimeout(self.timeout)
            while sent < size:
                # small steps only to let a progress bar move
                step = min(size - sent, 1 << 20) if progress else size - sent
                done = self.sock.sendfile(handle, sent, step)
                if not done:
                    self.close()        # the server must not commit a short upload
                    raise ConnectionLost("local file shrank during upload")
                sent += done
                if progress:
                    progress(done)
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"upload cut short: {exc}") from exc
