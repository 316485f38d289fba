"""How a session is started, counted, stopped and reaped: one class per model.

The parent sees only the `Spawner` interface: spawn(conn, peer, start),
reap(), len() and count_ip(), terminate_all() and kill_all(), and what else
differs between the models (retire, caveats, tidy). What the session side
does once started is in child.py. OS calls go through `ProcessOps` so the
bookkeeping can be unit-tested without forking; functional tests fork for real.
"""

from __future__ import annotations

import abc
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Set, Tuple

from ftpd.server.child import Peer, SessionStart, StopFlag, run_as_process, run_as_thread
from ftpd.server.guard import Guard
from ftpd.server.library import Library

log = logging.getLogger("ftpd.server")


class ProcessOps:
    """The thin layer over the process calls the parent makes."""

    fork = staticmethod(os.fork)
    waitpid = staticmethod(os.waitpid)
    kill = staticmethod(os.kill)


PROCESS_OPS = ProcessOps()


@dataclass
class Child:
    ident: int                # pid in fork mode, thread serial in thread mode
    peer: Peer
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Finished:
    child: Child
    status: str               # "exit 0", "exit 1", "signal 9"
    clean: bool


class Spawner(abc.ABC):
    """Bookkeeping shared by both concurrency models; each model says what
    starting, stopping and ending a session means for it."""

    def __init__(self) -> None:
        self.children: Dict[int, Child] = {}
        self.per_ip: Counter[str] = Counter()

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

    @abc.abstractmethod
    def spawn(self, conn: socket.socket, peer: Peer, start: SessionStart) -> int:
        """Start a session for `conn` (the caller closes its own copy); its ident."""

    @abc.abstractmethod
    def reap(self) -> List[Finished]:
        """The sessions that have ended since the last call, forgotten."""

    @abc.abstractmethod
    def terminate_all(self) -> None:
        """Ask every session to finish its request and close (drain)."""

    @abc.abstractmethod
    def kill_all(self) -> None:
        """End every session now."""

    @abc.abstractmethod
    def retire(self, release: Callable[[], None]) -> None:
        """Run `release` once no running session can still use what it frees
        (a replaced library)."""

    @abc.abstractmethod
    def caveats(self, guard: Guard) -> List[str]:
        """What of `guard` this model cannot give its sessions, for the log."""

    @abc.abstractmethod
    def tidy(self, finished: Finished, library: Library) -> None:
        """After a session ended uncleanly: remove what it may have left."""


class ForkSpawner(Spawner):
    """One process per session (the default): a crash takes only its client."""

    def __init__(self, release_parent: Callable[[], None], ops: ProcessOps = PROCESS_OPS):
        super().__init__()
        self.release_parent = release_parent     # closes the parent's fds in a child
        self.ops = ops

    def spawn(self, conn: socket.socket, peer: Peer, start: SessionStart) -> int:
        gc.freeze()            # keep shared pages shared: no GC writes to them
        pid = self.ops.fork()
        if pid == 0:
            run_as_process(start, conn, peer, self.release_parent)
        self._add(Child(pid, peer))
        return pid

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

    def retire(self, release: Callable[[], None]) -> None:
        release()              # at once: every child has its own copy

    def caveats(self, guard: Guard) -> List[str]:
        return []

    def tidy(self, finished: Finished, library: Library) -> None:
        # A dead child's pid names the upload temps it may have left behind.
        library.remove_session_temps(finished.child.ident)


class ThreadSpawner(Spawner):
    """One thread per session in the server process: cheap to start and to
    keep idle, but sessions share the GIL, the memory and the fate of the
    process. Only the parent loop touches the bookkeeping; a finishing
    thread queues its result and wakes the loop through `wake`."""

    JOIN_LIMIT = 5.0           # kill_all: how long sessions may take to notice

    def __init__(self, wake: Callable[[], None]):
        super().__init__()
        self.wake = wake
        self.stop = StopFlag()          # one flag reaches every session
        self.serial = 0
        self.threads: Dict[int, Tuple[threading.Thread, socket.socket]] = {}
        self.done: Deque[Tuple[int, int]] = deque()   # (ident, exit code), from threads
        self.abandoned: List[Finished] = []
        self.retiring: List[Tuple[Set[int], Callable[[], None]]] = []

    def spawn(self, conn: socket.socket, peer: Peer, start: SessionStart) -> int:
        # The caller closes `conn` after spawn; the thread keeps the fd itself.
        sock = socket.socket(conn.family, conn.type, conn.proto, fileno=conn.detach())
        self.serial += 1
        ident = self.serial
        thread = threading.Thread(target=self._run, args=(ident, sock, peer, start),
                                  name=f"session-{ident}", daemon=True)
        self._add(Child(ident, peer))
        self.threads[ident] = (thread, sock)
        thread.start()
        return ident

    def _run(self, ident: int, sock: socket.socket, peer: Peer, start: SessionStart) -> None:
        code = os.EX_SOFTWARE
        try:
            code = run_as_thread(start, sock, peer, self.stop)
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

    def caveats(self, guard: Guard) -> List[str]:
        found = []
        if guard.plan.chroot or guard.plan.uid:
            found.append("concurrency = thread: sessions share the server's process, so "
                         "they are neither chrooted nor dropped to [server] user; use fork")
        if guard.seccomp != "no":
            found.append(f"concurrency = thread: [server] seccomp = {guard.seccomp} has no "
                         "effect, a filter would bind the whole server; use fork")
        if guard.landlock_abi:
            found.append("concurrency = thread: sessions are not restricted by Landlock, "
                         "which works per process; use fork")
        return found

    def tidy(self, finished: Finished, library: Library) -> None:
        """Nothing to do: a thread's temps carry the server's pid, so none
        names this session, and an error in a thread unwinds through the
        upload, which drops its own temp."""

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


def spawner_for(concurrency: str, release_parent: Callable[[], None],
                wake: Callable[[], None]) -> Spawner:
    """`[server] concurrency` -> its spawner. `release_parent` closes the
    parent's fds in a forked child; `wake` wakes the parent's loop."""
    if concurrency == "thread":
        return ThreadSpawner(wake)
    return ForkSpawner(release_parent)


def _finished(child: Child, status: int) -> Finished:
    if os.WIFSIGNALED(status):
        return Finished(child, f"signal {os.WTERMSIG(status)}", False)
    code = os.WEXITSTATUS(status)
    return Finished(child, f"exit {code}", code == 0)
