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
import time
from collections import Counter
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
        return bool(select.select([self.read_fd], [], [], 0)[0])

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
            gc.unfreeze()
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


def _finished(child: Child, status: int) -> Finished:
    if os.WIFSIGNALED(status):
        return Finished(child, f"signal {os.WTERMSIG(status)}", False)
    code = os.WEXITSTATUS(status)
    return Finished(child, f"exit {code}", code == 0)

