"""Shared fixtures: a real ftpd daemon as a subprocess on a loopback port.

The daemon listens on port 0 and the fixture reads the port it got from the
"listening on" log line, so parallel runs never race for a free port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import psutil
import pytest

from ftpd.client import Client

PROJECT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (\S+)")


def project_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for subprocesses: this checkout's package first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FTPD_CONFIG", None)
    env.pop("JOURNAL_STREAM", None)
    env.update(extra or {})
    return env


def write_config(path: Path, settings: Dict[str, Dict[str, object]]) -> Path:
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Daemon:
    """One ftpd process with its own config, library and log file."""

    def __init__(self, workdir: Path, settings: Optional[Dict[str, Dict[str, object]]] = None,
                 args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None):
        self.workdir = workdir
        self.root = workdir / "library"
        merged: Dict[str, Dict[str, object]] = {
            "server": {"listen": "127.0.0.1:0", "root": self.root},
        }
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
        self.write_config()
        self.log_file = open(self.log_path, "ab")
        offset = self.log_file.tell()      # a restart must not read the old lines
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ftpd", "-c", str(self.config_path)] + self.args,
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file,
            cwd=self.workdir, env=project_env(self.env))
        wanted = len(str(self.settings["server"]["listen"]).split(","))

        def ready():
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
        from ftpd.client import ServerError
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
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock

    def children(self) -> List[psutil.Process]:
        try:
            return psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []

    def live_children(self) -> List[psutil.Process]:
        alive = []
        for child in self.children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
            except psutil.NoSuchProcess:
                pass
        return alive

    def zombies(self) -> List[psutil.Process]:
        found = []
        for child in self.children():
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
        return found

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


@pytest.fixture(params=["fork", "thread"])
def concurrency(request) -> str:
    """Every daemon test runs in both session models. A test that only makes
    sense for one uses @fork_only, or passes [server] concurrency itself."""
    return request.param


fork_only = pytest.mark.parametrize("concurrency", ["fork"])


@pytest.fixture
def make_daemon(tmp_path, concurrency):
    """Factory: make_daemon(settings={...}) starts a daemon; all are cleaned up."""
    started: List[Daemon] = []

    def factory(settings=None, args=None, env=None, start=True, name="d") -> Daemon:
        workdir = tmp_path / f"{name}{len(started)}"
        workdir.mkdir()
        settings = {**(settings or {})}
        settings["server"] = {"concurrency": concurrency, **settings.get("server", {})}
        daemon = Daemon(workdir, settings, args, env)
        started.append(daemon)
        return daemon.start() if start else daemon

    yield factory
    for daemon in started:
        daemon.kill_everything()


@pytest.fixture
def daemon(make_daemon) -> Daemon:
    return make_daemon()


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


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything until the server closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
