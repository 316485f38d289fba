"""How a session is started, counted, stopped and reaped.

The parent only sees `Spawner`: spawn(conn, peer), reap(), counts, and
terminate/kill. OS calls go through `ProcessOps` so the bookkeeping can be
unit-tested without forking; functional tests fork for real.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import signal
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Tuple

log = logging.getLogger("ftpd.server")

SessionTarget = Callable[[socket.socket, Tuple[str, int], "StopFlag"], int]


class ProcessOps:
    """The thin layer over the process calls the parent makes."""

    fork = staticmethod(os.fork)
    waitpid = staticmethod(os.waitpid)
    kill = staticmethod(os.kill)
    exit = staticmethod(os._exit)


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


@dataclass
class Child:
    ident: int                # pid in fork mode, thread serial in thread mode
    peer: Tuple[str, int]
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Finished:
    child: Child
    status: str               # "exit 0", "exit 1", "signal 9"
    clean: bool


class Spawner:
    """Bookkeeping shared by both concurrency models."""

    # True when each session is its own process: per-session titles, and a
    # dead session's pid names the upload temps it may have left behind.
    isolated = True

    def __init__(self) -> None:
        self.children: Dict[int, Child] = {}
        self.per_ip: Counter = Counter()

    def __len__(self) -> int:
        return len(self.children)

    def count_ip(self, ip: str) -> int:
        return self.per_ip[ip]

    def _add(self, child: Child) -> None:
        self.children[child.ident] = child
        self.per_ip[child.peer[0]] += 1

    def retire(self, release: Callable[[], None]) -> None:
        """Run `release` once no running session can still use what it frees
        (a replaced library): at once here, since children have their own copy."""
        release()

    def _remove(self, ident: int) -> Child:
        child = self.children.pop(ident)
        self.per_ip[child.peer[0]] -= 1
        if not self.per_ip[child.peer[0]]:
            del self.per_ip[child.peer[0]]
        return child


class ForkSpawner(Spawner):
    """One process per session (the default): a crash takes only its client."""

    def __init__(self, target: SessionTarget, close_in_child: Callable[[], None],
                 ops: ProcessOps = ProcessOps()):
        super().__init__()
        self.target = target
        self.close_in_child = close_in_child
        self.ops = ops

    def spawn(self, conn: socket.socket, peer: Tuple[str, int]) -> int:
        gc.freeze()            # keep shared pages shared: no GC writes to them
        pid = self.ops.fork()
        if pid == 0:
            self._child(conn, peer)
        self._add(Child(pid, peer))
        return pid

    def _child(self, conn: socket.socket, peer: Tuple[str, int]) -> None:
        code = 70               # EX_SOFTWARE unless the session says otherwise
        try:
            for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT,
                        signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(sig, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            self.close_in_child()
            # No gc.unfreeze(): the inherited objects stay out of collections
            # for good, so a full GC never writes to (and copies) their pages.
            stop = StopFlag()
            # The handler does nothing: the wake-up fd makes stop readable.
            signal.signal(signal.SIGTERM, lambda signum, frame: None)
            signal.set_wakeup_fd(stop.write_fd)
            code = self.target(conn, peer, stop)
        except BaseException:
            log.exception("session %s:%s crashed", *peer[:2])
        finally:
            self.ops.exit(code)

    def reap(self) -> List[Finished]:
        """waitpid(-1, WNOHANG) until nothing is left to collect."""
        finished = []
        while True:
            try:
                pid, status = self.ops.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:
                break
            if pid not in self.children:
                continue        # not a session (e.g. a helper process)
            finished.append(_finished(self._remove(pid), status))
        return finished

    def signal_all(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                self.ops.kill(pid, signum)
            except ProcessLookupError:
                pass            # already dead, reaped on the next SIGCHLD
            except PermissionError:
                # Sessions run as [server] user; without CAP_KILL the parent
                # cannot reach them. Say so instead of dying mid-drain.
                log.error("cannot signal session %d (missing CAP_KILL?)", pid)

    def terminate_all(self) -> None:
        self.signal_all(signal.SIGTERM)

    def kill_all(self) -> None:
        self.signal_all(signal.SIGKILL)


class ThreadSpawner(Spawner):
    """One thread per session in the server process: cheap to start and to
    keep idle, but sessions share the GIL, the memory and the fate of the
    process. Only the parent loop touches the bookkeeping; a finishing
    thread queues its result and wakes the loop through `wake`."""

    isolated = False
    JOIN_LIMIT = 5.0           # kill_all: how long sessions may take to notice

    def __init__(self, target: SessionTarget, wake: Callable[[], None]):
        super().__init__()
        self.target = target
        self.wake = wake
        self.stop = StopFlag()          # one flag reaches every session
        self.serial = 0
        self.threads: Dict[int, Tuple[threading.Thread, socket.socket]] = {}
        self.done: deque = deque()      # (ident, exit code), appended by threads
        self.abandoned: List[Finished] = []
        self.retiring: List[Tuple[set, Callable[[], None]]] = []

    def spawn(self, conn: socket.socket, peer: Tuple[str, int]) -> int:
        # The caller closes `conn` after spawn; the thread keeps the fd itself.
        sock = socket.socket(conn.family, conn.type, conn.proto, fileno=conn.detach())
        self.serial += 1
        ident = self.serial
        thread = threading.Thread(target=self._run, args=(ident, sock, peer),
                                  name=f"session-{ident}", daemon=True)
        self._add(Child(ident, peer))
        self.threads[ident] = (thread, sock)
        thread.start()
        return ident

    def _run(self, ident: int, sock: socket.socket, peer: Tuple[str, int]) -> None:
        code = 70
        try:
            code = self.target(sock, peer, self.stop)
        except BaseException:
            log.exception("session %s:%s crashed", *peer[:2])
        finally:
            sock.close()
            self.done.append((ident, code))
            self.wake()

    def reap(self) -> List[Finished]:
        finished, self.abandoned = self.abandoned, []
        while self.done:
            ident, code = self.done.popleft()
            entry = self.threads.pop(ident, None)
            if entry is None:
                continue        # abandoned by kill_all, ended after all
            entry[0].join()     # it has returned from _run, or is about to
            finished.append(Finished(self._remove(ident), f"exit {code}", code == 0))
        self._release_retired()
        return finished

    def retire(self, release: Callable[[], None]) -> None:
        # Sessions already running share the old object; later ones get the new.
        self.retiring.append((set(self.threads), release))
        self._release_retired()

    def _release_retired(self) -> None:
        waiting = []
        for users, release in self.retiring:
            users &= self.threads.keys()
            if users:
                waiting.append((users, release))
            else:
                release()
        self.retiring = waiting

    def terminate_all(self) -> None:
        self.stop.trigger()

    def kill_all(self) -> None:
        """Threads cannot be killed: cut their sockets so any blocked send,
        recv or sendfile fails at once, and give them a bounded time to end."""
        self.stop.trigger()
        for _, sock in list(self.threads.values()):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass        # already closed by its thread
        deadline = time.monotonic() + self.JOIN_LIMIT
        for thread, _ in list(self.threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        for ident, (thread, _) in list(self.threads.items()):
            if thread.is_alive():   # stuck outside the socket: the process exit ends it
                del self.threads[ident]
                self.abandoned.append(Finished(self._remove(ident), "abandoned", False))


def _finished(child: Child, status: int) -> Finished:
    if os.WIFSIGNALED(status):
        return Finished(child, f"signal {os.WTERMSIG(status)}", False)
    code = os.WEXITSTATUS(status)
    return Finished(child, f"exit {code}", code == 0)

