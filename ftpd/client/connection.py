"""The connection under every Client: connect and greet, send requests,
read replies that are whole FTPD/1 lines, and close at the first sign of
being out of step (a reply that is not one, numbers that are not numbers),
so payload is never parsed as a reply."""

from __future__ import annotations

import re
import select
import socket
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Protocol, Sequence, Tuple, TypeVar

from ftpd import protocol
from ftpd.client.errors import (ClientError, ConnectionLost, LocalError, ProtocolViolation,
                                ServerError)
from ftpd.protocol import DEFAULT_PORT, Entry, ProtocolError
from ftpd.stream import LineTooLong, Stream, StreamClosed, StreamTimeout

if TYPE_CHECKING:       # imported when TLS is used: 9 ms of every plain ftpc start
    import ssl

Progress = Optional[Callable[[int], None]]
_C = TypeVar("_C", bound="Connection")


class Writer(Protocol):
    """Where received bytes go: a binary file, or anything with write()."""

    def write(self, data: "bytes | memoryview", /) -> Any: ...
# A whole reply line: anything else where a reply is due means we are out of
# step (or not talking to FTPD/1), and the connection cannot be trusted.
_REPLY_LINE = re.compile(rb"\A(?:OK(?: [^\n]*)?|ERR [0-9]{3}(?: [^\n]*)?)\n\Z")
_GREETING = re.compile(rb"\AOK FTPD/1(?: [^\n]*)?\n\Z")
# The most rows list() accepts: ten times the server's default listing limit
# ([files] max_entries_per_listing). Rows are parsed one at a time, so memory
# grows with the rows kept (each name at most 255 bytes), never with a count
# a server merely announces: OK 10000000 is refused before any row is read.
MAX_LISTING_ROWS = 1_000_000


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


class Connection:
    """One FTPD/1 connection: the greeting, framing and the one-line verbs."""


    def __init__(self, host: str, port: int = DEFAULT_PORT, timeout: float = 30.0,
                 ssl_context: Optional[ssl.SSLContext] = None):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = _connect(host, port, timeout, ssl_context)
        self.stream = Stream(self.sock, whole_chunks=False)
        self.closed = False
        self.greeting = self._greeting(ssl_context is not None)

    # -- plumbing ----------------------------------------------------------------

    def __enter__(self: _C) -> _C:
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
                                 f"{stream_failure(exc.__cause__, self.timeout)}{hint}") from exc
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
            raise ConnectionLost(f"connection lost: {stream_failure(exc, self.timeout)}") from exc
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
            raise self._violation(f"not an FTPD/1 reply: {_shown(line)}")
        try:
            return protocol.parse_reply(line)
        except ProtocolError as exc:
            if exc.code in protocol.CLOSING_CODES:
                self.close()
            raise ServerError(exc.code, exc.text) from None

    def request(self, verb: str, *fields: str) -> List[str]:
        """Send one request (fields already on-the-wire) and return the OK fields."""
        self._send(encode_request(verb, *fields))
        return self._reply()

    def _violation(self, what: str) -> ProtocolViolation:
        """Close (whatever follows cannot be trusted) and say what the server sent."""
        self.close()
        return ProtocolViolation(f"the server broke the protocol: {what}; "
                                 "the connection was closed")

    def _numbers(self, fields: List[str], count: int) -> List[int]:
        # protocol.parse_number, not int(): ASCII digits only ('²'.isdigit()
        # is true) and at most 19 of them (int() of 5000 digits raises).
        try:
            if len(fields) < count:
                raise ProtocolError(protocol.BAD_REQUEST, "missing number")
            return [protocol.parse_number(f.encode("utf-8", "replace")) for f in fields[:count]]
        except ProtocolError:
            raise self._violation(f"bad numbers in reply fields {_fields(fields)}") from None

    def _entry(self, line: bytes) -> Entry:
        try:
            return protocol.parse_entry(line)
        except ProtocolError as exc:
            raise self._violation(f"bad listing row {_shown(line)} ({exc.text})") from None

    def _read_listing(self) -> List[Entry]:
        count = self._listing_count(self._reply())
        return [self._entry(self._line(protocol.MAX_LINE)) for _ in range(count)]

    def _listing_count(self, fields: List[str]) -> int:
        [count] = self._numbers(fields, 1)
        if count > MAX_LISTING_ROWS:
            raise self._violation(f"a listing of {count} rows announced, more than this "
                                  f"client accepts ({MAX_LISTING_ROWS})")
        return count

    # -- verbs ---------------------------------------------------------------------

    def send_requests(self, requests: Sequence[Tuple[str, ...]]) -> None:
        """Send several requests at once (pipelining, protocol.md §1); the
        caller reads each reply in order with read_reply() (and a G's bytes
        with receive()). Keep the batch small: nothing is read meanwhile."""
        self._send(b"".join(encode_request(verb, *fields) for verb, *fields in requests))

    def read_reply(self) -> List[str]:
        """The next reply's OK fields (ServerError for ERR)."""
        return self._reply()

    def read_count(self) -> int:
        """The next reply, a byte count (a G's OK n)."""
        return self._numbers(self._reply(), 1)[0]

    def hash_reply(self, fields: List[str]) -> Tuple[int, str]:
        """An H reply's OK fields (from batch) -> (size, sha256)."""
        return self._hash_reply(fields)

    def hash(self, name: str) -> Tuple[int, str]:
        """The size and SHA-256 of a stored file, as the server has it now."""
        return self._hash_reply(self.request("H", protocol.encode_path(name)))

    def _hash_reply(self, fields: List[str]) -> Tuple[int, str]:
        [size] = self._numbers(fields, 1)
        if len(fields) != 2 or not re.fullmatch(r"[0-9a-f]{64}", fields[1]):
            raise self._violation(f"malformed H reply {_fields(fields)}")
        return size, fields[1]

    def login(self, user: str, password: str) -> str:
        """A: authenticate; returns the user name the server confirms (401 if wrong)."""
        fields = self.request("A", protocol.encode_text(user), protocol.encode_text(password))
        try:
            return protocol.decode_text(fields[0].encode("utf-8"))
        except (IndexError, ProtocolError):
            raise self._violation(f"malformed A reply {_fields(fields)}") from None

    def quit(self) -> None:
        """Q: end the session politely, then close the connection."""
        try:
            self.request("Q")
        finally:
            self.close()


def _connect(host: str, port: int, timeout: float,
             ssl_context: Optional[ssl.SSLContext]) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
    if ssl_context is None:
        return sock
    import ssl          # loaded already: whoever made the context imported it
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
                             f"{stream_failure(exc, timeout)}") from exc


def _shown(line: bytes) -> str:
    """A line the server sent, quoted and cut short; repr() escapes every
    control character, so it is safe to print."""
    return repr(line[:60].decode("utf-8", "replace").strip())


def _fields(fields: List[str]) -> str:
    return repr([field[:40] for field in fields[:3]])


def stream_failure(exc: Optional[BaseException], timeout: float) -> str:
    """Words for a stream failure; a timeout's exception has none of its own."""
    if isinstance(exc, (StreamTimeout, socket.timeout)):
        return f"timed out (nothing arrived for {timeout:g} s)"
    return str(exc) or type(exc).__name__


def encode_request(verb: str, *fields: str) -> bytes:
    try:
        return protocol.format_request(verb, *fields)
    except ProtocolError as exc:
        raise LocalError(f"cannot send {verb}: {exc.text} (a name or field is too long)") from exc
