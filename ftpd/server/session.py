"""One client's session: read requests in order, dispatch, reply.

Knows nothing of forking or signals: whoever starts it hands it a socket,
the settings, the library and a `stop` object (fileno() + is_set()) that
tells it the server is draining. The session sees the library through a
view rooted at its home: `[access] anonymous_home` until a login, then the
account's home (made at the first login when missing).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, NoReturn, Optional, Sequence, Tuple

from ftpd import __version__, protocol
from ftpd.server import logs, requests, resume
from ftpd.server.requests import STREAMED
from ftpd.config import Config
from ftpd.server.library import Library, LibraryError
from ftpd.server.auth import Login
from ftpd.server.reports import SessionEvents
from ftpd.server.share import Share
from ftpd.protocol import (AUTH_REQUIRED, BAD_OFFSET, BAD_REQUEST, FORBIDDEN,
                           INTERNAL, TIMEOUT, UNAVAILABLE, ProtocolError)
from ftpd.stream import Interrupted, LineTooLong, Stream, StreamClosed, StreamTimeout

log = logging.getLogger("ftpd.session")

ACCESS_LEVELS = {"none": 0, "read": 1, "write": 2}
LINGER_SECONDS = 1.0      # how long a closing session drains the client's input
LINGER_READS = 16
SENDFILE_STEP = 1 << 20   # sendfile in steps so the process title shows progress
LISTING_BATCH = 512       # listing rows formatted and sent per write
# user, password -> (access level, home below the library) or None
Authenticator = Callable[[str, str], Optional[Login]]
Path = Tuple[str, ...]


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


class Session:
    def __init__(self, sock: socket.socket, peer: str, settings: Config, library: Library,
                 stop: Any, authenticate: Optional[Authenticator] = None,
                 report: Callable[[str], None] = lambda state: None,
                 spoke: Callable[[], None] = lambda: None,
                 connected: Optional[float] = None,
                 events: Optional[SessionEvents] = None):
        self.sock = sock
        self.peer = peer
        self.settings = settings
        self.library = library
        self.stop = stop
        self.authenticate = authenticate
        self.login_failures = 0
        self.events = events or SessionEvents()     # what the metrics hear of
        self.report = report
        self.spoke: Optional[Callable[[], None]] = spoke   # None once it has spoken
        started = time.monotonic() if connected is None else connected
        self.first_deadline = started + settings.server.first_request_timeout
        self.stream = Stream(sock)
        self.user: Optional[str] = None
        self.access = settings.access.anonymous
        self.bytes_in = 0
        self.bytes_out = 0
        self.shown_percent = -1
        self.files: Optional[Library] = None      # the view rooted at this session's home
        if self.access != "none":
            self.files = self.open_home(settings.access.anonymous_home)
        self.share = Share(settings, None, self.files)

    @property
    def tree(self) -> Library:
        if self.files is None:
            raise LibraryError(INTERNAL, "home directory unavailable")
        return self.files

    @property
    def home(self) -> str:
        """The session's root below the library: "" (all of it), "users/alice"."""
        return "/".join(self.files.home) if self.files else ""

    def open_home(self, home: str, who: str = "anonymous") -> Optional[Library]:
        """A view of the library at `home`, made if missing (as the session's
        own user: a forked session is already confined); None if impossible."""
        try:
            return self.library.view(home, create=True)
        except LibraryError as exc:
            log.error("home /%s unavailable for %s: %s", home, who, exc.text)
            return None

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
            if self.files is not None:
                self.files.close()
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
        timeout, reason = self.request_timeout()
        try:
            line = self.stream.read_line(timeout, self.stop.fileno())
        except Interrupted:
            return                       # loop back: stop.is_set() decides
        except StreamTimeout:
            self.close_with(TIMEOUT, reason)
        except LineTooLong:
            self.close_with(BAD_REQUEST, "line too long")
        if self.spoke is not None:
            self.spoke()
            self.spoke = None
        try:
            self.dispatch(protocol.parse_request(line))
        except (ProtocolError, LibraryError) as exc:
            self.send(protocol.err(exc.code, exc.text))
            if exc.code in protocol.CLOSING_CODES:
                raise CloseSession() from exc

    def request_timeout(self) -> Tuple[float, str]:
        """How long the next request line may take, and the ERR 408 text:
        until its first request a session is held to first_request_timeout,
        counted from the connect, so silence cannot hold a slot for long."""
        idle = self.settings.server.idle_timeout
        if self.spoke is None:
            return idle, "idle timeout"
        remaining = max(0.0, self.first_deadline - time.monotonic())
        if remaining < idle:
            return remaining, "no request in time"
        return idle, "idle timeout"

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

    def close_with(self, code: int, text: str) -> NoReturn:
        try:
            self.send(protocol.err(code, text))
        finally:
            raise CloseSession()

    def hang_up(self, cause: BaseException) -> NoReturn:
        """Close without a reply: the client's connection is already gone."""
        raise CloseSession() from cause

    # -- commands --------------------------------------------------------------

    def do_list(self, path: Path) -> None:
        count, rows = self.tree.list(path)
        self.send(protocol.ok(count))
        batch = []
        for row in rows:
            batch.append(protocol.format_row(*row))
            if len(batch) == LISTING_BATCH:
                self.send(b"".join(batch))
                batch = []
        if batch:
            self.send(b"".join(batch))

    def do_hash(self, path: Path) -> None:
        self.report(f"H {protocol.encode_path(path)}")
        size, digest = self.tree.hash(path)
        self.send(protocol.ok(size, digest))

    def do_quit(self) -> None:
        self.send(protocol.ok("bye"))
        raise CloseSession()

    def do_auth(self, user: str, password: str) -> None:
        login = self.authenticate(user, password) if self.authenticate else None
        if login is None:
            self.login_failed(user)
        access, home = login.access, login.home
        files = self.open_home(home, user)
        if files is None:
            raise LibraryError(INTERNAL, "cannot open your home directory")
        share = Share(self.settings, login.limits, files)
        if self.files is not None:
            self.files.close()
        self.user, self.access, self.files, self.share = user, access, files, share
        log.info("login %s from %s home /%s", user, self.peer, home)
        self.send(protocol.ok(protocol.encode_text(user)))

    def login_failed(self, user: str) -> NoReturn:
        """Log (fail2ban format, see SECURITY.md), wait, then 401, or 421 at the limit."""
        self.login_failures += 1
        self.events.login_failed()
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

    def do_get(self, path: Path, offset: int) -> None:
        fd, size = self.tree.open_read(path)
        with os.fdopen(fd, "rb", buffering=0) as handle:
            if offset > size:
                raise ProtocolError(BAD_OFFSET, f"offset beyond end of file ({size} bytes)")
            count = size - offset
            self.send(protocol.ok(count))
            started = time.monotonic()
            sent, failure = self._send_range(handle, path, offset, count)
        self.log_transfer("G", path, sent, started, None, failure or "ok")
        if failure:   # the client must see a cut, never a short file
            raise CloseSession()

    def _send_range(self, handle: Any, path: Path, offset: int,
                    count: int) -> Tuple[int, Optional[str]]:
        """sendfile `count` bytes, in steps that move the title's percentage;
        (bytes sent, failure or None)."""
        sent = 0

        def advance(total: int) -> None:
            nonlocal sent
            self.bytes_out += total - sent
            sent = total
            self.progress("G", path, sent, count)

        self.progress("G", path, 0, count)
        step = self.share.send_step(max(SENDFILE_STEP, count // 100))
        try:
            done = self.stream.sendfile(handle, offset, count,
                                        self.settings.server.data_timeout,
                                        self.share.paid_progress(advance, count, step), step)
        except (StreamClosed, StreamTimeout) as exc:
            return sent, f"failed: {exc or 'stalled'}"
        if done < count:
            return done, "failed: short file"      # it shrank under us
        return done, None

    def do_put(self, path: Path, size: int, expected: Optional[str],
               mtime: Optional[int]) -> None:
        self.tree.check_upload(path, size)
        self.share.reserve(self.tree, path, size)
        try:
            self._store(path, size, expected, mtime)
        finally:
            self.share.release()

    def _store(self, path: Path, size: int, expected: Optional[str],
               mtime: Optional[int]) -> None:
        upload = self.tree.begin_upload(path, mtime=mtime)
        started = time.monotonic()
        try:
            self.send(protocol.ok("ready"))
            failure = self.receive_into(upload, path, size)
            if expected == STREAMED:
                expected = self._trailing_digest()   # read even after a failure: stay in step
            if failure is not None:
                raise failure
            digest = self.share.counted(self.tree, [path], lambda: upload.commit(expected))
            self.log_transfer("P", path, size, started, digest, "ok")
            self.send(protocol.ok(size, digest))
        except LibraryError as exc:
            self.log_transfer("P", path, upload.size, started, None, f"failed: {exc.text}")
            raise
        except StreamTimeout:
            self.log_transfer("P", path, upload.size, started, None, "failed: stalled")
            self.close_with(TIMEOUT, "data timeout")
        except StreamClosed as exc:
            self.log_transfer("P", path, upload.size, started, None, f"failed: {exc}")
            self.hang_up(exc)
        finally:
            upload.abort()

    def _trailing_digest(self) -> str:
        """`P path size -`: the digest arrives as one line after the bytes."""
        try:
            line = self.stream.read_line(self.settings.server.data_timeout)
            return protocol.parse_digest(protocol.strip_eol(line))
        except LineTooLong:
            self.close_with(BAD_REQUEST, "line too long")
        except ProtocolError as exc:
            raise LibraryError(BAD_REQUEST, "bad sha256 digest line, nothing stored") from exc

    def receive_into(self, upload: Any, path: Path, size: int) -> Optional[LibraryError]:
        """Read all `size` bytes; after a write error keep draining, so the
        session stays in step with the client, and return that error."""
        failure = None
        done = 0
        self.progress("P", path, 0, size)
        for chunk in self.stream.iter_exact(size, self.settings.server.data_timeout):
            self.bytes_in += len(chunk)
            self.share.received(len(chunk))
            done += len(chunk)
            self.progress("P", path, done, size)
            if failure is None:
                try:
                    upload.write(chunk)
                except LibraryError as exc:
                    failure = exc
                    upload.abort()
        return failure

    # -- the tree: M, D, R -------------------------------------------------------------

    def do_mkdir(self, path: Path) -> None:
        self._change("M", path, lambda: self.tree.mkdir(path))

    def do_delete(self, path: Path) -> None:
        self._change("D", path, lambda: self.share.counted(
            self.tree, [path], lambda: self.tree.delete(path)))

    def do_rename(self, source: Path, target: Path) -> None:
        self._change("R", source, lambda: self.share.counted(
            self.tree, [source, target], lambda: self.tree.rename(source, target)), target)

    def _change(self, verb: str, path: Path, act: Callable[[], None],
                target: Optional[Path] = None) -> None:
        """Run one change of the tree and log it like a transfer."""
        self.report(f"{verb} {protocol.encode_path(path)}")
        started = time.monotonic()
        try:
            act()
        except LibraryError as exc:
            self.log_transfer(verb, path, 0, started, None, f"failed: {exc.text}")
            raise
        moved = "" if target is None else \
            f" -> {protocol.encode_name(self.tree.shown(target))}"
        self.log_transfer(verb, path, 0, started, None, "ok" + moved)
        self.send(protocol.ok())

    def progress(self, verb: str, path: Path, done: int, total: int) -> None:
        """Report `verb path NN%` whenever the whole percentage changes."""
        percent = done * 100 // total if total else 100
        if done == 0:
            self.shown_percent = -1
        if percent != self.shown_percent:
            self.shown_percent = percent
            self.report(f"{verb} {protocol.encode_path(path)} {percent}%")

    def log_transfer(self, verb: str, path: Path, size: int, started: float,
                     digest: Optional[str], result: str) -> None:
        """One line per transfer or change; the path as seen from the library root."""
        logs.log_transfer(self.peer, self.who, verb, self.tree.shown(path), size,
                          time.monotonic() - started, digest, result)
        self.events.transfer(verb, result, self.bytes_in, self.bytes_out)


# The one dispatch table: verb -> (parse fields, handler, arity, access needed).
COMMANDS: Dict[str, Command] = {
    "L": Command(requests.optional_path, Session.do_list, 0, 1, "read"),
    "G": Command(requests.get_args, Session.do_get, 1, 2, "read"),
    "H": Command(requests.path_arg, Session.do_hash, 1, 1, "read"),
    "P": Command(requests.put_args, Session.do_put, 2, 4, "write"),
    "C": Command(requests.continue_args, resume.continue_upload, 3, 4, "write"),
    "M": Command(requests.path_arg, Session.do_mkdir, 1, 1, "write"),
    "D": Command(requests.path_arg, Session.do_delete, 1, 1, "write"),
    "R": Command(requests.two_paths, Session.do_rename, 2, 2, "write"),
    "A": Command(requests.auth_args, Session.do_auth, 2, 2, None),
    "Q": Command(requests.no_args, Session.do_quit, 0, 0, None),
}
