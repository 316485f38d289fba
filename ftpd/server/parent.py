"""The parent: listen, accept, check limits, spawn, reap, react to signals.

Signal handlers only write to the wake-up fd (signal.set_wakeup_fd); the
main loop waits on the listeners and that fd and calls handle_<signal>().
The parent never reads a byte from a client: what a session does from its
start on is in child.py, how it is started and ended in spawn.py.

The server's life is one `State`:

    SERVING   --SIGTERM-->                         DRAINING(deadline)
    SERVING   --SIGINT, SIGQUIT-->                 STOPPING
    DRAINING  --SIGINT, SIGQUIT, deadline passed-> STOPPING

and the loop ends once it is no longer SERVING and every session is reaped.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass
from enum import Enum
from types import FrameType
from typing import Callable, Dict, List, Optional, Tuple

from ftpd.server import listeners as listen_mod
from ftpd.server import proxy, silence, titles
from ftpd.config import Config, ConfigError
from ftpd.server.child import Peer, SessionStart, refuse
from ftpd.server.guard import Guard
from ftpd.server.library import Library
from ftpd.server.listeners import Address, BindError, format_address
from ftpd.server.peers import PeerTable
from ftpd.server.reports import Refusal, metrics_for
from ftpd.server.spawn import Spawner, spawner_for

log = logging.getLogger("ftpd.server")

HANDLED_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT,
                   signal.SIGHUP, signal.SIGUSR1)
ACCEPTS_PER_WAKEUP = 128   # bounded so signals are not starved during a flood
REAP_INTERVAL = 5.0        # a periodic reap is cheap insurance against lost wake-ups
KILL_WAIT = 5.0            # how long a quick stop waits for killed sessions
SESSION_ENDED = bytes([signal.SIGCHLD])   # a thread's end is handled like a child's


class Phase(Enum):
    SERVING = "serving"        # accepting clients
    DRAINING = "draining"      # listeners closed, sessions told to finish, until a deadline
    STOPPING = "stopping"      # sessions killed; only their reaping is left


@dataclass(frozen=True)
class State:
    phase: Phase = Phase.SERVING
    deadline: float = float("inf")    # DRAINING: when the sessions left are killed

    def drain(self, deadline: float) -> "State":
        """SIGTERM: only a serving server starts draining; a second TERM, or
        one after SIGINT, changes nothing."""
        return State(Phase.DRAINING, deadline) if self.accepting else self

    def stop(self) -> "State":
        """SIGINT, SIGQUIT or a drain past its deadline, from any state."""
        return State(Phase.STOPPING)

    @property
    def accepting(self) -> bool:
        return self.phase is Phase.SERVING

    def finished(self, sessions: int) -> bool:
        return not self.accepting and sessions == 0

    def overdue(self, now: float) -> bool:
        return self.phase is Phase.DRAINING and now >= self.deadline

    def poll_timeout(self, now: float) -> float:
        if self.phase is Phase.DRAINING:
            return max(0.0, min(1.0, self.deadline - now))
        return REAP_INTERVAL


def open_library(config: Config) -> Library:
    os.makedirs(config.server.root, exist_ok=True)
    files = config.files
    return Library(config.server.root, fsync=files.fsync, overwrite=files.overwrite,
                   max_file_size=files.max_file_size, min_free_space=files.min_free_space,
                   max_depth=files.max_depth, max_entries=files.max_entries_per_listing,
                   partial_ttl=files.partial_upload_ttl)


def _noop_handler(signum: int, frame: Optional[FrameType]) -> None:
    """Installed so the C-level handler writes to the wake-up fd."""


class Server:
    def __init__(self, config: Config, reload_config: Callable[[], Config],
                 bound: Optional[Dict[Address, List[socket.socket]]] = None,
                 notify: Callable[[str], None] = lambda state: None,
                 title: Callable[[str], None] = lambda text: None,
                 inherited: Optional[bool] = None,
                 metrics_bound: Optional[Dict[Address, List[socket.socket]]] = None,
                 guard: Optional[Guard] = None, metrics_inherited: bool = False):
        self.config = config
        # The pre-flight's, when it ran: reading the accounts, loading TLS and
        # compiling the seccomp filter once per start is enough.
        self.guard = guard if guard is not None else Guard.from_config(config)
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
        self.startups = silence.Startups(config.server.max_clients)
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.spawner: Spawner = spawner_for(config.server.concurrency,
                                            release_parent=self.close_in_child,
                                            wake=self.session_ended)
        self.metrics = metrics_for(config, self.spawner, metrics_bound, metrics_inherited)
        self.state = State()
        self.parent_fds = self.fds_a_child_closes()

    # -- set-up ----------------------------------------------------------------

    def sockets(self) -> List[socket.socket]:
        return [sock for group in self.bound.values() for sock in group]

    def start(self) -> None:
        removed = self.library.cleanup_temps()
        if removed:
            log.info("removed %d stale upload temp(s) in %s", len(removed), self.library.root)
        if not self.library.digest_cache:
            log.warning("%s has no user extended attributes: H hashes every file each "
                        "time instead of keeping its digest", self.library.root)
        for sock in self.sockets():
            self.selector.register(sock, selectors.EVENT_READ)
            log.info("listening on %s", listen_mod.describe(sock))
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.metrics.attach(self.selector)
        # Built once: the loop runs this lookup for every ended session.
        self.signal_handlers = {int(sig): getattr(self, f"handle_{sig.name.lower()}")
                                for sig in HANDLED_SIGNALS}
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, _noop_handler)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.guard.announce()
        for caveat in self.spawner.caveats(self.guard):
            log.warning("%s", caveat)
        self.title(titles.master(self.listen_text()))
        log.info("ftpd serving %s on %s (max %d clients)", self.library.root,
                 self.listen_text(), self.config.server.max_clients)

    def listen_text(self) -> str:
        return ",".join(listen_mod.describe(s) for s in self.sockets()) or "-"

    # -- the loop --------------------------------------------------------------

    def serve_forever(self) -> int:
        self.start()
        self.notify("READY=1")
        while not self.state.finished(len(self.spawner)):
            for key, events in self.selector.select(self.state.poll_timeout(time.monotonic())):
                if key.fileobj == self.wake_r:
                    self.handle_wakeup()
                elif key.data is not None:      # the metrics' sockets bring their handler
                    key.data(events)
                elif self.state.accepting and isinstance(key.fileobj, socket.socket):
                    self.accept_burst(key.fileobj)
            self.check_drain_deadline()
            self.metrics.expire(time.monotonic())
        self.close()
        log.info("ftpd stopped")
        return 0

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

    def admit(self, conn: socket.socket, peer: Peer) -> None:
        if self.config.server.proxy_protocol and \
                not proxy.is_trusted(peer[0], self.config.server.trusted_proxies):
            log.warning("refused %s: %s", format_address(peer), Refusal.UNTRUSTED_PROXY.text)
            self.metrics.refused(Refusal.UNTRUSTED_PROXY)
            return
        reason = self.refusal(None if self.config.server.proxy_protocol else peer[0])
        if reason is not None:
            log.warning("refused %s: %s", format_address(peer), reason.text)
            refuse(conn, reason.text)
            self.metrics.refused(reason)
            return
        self.guard.before_fork()
        slot = self.startups.claim()
        try:
            ident = self.spawner.spawn(conn, peer, self.session_start(slot.mark_spoken))
        except BaseException:
            slot.release()
            raise
        self.startups.track(ident, slot)
        self.metrics.session_started()

    def refusal(self, ip: Optional[str]) -> Optional[Refusal]:
        """Why to refuse before forking. Behind a balancer every peer is the
        balancer, so the per-IP limit is left to the child (ip=None)."""
        max_clients = self.config.server.max_clients
        if len(self.spawner) >= max_clients:
            return Refusal.MAX_CLIENTS
        if ip is not None and self.spawner.count_ip(ip) >= self.config.server.max_clients_per_ip:
            return Refusal.PER_IP
        if silence.early_drop(self.startups.silent(), max_clients):
            return Refusal.SILENT
        return None

    def session_start(self, spoke: Callable[[], None]) -> SessionStart:
        """What a session spawned now takes along: this moment's configuration."""
        return SessionStart(self.config, self.guard, self.library, self.peers, self.title,
                            spoke, events=self.metrics.sink)

    # -- what the spawners call back -------------------------------------------------

    def fds_a_child_closes(self) -> Tuple[int, ...]:
        """Listening sockets, selector, wake-up pipe: noted in the parent
        whenever they change, so a child only closes numbers."""
        return (self.selector.fileno(), self.wake_r, self.wake_w,
                *(sock.fileno() for sock in self.sockets()))

    def close_in_child(self) -> None:
        """Right after fork: the child must not hold the parent's fds. Closed
        by number, leaving their Python objects alone: tearing those down
        (the selector's map, each socket) wrote to shared pages that every
        child then copied. The objects stay referenced by this server and
        the child leaves through os._exit, so none is finalised later and
        none can close a reused fd number."""
        for fd in self.parent_fds:
            os.close(fd)
        self.metrics.close_in_child()

    @staticmethod
    def peer_table_for(config: Config) -> Optional[PeerTable]:
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
            self.startups.forget(finished.child.ident)
            if not finished.clean:
                # SIGSYS: the seccomp filter killed it (see syscalls.py).
                why = " (a system call off the seccomp list)" \
                    if finished.status == f"signal {int(signal.SIGSYS)}" else ""
                log.warning("session %d (%s) ended with %s%s", finished.child.ident,
                            format_address(finished.child.peer), finished.status, why)
                self.spawner.tidy(finished, self.library)

    def handle_sigterm(self) -> None:
        if not self.state.accepting:
            return
        log.info("SIGTERM: draining %d session(s), %gs at most", len(self.spawner),
                 self.config.server.shutdown_timeout)
        self.notify("STOPPING=1")
        self.close_listeners()
        self.state = self.state.drain(time.monotonic() + self.config.server.shutdown_timeout)
        self.spawner.terminate_all()

    def handle_sigint(self) -> None:
        log.info("quick shutdown: killing %d session(s)", len(self.spawner))
        self.notify("STOPPING=1")
        self.close_listeners()
        self.state = self.state.stop()
        self.spawner.kill_all()
        self._wait_children(KILL_WAIT)

    handle_sigquit = handle_sigint

    def handle_sighup(self) -> None:
        self.notify("RELOADING=1")
        running = self.config
        try:
            self.reload()
            self.metrics.reloaded(self.config is not running)
        finally:
            self.notify("READY=1")

    def handle_sigusr1(self) -> None:
        for handler in logging.getLogger().handlers:
            reopen = getattr(handler, "reopen", None)
            if reopen is not None:
                reopen()
        log.info("SIGUSR1: log files reopened")

    def check_drain_deadline(self) -> None:
        if not (self.state.overdue(time.monotonic()) and self.spawner):
            return
        log.warning("shutdown timeout: killing %d session(s)", len(self.spawner))
        self.state = self.state.stop()
        self.spawner.kill_all()
        self._wait_children(KILL_WAIT)

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
            self.metrics.rebind(new.metrics.listen)
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
        self.startups.resize(new.server.max_clients)
        self.config, self.guard = new, guard
        guard.announce()
        log.info("configuration reloaded from %s", new.source)

    def rebind(self, new: Config) -> None:
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
        self.parent_fds = self.fds_a_child_closes()

    # -- teardown ----------------------------------------------------------------------

    def close_listeners(self) -> None:
        for sock in self.sockets():
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self.bound = {}
        self.parent_fds = self.fds_a_child_closes()

    def close(self) -> None:
        self.close_listeners()
        signal.set_wakeup_fd(-1)
        self.selector.close()
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        self.metrics.close()
        self.library.close()
