"""Daemon mode and the pidfile.

`ftpd serve --daemon` checks the config, the pidfile and binds its sockets
while still attached to the terminal, then detaches with python-daemon's
DaemonContext. The launching process waits on a pipe until the detached
server reports ready (or why it failed), so its exit status is true: 0 means
"serving, pidfile written".
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import time
from typing import Callable, List, Optional

from ftpd import fileutil

# python-daemon and psutil are imported where used: the serving parent
# never needs them, and every session fork copies the parent's page tables,
# so what the parent has loaded costs on every connection.

log = logging.getLogger("ftpd.daemon")

DAEMON_UMASK = 0o027
READY_TIMEOUT = 60.0
# Our own map: job-control signals from a terminal are ignored; every other
# signal is the server's own business (it installs its handlers on start).
SIGNAL_MAP = {signal.SIGTSTP: None, signal.SIGTTIN: None, signal.SIGTTOU: None}


class DaemonError(Exception):
    """Cannot start: another server runs, or the pidfile cannot be written."""


class NotRunning(Exception):
    """No live ftpd server was found for this config."""


# -- the pidfile --------------------------------------------------------------------

def read_pid(path: str) -> Optional[int]:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_ftpd(pid: int) -> bool:
    """Alive and an ftpd (a recycled pid belonging to something else is stale)."""
    import psutil

    if pid == os.getpid():
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "ftpd" in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return psutil.pid_exists(pid) and pid != os.getpid()


class PidFile:
    def __init__(self, path: str):
        self.path = path
        self.claimed = False

    def check(self) -> None:
        """Refuse early (still on the terminal) when a live server owns it."""
        pid = read_pid(self.path)
        if pid is not None and is_ftpd(pid):
            raise DaemonError(f"{self.path}: ftpd is already running as pid {pid}")

    def claim(self) -> None:
        """Write our pid atomically: a reader sees no file or a whole one."""
        try:
            # 0644: readable by `ftpd status` whatever the umask
            fileutil.write_atomically(self.path, f"{os.getpid()}\n".encode("ascii"), 0o644,
                                      commit=self._link_or_replace_stale)
        except OSError as exc:
            raise DaemonError(f"cannot write pidfile {self.path}: {exc.strerror}") from exc
        self.claimed = True

    def _link_or_replace_stale(self, temp: str, path: str) -> None:
        try:
            os.link(temp, path)          # fails if one exists
        except FileExistsError:
            self.check()                 # a live server's pidfile is never replaced
            log.warning("replacing stale pidfile %s (pid %s)", path, read_pid(path))
            os.replace(temp, path)

    def release(self) -> None:
        if self.claimed and read_pid(self.path) == os.getpid():
            fileutil.unlink_quietly(self.path)
        self.claimed = False

    def __enter__(self) -> "PidFile":
        self.claim()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


# -- detaching ---------------------------------------------------------------------

Serve = Callable[[Callable[[str], None]], int]


def daemonize(keep_fds: List[int], serve: Serve) -> int:
    """Run `serve(ready)` in a detached daemon; return the launcher's exit status.

    `serve` calls ready("") once serving, or ready("<why not>")."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return _wait_ready(read_fd, pid)
    os.close(read_fd)
    import daemon as python_daemon

    context = python_daemon.DaemonContext(
        # The launch directory stays the working directory so relative paths in
        # the config mean the same place on every reload.
        detach_process=True, umask=DAEMON_UMASK, working_directory=os.getcwd(),
        files_preserve=keep_fds + [write_fd], signal_map=SIGNAL_MAP)
    context.open()     # the forked child exits in here; the daemon goes on
    reporter = _ReadyPipe(write_fd)
    try:
        return serve(reporter)
    except BaseException as exc:
        log.exception("ftpd daemon failed")
        reporter(f"ftpd: {exc}")
        raise
    finally:
        reporter.close()


class _ReadyPipe:
    """The daemon's one message to the launcher: "" (ready) or an error."""

    def __init__(self, fd: int):
        self.fd: Optional[int] = fd

    def __call__(self, error: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, (error or "ready").encode("utf-8", "replace")[:4000])
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _wait_ready(read_fd: int, child: int) -> int:
    deadline = time.monotonic() + READY_TIMEOUT
    message, timed_out = b"", True
    try:
        while select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            data = os.read(read_fd, 4096)
            if not data:
                timed_out = False
                break
            message += data
    finally:
        os.close(read_fd)
        os.waitpid(child, 0)       # DaemonContext's first fork exits at once
    if message == b"ready":
        return 0
    if message:
        print(message.decode("utf-8", "replace"), file=sys.stderr)
    elif timed_out:
        print(f"ftpd: the daemon was not ready after {READY_TIMEOUT:g}s (see its log)",
              file=sys.stderr)
    else:
        print("ftpd: the daemon exited before it was ready (see its log)", file=sys.stderr)
    return 1
