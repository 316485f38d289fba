"""The test harness: the real daemon as a subprocess, the `ftpd` command, raw
sockets, ports, and a Session served in this process over a socketpair.

Ports are never picked by binding, closing and hoping: the daemon (or qemu,
haproxy) binds port 0 and the harness reads the port it got, or the test
binds a socket itself and keeps it, so parallel test workers cannot collide.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, TypeVar

import psutil
import pytest

from ftpd.client import Client, ServerError

PROJECT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (\S+)")
Settings = Dict[str, Dict[str, object]]
T = TypeVar("T")

# A daemon test that only makes sense in one session model (see the
# `concurrency` fixture, which runs every other one in both).
fork_only = pytest.mark.parametrize("concurrency", ["fork"])


# -- processes ----------------------------------------------------------------------

def project_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for subprocesses: this checkout's package first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FTPD_CONFIG", None)
    env.pop("JOURNAL_STREAM", None)
    env["FTPD_ALLOW_PORT_0"] = "1"     # daemons bind port 0; the harness reads the port
    env.update(extra or {})
    return env


def ftpd_argv(*args: str) -> List[str]:
    """The `ftpd` command line of this checkout (for Popen)."""
    return [sys.executable, "-m", "ftpd", *args]


def run_ftpd(*args: str, cwd: Optional[Path] = None, env: Optional[Dict[str, str]] = None,
             input: Optional[str] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the `ftpd` command to its end and capture its output as text."""
    return subprocess.run(ftpd_argv(*args), cwd=cwd, env=project_env(env), input=input,
                          stdin=subprocess.DEVNULL if input is None else None,
                          capture_output=True, text=True, timeout=timeout)


def write_config(path: Path, settings: Settings) -> Path:
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def listening_ports(pid: int) -> List[int]:
    """The TCP ports process `pid` listens on (what it bound port 0 to)."""
    proc = psutil.Process(pid)
    connections = getattr(proc, "net_connections", proc.connections)   # psutil < 6
    return sorted(c.laddr.port for c in connections("tcp")
                  if c.status == psutil.CONN_LISTEN)


