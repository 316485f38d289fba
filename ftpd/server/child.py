"""The session side of a spawn: what a new session does before its first request.

A forked child (`run_as_process`) goes, in this order:

    signal handlers back to their defaults, the parent's wake-up fd cleared
    the parent's fds closed (listening sockets, selector, wake-up pipe)
    its own stop flag armed (SIGTERM -> readable fd)
    the SHA-256 helper thread started (a confined process may start none)
    confined: chroot, setuid, rlimits, no_new_privs
    the PROXY header read (in clear, so before TLS)
    the TLS handshake
    the session, until the client or the server ends it
    os._exit in a finally: never back into the parent's code

A session thread (`run_as_thread`) shares the server's process, so it skips
what belongs to a process (signals, fds, confinement, process title) and
starts at the PROXY header.
"""

from __future__ import annotations

import dataclasses
import logging
import _signal  # type: ignore[import-not-found]  # no stub: signal.py's C core
import os
import select
import signal
import socket
import time
from typing import Callable, NoReturn, Optional, Tuple

from ftpd import protocol
from ftpd.config import Address, Config
from ftpd.server import hashing, hooks, proxy, titles
from ftpd.server.guard import Guard
from ftpd.server.library import Library
from ftpd.server.listeners import format_address
from ftpd.server.peers import PeerTable
from ftpd.server.reports import Refusal, SessionEvents, Sink, no_sink
from ftpd.server.session import Session
from ftpd.server.silence import no_report

log = logging.getLogger("ftpd.server")

Peer = Address          # the client's address, or the real one behind a PROXY header
PROXY_HEADER_TIMEOUT = 5.0
# The parent's handlers only wake its loop; a child must not inherit them.
RESET_SIGNALS = (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT,
                 signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


class StopFlag:
    """Set once the server drains; readable fd so a waiting session wakes."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        return self.read_fd

    def trigger(self) -> None:
        try:
            os.write(self.write_fd, b"!")
        except (BlockingIOError, OSError):
            pass    # full pipe: already triggered

    def is_set(self) -> bool:
        # poll, not select: in thread mode this fd may be numbered above 1024.
        poller = select.poll()
        poller.register(self.read_fd, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


@dataclasses.dataclass(frozen=True)
class SessionStart:
    """What a session takes from the parent as it is spawned. A later reload
    builds a new one; a running session keeps the one it started with."""

    config: Config
    guard: Guard
    library: Library
    peers: Optional[PeerTable]           # set exactly when proxy_protocol is on
    title: Callable[[str], None]         # the process title (setproctitle)
    # Tells the parent the first complete request has arrived (silence.Slot).
    spoke: Callable[[], None] = no_report
    # Sends one metrics record to the parent (reports.py); a no-op when off.
    events: Sink = no_sink


class ChildOps:
    """The process calls a forked child makes, replaceable in unit tests.

    Handlers are set through `_signal`: `signal.signal` turns the old
    handler back into a `Handlers` member, and for the parent's function
    that means a failed enum lookup and a ValueError, per signal, in code
    the parent never ran, so every child copied the pages it touched."""

    set_handler = staticmethod(_signal.signal)
    set_wakeup_fd = staticmethod(signal.set_wakeup_fd)
    prestart = staticmethod(hashing.prestart)
    exit = staticmethod(os._exit)


CHILD_OPS = ChildOps()


def _ignore(signum: int, frame: object) -> None:
    """SIGTERM's handler in a child: the wake-up fd does the work."""


def run_as_process(start: SessionStart, conn: socket.socket, peer: Peer,
                   release_parent: Callable[[], None], ops: ChildOps = CHILD_OPS) -> NoReturn:
    """The forked child, from right after fork() to its exit."""
    code = os.EX_SOFTWARE           # unless the session says otherwise
    try:
        for sig in RESET_SIGNALS:
            ops.set_handler(sig, _signal.SIG_DFL)     # the int _signal expects
        ops.set_wakeup_fd(-1)
        release_parent()
        # No gc.unfreeze(): the inherited objects stay out of collections
        # for good, so a full GC never writes to (and copies) their pages.
        stop = StopFlag()
        ops.set_handler(signal.SIGTERM, _ignore)
        ops.set_wakeup_fd(stop.write_fd)
        # Confined before the greeting, so a client that has been greeted
        # talks to a confined process.
        ops.prestart()
        start.guard.confine(start.library.dir_fd)
        hooks.after_confinement()
        code = serve(start, conn, peer, stop)
    except BaseException:
        log.exception("session %s:%s crashed", *peer[:2])
    finally:
        ops.exit(code)


def run_as_thread(start: SessionStart, conn: socket.socket, peer: Peer,
                  stop: StopFlag) -> int:
    """A session thread: chroot and setuid would take the whole server along,
    and the process has one title, the master's."""
    return serve(dataclasses.replace(start, title=_no_title), conn, peer, stop)


def _no_title(text: str) -> None:
    """Thread mode: sessions leave the master's title alone."""


def serve(start: SessionStart, conn: socket.socket, peer: Peer, stop: StopFlag) -> int:
    """PROXY header, TLS handshake, session: common to both models."""
    connected = time.monotonic()      # first_request_timeout counts from here
    conn.setblocking(True)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    slot = None
    if start.peers is not None:
        real, slot = proxied_peer(start, start.peers, conn, peer)
        if slot is None:
            return 0
        peer = real
    try:
        secured = start.guard.handshake(conn, format_address(peer))
        if secured is not None:
            run_session(start, secured, peer, stop, connected)
    finally:
        if slot is not None and start.peers is not None:
            start.peers.release(slot)
    return 0


def proxied_peer(start: SessionStart, peers: PeerTable, conn: socket.socket,
                 peer: Peer) -> Tuple[Peer, Optional[int]]:
    """The real client behind the balancer, admitted by its own per-IP limit;
    no slot: do not serve."""
    try:
        real = proxy.read_header(conn, PROXY_HEADER_TIMEOUT) or peer
    except proxy.ProxyError as exc:
        log.warning("dropped %s: %s", format_address(peer), exc)
        return peer, None
    slot = peers.admit(real[0], start.config.server.max_clients_per_ip)
    if slot is None:
        log.warning("refused %s (via %s): too many connections from that address",
                    format_address(real), format_address(peer))
        refuse(conn, Refusal.PER_IP_PROXIED.text)
        SessionEvents(start.events).refused(Refusal.PER_IP_PROXIED)
    return real, slot


def run_session(start: SessionStart, conn: socket.socket, peer: Peer, stop: StopFlag,
                connected: float) -> None:
    peer_text = format_address(peer)
    start.title(titles.starting(peer_text))
    session = Session(conn, peer_text, start.config, start.library, stop,
                      authenticate=start.guard.accounts,
                      report=lambda state: start.title(titles.session(
                          peer_text, session.who, session.home, state,
                          session.bytes_in + session.bytes_out)),
                      spoke=start.spoke, connected=connected,
                      events=SessionEvents(start.events))
    session.run()


def refuse(conn: socket.socket, reason: str) -> None:
    """The one line a refused client gets, then the end of the connection."""
    try:
        conn.setblocking(False)
        conn.send(protocol.err(protocol.UNAVAILABLE, reason))
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
