"""The Python client API for FTPD/1 (used by ftpc and the tests).

    with Client("127.0.0.1", 8021) as c:
        for entry in c.list(): ...
        c.put("local.bin", "remote.bin")
        c.get("remote.bin", "copy.bin")
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from dataclasses import dataclass
from typing import BinaryIO, Callable, List, Optional, Tuple, Union

from ftpd import protocol
from ftpd.protocol import DEFAULT_PORT, ProtocolError
from ftpd.stream import Stream, StreamClosed, StreamTimeout

Progress = Optional[Callable[[int], None]]
HASH_CHUNK = 1 << 20


class ClientError(Exception):
    """Base of everything the client raises."""


class ServerError(ClientError):
    """The server answered ERR <code> <text>."""

    def __init__(self, code: int, text: str):
        super().__init__(f"ERR {code} {text}")
        self.code = code
        self.text = text


class ConnectionLost(ClientError):
    """Could not connect, or the connection broke or timed out."""


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    mtime: int


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


def _digest_loop(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


class Client:
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
        self._send(protocol.format_request(verb, *fields))
        return self._reply()

    # -- verbs ---------------------------------------------------------------------

    def list(self) -> List[Entry]:
        count = int(self.request("L")[0])
        entries = []
        for _ in range(count):
            size, mtime, name = protocol.parse_entry(self._line())
            entries.append(Entry(name, size, mtime))
        return entries

    def hash(self, name: str) -> Tuple[int, str]:
        size, digest = self.request("H", protocol.encode_name(name))
        return int(size), digest

    def login(self, user: str, password: str) -> str:
        fields = self.request("A", protocol.encode_text(user), protocol.encode_text(password))
        return protocol.decode_text(fields[0].encode("utf-8"))

    def quit(self) -> None:
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
        fields = [protocol.encode_name(name)] + ([str(offset)] if offset else [])
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
            announce_digest: bool = True) -> Tuple[int, str]:
        """Upload a local file; the server verifies the announced SHA-256."""
        name = name or os.path.basename(path)
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest = _digest_loop(handle) if announce_digest else None
            handle.seek(0)       # TLS sendfile reads from the file position
            fields = [protocol.encode_name(name), str(size)] + ([digest] if digest else [])
            self.request("P", *fields)          # OK ready, or ServerError
            self._send_file(handle, size, progress)
        stored_size, stored_digest = self._reply()
        if digest and stored_digest != digest:
            raise ServerError(protocol.DIGEST_MISMATCH, "server stored a different digest")
        return int(stored_size), stored_digest

    def _send_file(self, handle: BinaryIO, size: int, progress: Progress) -> None:
        sent = 0
        try:
            self.sock.settimeout(self.timeout)
            while sent < size:
                # small steps only to let a progress bar move
                step = min(size - sent, 1 << 20) if progress else size - sent
                done = self.sock.sendfile(handle, sent, step)
                if not done:
                    raise ConnectionLost("local file shrank during upload")
                sent += done
                if progress:
                    progress(done)
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"upload cut short: {exc}") from exc
