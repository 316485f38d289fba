"""The parent: listen, accept, check limits, spawn, reap, react to signals.

Signal handlers only write to the wake-up fd (signal.set_wakeup_fd); the
main loop waits on the listeners and that fd and calls handle_<signal>().
The parent never reads a byte from a client.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ftpd.server import listeners as listen_mod
from ftpd.server import hashing, proxy
from ftpd import protocol
from ftpd.config import ConfigError
from ftpd.server.guard import Guard
from ftpd.server.library import Library
from ftpd.server.listeners import Address, BindError, format_address
from ftpd.server.peers import PeerTable
from ftpd.server.session import Session
from ftpd.server.spawn import ForkSpawner, Spawner, StopFlag, ThreadSpawner

log = logging.getLogger("ftpd.server")

HANDLED_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT,
                   signal.SIGHUP, signal.SIGUSR1)
ACCEPTS_PER_WAKEUP = 128   # bounded so signals are not starved during a flood
PROXY_HEADER_TIMEOUT = 5.0
SESSION_ENDED = bytes([signal.SIGCHLD])   # a thread's end is handled like a child's


def open_library(config: Any) -> Library:
    os.makedirs(config.server.root, exist_ok=True)
    files = config.files
    return Library(config.server.root, fsync=files.fsync, overwrite=files.overwrite,
                   max_file_size=files.max_file_size, min_free_space=files.min_free_space,
                   max_depth=files.max_depth, max_entries=files.max_entries_per_listing)


def _noop_handler(signum: int, frame: Any) -> None:
    """Installed so the C-level handler writes to the wake-up fd."""


class Server:
    def __init__(self, config: Any, reload_config: Callable[[], Any],
                 bound: Optional[Dict[Address, List[socket.socket]]] = None,
                 notify: Callable[[str], None] = lambda state: None,
                 title: Callable[[str], None] = lambda text: None,
                 inherited: Optional[bool] = None):
        self.config = config
        self.guard = Guard.from_config(config)
        self.reload_config = reload_config
        self.notify = notify
        self.title = title
        self.bound = bound if bound is not None else listen_mod.bind_all(
            config.server.listen, config.server.backlog)
        # Socket activation: never rebind. Daemon mode binds before detaching
        # and passes inherited=False, so a reload may still rebind.
        self.inherited = bound is not None if inherited is None else inherited
        self.library = open_library(config)
        self.peers = self.peer_table_for(config)
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.spawner: Spawner = (
            ThreadSpawner(self.session_main, self.session_ended)
            if config.server.concurrency == "thread"
            else ForkSpawner(self.session_main, self.close_in_child))
        self.draining_until: Optional[float] = None
        self.stopping = False

    # -- set-up ----------------------------------------------------------------

    def sockets(self) -> List[socket.socket]:
        return [sock for group in self.bound.values() for sock in group]

    def start(self) -> None:
        removed = self.library.cleanup_temps()
        if removed:
            log.info("removed %d stale upload temp(s) in %s", len(removed), self.library.root)
        for sock in self.sockets():
            self.selector.register(sock, selectors.EVENT_READ)
            log.info("listening on %s", listen_mod.describe(sock))
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        # Built once: the loop runs this lookup for every ended session.
        self.signal_handlers = {int(sig): getattr(self, f"handle_{sig.name.lower()}")
                                for sig in HANDLED_SIGNALS}
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, _noop_handler)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.guard.announce()
        if not self.spawner.isolated and (self.guard.plan.chroot or self.guard.plan.uid):
            log.warning("concurrency = thread: sessions share the server's process, so they "
                        "are neither chrooted nor dropped to [server] user; use fork")
        self.title(f"ftpd: master {self.listen_text()}")
        log.info("ftpd serving %s on %s (max %d clients)", self.library.root,
                 self.listen_text(), self.config.server.max_clients)

    def listen_text(self) -> str:
        return ",".join(listen_mod.describe(s) for s in self.sockets()) or "-"

    # -- the loop --------------------------------------------------------------

    def serve_forever(self) -> int:
        self.start()
        self.notify("READY=1")
        while not self._finished():
            for key, _ in self.selector.select(self._poll_timeout()):
                if key.fileobj == self.wake_r:
                    self.handle_wakeup()
                elif not self.stopping and self.draining_until is None:
                    self.accept_burst(key.fileobj)
            self._check_drain_deadline()
        self.close()
        log.info("ftpd stopped")
        return 0

    def _finished(self) -> bool:
        return (self.stopping or self.draining_until is not None) and not self.spawner

    def _poll_timeout(self) -> Optional[float]:
        if self.draining_until is None:
            return 5.0     # a periodic reap is cheap insurance against lost wake-ups
        return max(0.0, min(1.0, self.draining_until - time.monotonic()))

    def handle_wakeup(self) -> None:
        try:
            data = os.read(self.wake_r, 4096)
        except BlockingIOError:
            return
        for signum in dict.fromkeys(data):
            handler = self.signal_handlers.get(signum)
            if handler is not None:
                handler()

    # -- accepting ---------------------------------------------------------------

    def accept_burst(self, sock: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:      # EMFILE, ENOBUFS, ECONNABORTED...
                log.error("accept failed: %s", exc)
                time.sleep(0.05)
                return
            try:
                self.admit(conn, (addr[0], addr[1]))
            finally:
                conn.close()    # the child has its own copy

    def admit(self, conn: socket.socket, peer: Tuple[str, int]) -> None:
        if self.config.server.proxy_protocol and \
                not proxy.is_trusted(peer[0], self.config.server.trusted_proxies):
            log.warning("refused %s: not a trusted proxy", format_address(peer))
            return
        reason = self.refusal(None if self.config.server.proxy_protocol else peer[0])
        if reason is not None:
            log.warning("refused %s: %s", format_address(peer), reason)
            self.refuse(conn, reason)
            return
        self.guard.before_fork()
        self.spawner.spawn(conn, peer)

    def refusal(self, ip: Optional[str]) -> Optional[str]:
        """Why to refuse before forking. Behind a balancer every peer is the
        balancer, so the per-IP limit is left to the child (ip=None)."""
        if len(self.spawner) >= self.config.server.max_clients:
            return "too many clients"
        if ip is not None and self.spawner.count_ip(ip) >= self.config.server.max_clients_per_ip:
            return "too many connections from your address"
        return None

    @staticmethod
    def refuse(conn: socket.socket, reason: str) -> None:
        try:
            conn.setblocking(False)
            conn.send(protocol.err(protocol.UNAVAILABLE, reason))
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- in the child --------------------------------------------------------------

    def close_in_child(self) -> None:
        """Right after fork: the child must not hold the parent's fds."""
        self.selector.close()
        listen_mod.close_all(self.sockets())
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)

    def session_main(self, conn: socket.socket, peer: Tuple[str, int], stop: StopFlag) -> int:
        conn.setblocking(True)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Confined before the greeting, so a client that has been greeted
        # talks to a confined process; the PROXY header comes in clear before
        # any TLS handshake. A thread cannot be confined alone: chroot and
        # setuid would take the whole server along.
        if self.spawner.isolated:
            hashing.prestart()           # confined, the process may start no thread
            self.guard.confine(self.library.dir_fd)
        slot = None
        if self.config.server.proxy_protocol:
            peer, slot = self.proxied_peer(conn, peer)
            if slot is None:
                return 0
        try:
            secured = self.guard.handshake(conn, format_address(peer))
            if secured is not None:
                self.run_session(secured, peer, stop)
        finally:
            if slot is not None:
                self.peers.release(slot)
        return 0

    def proxied_peer(self, conn: socket.socket, peer: Tuple[str, int]):
        """The real client behind the balancer, admitted by its own per-IP limit."""
        try:
            real = proxy.read_header(conn, PROXY_HEADER_TIMEOUT) or peer
        except proxy.ProxyError as exc:
            log.warning("dropped %s: %s", format_address(peer), exc)
            return peer, None
        slot = self.peers.admit(real[0], self.config.server.max_clients_per_ip)
        if slot is None:
            log.warning("refused %s (via %s): too many connections from that address",
                        format_address(real), format_address(peer))
            self.refuse(conn, "too many connections from your address")
        return real, slot

    def run_session(self, conn: socket.socket, peer: Tuple[str, int], stop: StopFlag) -> None:
        peer_text = format_address(peer)
        title = f"ftpd: {peer_text}"
        self.title(f"{title} -: starting")
        accounts = self.guard.accounts
        # `ftpd status` parses this title: peer, user, home, state, bytes moved.
        session = Session(conn, peer_text, self.config, self.library, stop,
                          authenticate=accounts,
                          report=lambda state: self.title(
                              f"{title} {protocol.encode_text(session.who)} {session.home}: "
                              f"{state} ({session.bytes_in + session.bytes_out} bytes)"))
        if not self.spawner.isolated:
            session.report = lambda state: None   # one title per process, not per thread
        session.run()

    @staticmethod
    def peer_table_for(config: Any) -> Optional[PeerTable]:
        if not config.server.proxy_protocol:
            return None
        return PeerTable(config.server.max_clients + 16)

    def session_ended(self) -> None:
        """Called in a session thread as it ends: wake the loop to reap it."""
        try:
            os.write(self.wake_w, SESSION_ENDED)
        except BlockingIOError:
            pass    # pipe full: a wake-up is pending anyway

    # -- signals ---------------------------------------------------------------------

    def handle_sigchld(self) -> None:
        for finished in self.spawner.reap():
            if not finished.clean:
                log.warning("session %d (%s) ended with %s", finished.child.ident,
                            format_address(finished.child.peer), finished.status)
                if self.spawner.isolated:   # a thread's temps carry the server's pid
                    self.library.remove_session_temps(finished.child.ident)

    def handle_sigterm(self) -> None:
        if self.draining_until is not None:
            return
        log.info("SIGTERM: draining %d session(s), %gs at most", len(self.spawner),
                 self.config.server.shutdown_timeout)
        self.notify("STOPPING=1")
        self.close_listeners()
        self.draining_until = time.monotonic() + self.config.server.shutdown_timeout
        self.spawner.terminate_all()

    def handle_sigint(self) -> None:
        log.info("quick shutdown: killing %d session(s)", len(self.spawner))
        self.notify("STOPPING=1")
        self.close_listeners()
        self.stopping = True
        self.spawner.kill_all()
        self._wait_children(5.0)

    handle_sigquit = handle_sigint

    def handle_sighup(self) -> None:
        self.notify("RELOADING=1")
        try:
            self.reload()
        finally:
            self.notify("READY=1")

    def handle_sigusr1(self) -> None:
        for handler in logging.getLogger().handlers:
            reopen = getattr(handler, "reopen", None)
            if reopen is not None:
                reopen()
        log.info("SIGUSR1: log files reopened")

    def _check_drain_deadline(self) -> None:
        if self.draining_until is not None and time.monotonic() >= self.draining_until \
                and self.spawner:
            log.warning("shutdown timeout: killing %d session(s)", len(self.spawner))
            self.spawner.kill_all()
            self._wait_children(5.0)
            self.stopping = True

    def _wait_children(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        while self.spawner and time.monotonic() < deadline:
            self.handle_sigchld()
            if self.spawner:
                time.sleep(0.01)

    # -- reload ----------------------------------------------------------------------

    def reload(self) -> None:
        try:
            new = self.reload_config()
            guard = Guard.from_config(new)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        try:
            self.rebind(new)
            library = open_library(new) if new.server.root != self.config.server.root \
                or new.files != self.config.files else None
        except (BindError, OSError) as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        if new.server.concurrency != self.config.server.concurrency:
            log.warning("[server] concurrency stays %s until a restart",
                        self.config.server.concurrency)
        if library is not None:
            self.spawner.retire(self.library.close)
            self.library = library
        if (new.server.proxy_protocol, new.server.max_clients) != \
                (self.config.server.proxy_protocol, self.config.server.max_clients):
            self.peers = self.peer_table_for(new)
        self.config, self.guard = new, guard
        guard.announce()
        log.info("configuration reloaded from %s", new.source)

    def rebind(self, new: Any) -> None:
        if self.inherited:
            if new.server.listen != self.config.server.listen:
                log.warning("[server] listen changed, but the sockets come from socket "
                            "activation: change them there (e.g. systemctl edit ftpd.socket)")
            return
        wanted = list(new.server.listen)
        added = listen_mod.bind_all([a for a in wanted if a not in self.bound],
                                    new.server.backlog)
        for address in [a for a in self.bound if a not in wanted]:
            for sock in self.bound.pop(address):
                self.selector.unregister(sock)
                sock.close()
            log.info("stopped listening on %s", format_address(address))
        for address, sockets in added.items():
            self.bound[address] = sockets
            for sock in sockets:
                self.selector.register(sock, selectors.EVENT_READ)
                log.info("listening on %s", listen_mod.describe(sock))

    # -- teardown ----------------------------------------------------------------------

    def close_listeners(self) -> None:
        for sock in self.sockets():
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self.bound = {}

    def close(self) -> None:
        self.close_listeners()
        signal.set_wakeup_fd(-1)
        self.selector.close()
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        self.library.close()