def wait_for_port(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """The one port `proc` listens on, once it does."""
    def bound() -> Optional[int]:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited {proc.returncode}")
        ports = listening_ports(proc.pid)
        return ports[0] if ports else None
    return wait_until(bound, timeout, what=f"{proc.args[0]} to listen")


@contextlib.contextmanager
def closed_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port that refuses connections for as long as the block runs: bound
    (so nobody else gets it) but not listening."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as holder:
        holder.bind((host, 0))
        yield holder.getsockname()[1]


# -- raw sockets --------------------------------------------------------------------

def read_reply(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read one LF-terminated line from a raw socket (byte at a time: tests only)."""
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        data += byte
    return data


def recv_all(sock: socket.socket, timeout: float = 5.0, reset_ends: bool = False) -> bytes:
    """Everything until the server closes the connection (or resets it, if
    `reset_ends`: a server that closes with our input unread may do so)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            if not reset_ends:
                raise
            data = b""
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def recv_chunks(sock: socket.socket, count: int, timeout: Optional[float] = None
                ) -> Iterator[bytes]:
    """Up to `count` bytes as they arrive; stops early if the peer closes."""
    if timeout is not None:
        sock.settimeout(timeout)
    remaining = count
    while remaining:
        data = sock.recv(min(remaining, 1 << 20))
        if not data:
            return
        remaining -= len(data)
        yield data


def recv_exact(sock: socket.socket, count: int, timeout: float = 30.0) -> bytes:
    data = b"".join(recv_chunks(sock, count, timeout))
    assert len(data) == count, f"connection closed after {len(data)} of {count} bytes"
    return data


def recv_counted(sock: socket.socket, count: int, digest=None) -> int:
    """Read up to `count` bytes without keeping them; how many came."""
    got = 0
    for data in recv_chunks(sock, count):
        got += len(data)
        if digest is not None:
            digest.update(data)
    return got


# -- the daemon ---------------------------------------------------------------------

class Daemon:
    """One ftpd process with its own config, library and log file."""

    def __init__(self, workdir: Path, settings: Optional[Settings] = None,
                 args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None):
        self.workdir = workdir
        self.root = workdir / "library"
        merged: Settings = {"server": {"listen": "127.0.0.1:0", "root": self.root}}
        for section, values in (settings or {}).items():
            merged.setdefault(section, {}).update(values)
        self.settings = merged
        self.config_path = workdir / "ftpd.conf"
        self.log_path = workdir / "ftpd.log"
        self.args = args or []
        self.env = env
        self.proc: Optional[subprocess.Popen] = None
        self.addresses: List[str] = []

    def write_config(self) -> Path:
        return write_config(self.config_path, self.settings)

    def start(self, timeout: float = 15.0) -> "Daemon":
        """Start and wait for every "listening on" line: the ports it bound."""
        self.write_config()
        root = Path(str(self.settings["server"]["root"]))
        if not root.exists():       # ftpd creates only its built-in default
            root.mkdir(parents=True)
        self.log_file = open(self.log_path, "ab")
        offset = self.log_file.tell()      # a restart must not read the old lines
        self.proc = subprocess.Popen(
            ftpd_argv("-c", str(self.config_path), *self.args),
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file,
            cwd=self.workdir, env=project_env(self.env))
        wanted = len(str(self.settings["server"]["listen"]).split(","))

        def ready() -> Optional[List[str]]:
            if self.proc.poll() is not None:
                raise AssertionError(f"ftpd exited {self.proc.returncode}:\n{self.log()}")
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            found = LISTENING.findall(text)
            return found if len(found) >= wanted and "ftpd serving" in text else None

        self.addresses = wait_until(ready, timeout, what="ftpd to listen")
        return self

    @property
    def port(self) -> int:
        return int(self.addresses[0].rsplit(":", 1)[1])

    @property
    def host(self) -> str:
        return self.addresses[0].rsplit(":", 1)[0].strip("[]")

    @property
    def address(self) -> str:
        """host:port of the first listener, as ftpc takes it."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, timeout: float = 10.0) -> Client:
        return Client(self.host, self.port, timeout=timeout)

    def serves_a_client(self) -> bool:
        """True once a new client gets in and can list (a slot is free and
        the parent has reaped the sessions that held it, in either model)."""
        try:
            with self.client() as client:
                client.list()
                return True
        except ServerError as exc:
            assert exc.code == 421, exc
            return False

    def greeted(self, timeout: float = 10.0) -> socket.socket:
        """A raw connection that has read the FTPD/1 greeting."""
        sock = self.connect(timeout)
        assert read_reply(sock).startswith(b"OK FTPD/1 ")
        return sock

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def children(self) -> List[psutil.Process]:
        try:
            return psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []

    def _children_where(self, zombie: bool) -> List[psutil.Process]:
        found = []
        for child in self.children():
            try:
                if (child.status() == psutil.STATUS_ZOMBIE) == zombie:
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
        return found

    def live_children(self) -> List[psutil.Process]:
        return self._children_where(zombie=False)

    def zombies(self) -> List[psutil.Process]:
        return self._children_where(zombie=True)

    def num_fds(self) -> int:
        return psutil.Process(self.pid).num_fds()

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self.log_file.close()
        return code

    def kill_everything(self) -> None:
        """Last-resort cleanup: no process of ours outlives the test."""
        if self.proc is None:
            return
        for child in self.children():
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if not self.log_file.closed:
            self.log_file.close()


def start_daemons(workdir: Path, concurrency: str, started: List[Daemon],
                  settings: Optional[Settings] = None, args: Optional[List[str]] = None,
                  env: Optional[Dict[str, str]] = None, start: bool = True,
                  name: str = "d") -> Daemon:
    """One more daemon in its own directory under `workdir` (the make_daemon fixture)."""
    directory = workdir / f"{name}{len(started)}"
    directory.mkdir()
    settings = {**(settings or {})}
    settings["server"] = {"concurrency": concurrency, **settings.get("server", {})}
    daemon = Daemon(directory, settings, args, env)
    started.append(daemon)
    return daemon.start() if start else daemon


# -- summary lines from xdist workers -----------------------------------------------

SUMMARY_KEY = "ftpd_summary_lines"
_SUMMARY = pytest.StashKey[List[str]]()


def add_summary_line(config: pytest.Config, line: str) -> None:
    """A line for the end of the terminal summary. Under xdist a worker's
    terminal is not shown: the lines travel back in its workeroutput."""
    lines = config.stash.setdefault(_SUMMARY, [])
    lines.append(line)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[SUMMARY_KEY] = list(lines)


def summary_lines(config: pytest.Config) -> List[str]:
    return config.stash.get(_SUMMARY, [])


# -- a Session in this process ------------------------------------------------------

class LocalSession:
    """A real Session over socket.socketpair(), served in this process, one
    request at a time: no fork, no thread, no port. For per-command error
    cases: the reply must fit in the socket buffer, and a download that
    starts needs TCP (sendfile corks the socket), so it is not for those."""

    def __init__(self, root: Path, settings: Optional[Settings] = None):
        from ftpd import config
        from ftpd.server.parent import open_library
        from ftpd.server.session import Session
        from ftpd.server.spawn import StopFlag
        values = {("server", "root"): str(root)}
        values.update({(section, key): str(value)
                       for section, pairs in (settings or {}).items()
                       for key, value in pairs.items()})
        self.config = config.build({}, overrides=values)
        self.library = open_library(self.config)
        self.client, server = socket.socketpair()
        self.stop = StopFlag()
        self.session = Session(server, "local:0", self.config, self.library, self.stop)

    def ask(self, request: bytes) -> bytes:
        """Send one request line, serve it, return the reply's first line."""
        from ftpd.server.session import CloseSession
        self.client.sendall(request)
        try:
            self.session.serve_one()
        except CloseSession:
            self.session.sock.shutdown(socket.SHUT_WR)
        return read_reply(self.client, timeout=0)

    def close(self) -> None:
        self.client.close()
        self.session.sock.close()
        self.stop.close()
        self.library.close()

    def __enter__(self) -> "LocalSession":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
