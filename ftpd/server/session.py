"""One client's session: read requests in order, dispatch, reply.

Knows nothing of forking or signals: whoever starts it hands it a socket,
the settings, the library and a `stop` object (fileno() + is_set()) that
tells it the server is draining.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from ftpd import __version__, protocol
from ftpd.server import logs
from ftpd.server.library import Library, LibraryError
from ftpd.protocol import (AUTH_REQUIRED, BAD_OFFSET, BAD_REQUEST, FORBIDDEN, TIMEOUT,
                           UNAVAILABLE, ProtocolError)
from ftpd.stream import Interrupted, LineTooLong, Stream, StreamClosed, StreamTimeout

log = logging.getLogger("ftpd.session")

ACCESS_LEVELS = {"none": 0, "read": 1, "write": 2}
LINGER_SECONDS = 1.0      # how long a closing session drains the client's input
LINGER_READS = 16
SENDFILE_STEP = 1 << 20   # sendfile in steps so the process title shows progress
Authenticator = Callable[[str, str], Optional[str]]   # -> access level or None


GREETING = protocol.ok(protocol.PROTOCOL, f"ftpd {__version__} ready")


class CloseSession(Exception):
    """Reply (if any) has been sent; the connection must close now."""


@dataclass(frozen=True)
class Command:
    parse: Callable[[Sequence[bytes]], Tuple[Any, ...]]
    run: Callable[..., None]
    min_args: int
    max_args: int
    needs: Optional[str]          # access level the command requires


def _no_args(args: Sequence[bytes]) -> Tuple[Any, ...]:
    return ()


def _name_arg(args: Sequence[bytes]) -> Tuple[Any, ...]:
    return (protocol.decode_name(args[0]),)


def _get_args(args: Sequence[bytes]) -> Tuple[Any, ...]:
    offset = protocol.parse_number(args[1]) if len(args) > 1 else 0
    return protocol.decode_name(args[0]), offset


def _put_args(args: Sequence[bytes]) -> Tuple[Any, ...]:
    digest = protocol.parse_digest(args[2]) if len(args) > 2 else None
    return protocol.decode_name(args[0]), protocol.parse_number(args[1]), digest


def _auth_args(args: Sequence[bytes]) -> Tuple[Any, ...]:
    return protocol.decode_text(args[0]), protocol.decode_text(args[1])


class Session:
    def __init__(self, sock: socket.socket, peer: str, settings: Any, library: Library,
                 stop: Any, authenticate: Optional[Authenticator] = None,
                 report: Callable[[str], None] = lambda state: None):
        self.sock = sock
        self.peer = peer
        self.settings = settings
        self.library = library
        self.stop = stop
        self.authenticate = authenticate
        self.login_failures = 0
        self.report = report
        self.stream = Stream(sock)
        self.user: Optional[str] = None
        self.access = settings.access.anonymous
        self.bytes_in = 0
        self.bytes_out = 0
        self.shown_percent = -1

    @property
    def who(self) -> str:
        return self.user or "anonymous"

    # -- the loop --------------------------------------------------------------

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.send(GREETING)    # first: connect-to-greeting latency is what clients feel
            log.info("session start %s", self.peer)
            while True:
                self.serve_one()
        except CloseSession:
            self.linger()
        except (StreamClosed, StreamTimeout):
            pass   # the client went away or stopped reading our replies
        finally:
            log.info("session end %s user=%s duration=%.3fs in=%d out=%d", self.peer,
                     self.who, time.monotonic() - started, self.bytes_in, self.bytes_out)

    def linger(self) -> None:
        """Close our side first and drain what the client still sends, briefly:
        closing with unread input makes the kernel send a reset, which can
        destroy our last reply (ERR 421, ERR 408, OK bye) before it is read."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            for _ in range(LINGER_READS):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.sock.settimeout(remaining)
                if not self.sock.recv(65536):
                    break
        except (OSError, ValueError):
            pass            # reset, timeout, or a TLS layer that will not: done

    def serve_one(self) -> None:
        if self.stop.is_set():
            self.close_with(UNAVAILABLE, "server shutting down")
        self.report("idle")
        try:
            line = self.stream.read_line(self.settings.server.idle_timeout, self.stop.fileno())
        except Interrupted:
            return                       # loop back: stop.is_set() decides
        except StreamTimeout:
            self.close_with(TIMEOUT, "idle timeout")
        except LineTooLong:
            self.close_with(BAD_REQUEST, "line too long")
        try:
            self.dispatch(protocol.parse_request(line))
        except (ProtocolError, LibraryError) as exc:
            self.send(protocol.err(exc.code, exc.text))
            if exc.code in protocol.CLOSING_CODES:
                raise CloseSession() from exc

    def dispatch(self, request: protocol.Request) -> None:
        command = COMMANDS.get(request.verb)
        if command is None:
            raise ProtocolError(BAD_REQUEST, "unknown command")
        if not command.min_args <= len(request.args) <= command.max_args:
            raise ProtocolError(BAD_REQUEST, "wrong number of fields")
        parsed = command.parse(request.args)
        if command.needs is not None:
            self.require(command.needs)
        command.run(self, *parsed)

    def require(self, level: str) -> None:
        if ACCESS_LEVELS[self.access] >= ACCESS_LEVELS[level]:
            return
        if self.user is None:        # logging in is what would help
            raise ProtocolError(AUTH_REQUIRED, "login required")
        raise ProtocolError(FORBIDDEN, f"account {self.user} may not {level}")

    def send(self, data: bytes) -> None:
        self.stream.send(data, self.settings.server.data_timeout)

    def close_with(self, code: int, text: str) -> None:
        try:
            self.send(protocol.err(code, text))
        finally:
            raise CloseSession()

    # -- commands --------------------------------------------------------------

    def do_list(self) -> None:
        entries = self.library.list()
        lines = [protocol.ok(len(entries))]
        lines += [protocol.format_entry(e.size, e.mtime, e.name) for e in entries]
        self.send(b"".join(lines))

    def do_hash(self, name: str) -> None:
        self.report(f"H {protocol.encode_name(name)}")
        size, digest = self.library.hash(name)
        self.send(protocol.ok(size, digest))

    def do_quit(self) -> None:
        self.send(protocol.ok("bye"))
        raise CloseSession()

    def do_auth(self, user: str, password: str) -> None:
        access = self.authenticate(user, password) if self.authenticate else None
        if access is None:
            self.login_failed(user)
        self.user, self.access = user, access
        log.info("login %s from %s", user, self.peer)
        self.send(protocol.ok(protocol.encode_text(user)))

    def login_failed(self, user: str) -> None:
        """Log (fail2ban format, see SECURITY.md), wait, then 401, or 421 at the limit."""
        self.login_failures += 1
        access = self.settings.access
        address = self.peer.rsplit(":", 1)[0].strip("[]")
        log.warning("login failed: address=%s user=%s failures=%d", address,
                    protocol.encode_text(user)[:100], self.login_failures)
        # Waiting on the stop fd: a draining server need not wait out the delay.
        waiter = select.poll()           # poll, not select: fds may exceed 1024
        waiter.register(self.stop.fileno(), select.POLLIN)
        waiter.poll(access.login_failure_delay * 1000)
        if self.login_failures >= access.max_login_failures:
            log.warning("too many failed logins: address=%s closing", address)
            raise ProtocolError(UNAVAILABLE, "too many failed logins")
        raise ProtocolError(AUTH_REQUIRED, "login failed")

    def do_get(self, name: str, offset: int) -> None:
        fd, size = self.library.open_read(name)
        with os.fdopen(fd, "rb", buffering=0) as handle:
            if offset > size:
                raise ProtocolError(BAD_OFFSET, f"offset beyond end of file ({size} bytes)")
            count = size - offset
            self.send(protocol.ok(count))
            started = time.monotonic()
            sent, failure = self._send_range(handle, name, offset, count)
        self.log_transfer("G", name, sent, started, None, failure or "ok")
        if failure:   # the client must see a cut, never a short file
            raise CloseSession()

    def _send_range(self, handle: Any, name: str, offset: int,
                    count: int) -> Tuple[int, Optional[str]]:
        """sendfile `count` bytes, in steps that move the title's percentage;
        (bytes sent, failure or None)."""
        sent = 0

        def advance(total: int) -> None:
            nonlocal sent
            self.bytes_out += total - sent
            sent = total
            self.progress("G", name, sent, count)

        self.progress("G", name, 0, count)
        try:
            done = self.stream.sendfile(handle, offset, count,
                                        self.settings.server.data_timeout, advance,
                                        max(SENDFILE_STEP, count // 100))
        except (StreamClosed, StreamTimeout) as exc:
            return sent, f"failed: {exc or 'stalled'}"
        if done < count:
            return done, "failed: short file"      # it shrank under us
        return done, None

    def do_put(self, name: str, size: int, expected: Optional[str]) -> None:
        self.library.check_upload(name, size)
        upload = self.library.begin_upload(name)
        started = time.monotonic()
        try:
            self.send(protocol.ok("ready"))
            failure = self._receive_into(upload, name, size)
            if failure is None:
                digest = upload.commit(expected)
                self.log_transfer("P", name, size, started, digest, "ok")
                self.send(protocol.ok(size, digest))
                return
            raise failure
        except LibraryError as exc:
            self.log_transfer("P", name, upload.size, started, None, f"failed: {exc.text}")
            raise
        except StreamTimeout as exc:
            self.log_transfer("P", name, upload.size, started, None, "failed: stalled")
            self.close_with(TIMEOUT, "data timeout")
        except StreamClosed as exc:
            self.log_transfer("P", name, upload.size, started, None, f"failed: {exc}")
            raise CloseSession() from exc
        finally:
            upload.abort()

    def _receive_into(self, upload: Any, name: str, size: int) -> Optional[LibraryError]:
        """Read all `size` bytes; after a write error keep draining, so the
        session stays in step with the client, and return that error."""
        failure = None
        done = 0
        self.progress("P", name, 0, size)
        for chunk in self.stream.iter_exact(size, self.settings.server.data_timeout):
            self.bytes_in += len(chunk)
            done += len(chunk)
            self.progress("P", name, done, size)
            if failure is None:
                try:
                    upload.write(chunk)
                except LibraryError as exc:
                    failure = exc
                    upload.abort()
        return failure

    def progress(self, verb: str, name: str, done: int, total: int) -> None:
        """Report `verb name NN%` whenever the whole percentage changes."""
        percent = done * 100 // total if total else 100
        if done == 0:
            self.shown_percent = -1
        if percent != self.shown_percent:
            self.shown_percent = percent
            self.report(f"{verb} {protocol.encode_name(name)} {percent}%")

    def log_transfer(self, verb: str, name: str, size: int, started: float,
                     digest: Optional[str], result: str) -> None:
        logs.log_transfer(self.peer, self.who, verb, name, size,
                          time.monotonic() - started, digest, result)


# The one dispatch table: verb -> (parse fields, handler, arity, access needed).
COMMANDS: Dict[str, Command] = {
    "L": Command(_no_args, Session.do_list, 0, 0, "read"),
    "G": Command(_get_args, Session.do_get, 1, 2, "read"),
    "P": Command(_put_args, Session.do_put, 2, 3, "write"),
    "H": Command(_name_arg, Session.do_hash, 1, 1, "read"),
    "A": Command(_auth_args, Session.do_auth, 2, 2, None),
    "Q": Command(_no_args, Session.do_quit, 0, 0, None),
}
