"""The contestants: vsftpd and ftpd (fork and thread), each on its own
loopback port with its library on tmpfs, plus the shared workspace."""

from __future__ import annotations

import abc
import hashlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import psutil

PROJECT = Path(__file__).resolve().parent.parent
TMPFS = Path("/dev/shm")
MiB = 1 << 20

T = TypeVar("T")


class BenchError(Exception):
    """The bench cannot run (missing tool, server did not start)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], T], limit: float, what: str) -> T:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise BenchError(f"timed out after {limit:g}s waiting for {what}")


def ensure_installed(binary: str, package: str, instead: str) -> str:
    """The path of `binary`; its Debian package installed (apt-get) when missing."""
    search = "/usr/sbin:/sbin:/usr/bin:/bin"
    found = shutil.which(binary) or shutil.which(binary, path=search)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError(f"{binary} is missing: run `apt-get install {package}` as root "
                         f"({instead})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=True,
                   timeout=600, stdout=subprocess.DEVNULL)
    found = shutil.which(binary, path=search)
    if not found:
        raise BenchError(f"apt-get installed {package} but no {binary} binary was found")
    return found


def ensure_vsftpd() -> str:
    return ensure_installed("vsftpd", "vsftpd", "or use --no-vsftpd")


class Workspace:
    """A directory on tmpfs holding the test files and every library."""

    def __init__(self, big_size: int, small_size: int, medium_size: int):
        base = TMPFS if TMPFS.is_dir() else None
        self.dir = Path(tempfile.mkdtemp(prefix="ftpd-bench-", dir=base))
        self.big = self.dir / "big.bin"
        self.small = self.dir / "small.bin"
        self.medium = self.dir / "medium.bin"      # the source of parallel uploads
        self.big_size, self.small_size = big_size, small_size
        self._fill(self.big, big_size)
        self._fill(self.small, small_size)
        self._fill(self.medium, medium_size)
        self.big_sha = _sha256(self.big)
        self.medium_sha = _sha256(self.medium)

    @staticmethod
    def _fill(path: Path, size: int) -> None:
        block = os.urandom(MiB)   # incompressible, so nothing in the path can cheat
        with open(path, "wb") as out:
            for offset in range(0, size, MiB):
                out.write(block[:min(MiB, size - offset)])

    def library(self, name: str) -> Path:
        """A library directory holding hard links to the test files."""
        root = self.dir / name
        root.mkdir(mode=0o755)
        for path in (self.big, self.small):
            os.link(path, root / path.name)
        return root

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def no_core_dumps() -> None:
    """The crash measurement kills a session with SIGSEGV: no core files."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class Contestant(abc.ABC):
    """One running server. `proto` is what benchc speaks to it."""

    name = ""
    proto = ""
    families: Optional[frozenset] = None     # the measurements it takes part in; None: all

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.upload_dir: Path = Path()

    @abc.abstractmethod
    def start(self) -> "Contestant":
        """Start the server and wait until it serves."""

    @property
    def pid(self) -> int:
        return self._started().pid

    def launch(self, argv: List[str], banner: bytes,
               preexec_fn: Optional[Callable[[], None]] = None) -> None:
        """Start `argv` and wait until its port answers with `banner`."""
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=preexec_fn)
        wait_for(lambda: self._greets(banner), 15, f"{self.name} to greet")

    def _greets(self, banner: bytes) -> bool:
        proc = self._started()
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else b""
            raise BenchError(f"{self.name} exited: {stderr.decode()!r}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                return sock.recv(64).startswith(banner)
        except OSError:
            return False

    def _started(self) -> subprocess.Popen:
        if self.proc is None:
            raise BenchError(f"{self.name} was never started")
        return self.proc

    def processes(self) -> List[psutil.Process]:
        """The server and every process below it (sessions, helpers)."""
        try:
            top = psutil.Process(self.pid)
            return [top] + top.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    @property
    def upload_path(self) -> str:
        return self.upload_path_for("")

    def upload_path_for(self, tag: str) -> str:
        return f"up{tag}.bin"

    def restart_if_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.start()

    def clear_uploads(self) -> None:
        for path in self.upload_dir.glob("up*.bin"):
            path.unlink()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            for proc in self.processes():
                proc.kill()
            self.proc.wait(5)


VSFTPD_CONF = """\
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root={root}
write_enable=YES
anon_upload_enable=YES
anon_other_write_enable=YES
anon_umask=022
max_clients=0
max_per_ip=0
pasv_enable=YES
connect_from_port_20=NO
xferlog_enable=NO
dirmessage_enable=NO
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
"""


class Vsftpd(Contestant):
    name = "vsftpd"
    proto = "ftp"

    def __init__(self, workspace: Workspace, binary: str):
        super().__init__()
        root = workspace.library("vsftpd")
        # vsftpd refuses a writable chroot: the root stays root's, uploads go below.
        self.upload_dir = root / "up"
        self.upload_dir.mkdir()
        shutil.chown(self.upload_dir, "ftp", "ftp")
        self.conf = workspace.dir / "vsftpd.conf"
        self.conf.write_text(VSFTPD_CONF.format(port=self.port, root=root))
        self.binary = binary

    def upload_path_for(self, tag: str) -> str:
        return f"up/up{tag}.bin"

    def start(self) -> "Vsftpd":
        self.launch([self.binary, str(self.conf)], b"220", preexec_fn=no_core_dumps)
        return self


class PythonServer(Contestant):
    """A server run from this checkout with this Python; it logs `ready_text`
    once it listens. It binds port 0 and `port` is read from the running
    process: no port is picked here and bound later (tests run in parallel)."""

    ready_text = ""

    def __init__(self, workspace: Workspace, name: str) -> None:
        super().__init__()
        self.name = name
        self.upload_dir = workspace.library(name)
        self.log = workspace.dir / f"{name}.log"

    @abc.abstractmethod
    def argv(self) -> List[str]:
        """The command line that starts the server."""

    def start(self) -> "PythonServer":
        env = dict(os.environ, PYTHONPATH=str(PROJECT), FTPD_ALLOW_PORT_0="1")   # listen on :0
        env.pop("FTPD_CONFIG", None)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env, cwd=self.log.parent,
                                         preexec_fn=no_core_dumps)
        wait_for(self._serving, 15, f"{self.name} to listen")
        listening = psutil.Process(self.proc.pid).net_connections("tcp")
        self.port = next(c.laddr.port for c in listening if c.status == psutil.CONN_LISTEN)
        return self

    def _serving(self) -> bool:
        if self._started().poll() is not None:
            raise BenchError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
        return self.ready_text in self.log.read_text(errors="replace")


class Ftpd(PythonServer):
    proto = "ftpd"
    ready_text = "ftpd serving"

    def __init__(self, workspace: Workspace, concurrency: str):
        super().__init__(workspace, f"ftpd-{concurrency}")
        self.conf = workspace.dir / f"{self.name}.conf"
        # SHA-256 and atomic commit are always on; fsync stays at its default (yes).
        self.conf.write_text(
            f"[server]\nlisten = 127.0.0.1:0\nroot = {self.upload_dir}\n"
            f"concurrency = {concurrency}\nmax_clients = 5000\nmax_clients_per_ip = 5000\n"
            "backlog = 4096\n")

    def argv(self) -> List[str]:
        return [sys.executable, "-m", "ftpd", "-c", str(self.conf)]


class Floor(PythonServer):
    """bench/floor.py: a CPython fork-per-connection server that does nothing
    but greet and send files, the least any CPython fork server costs."""

    proto = "ftpd"
    ready_text = "floor serving"
    families = frozenset({"sessions", "burst", "latency", "idle_uss"})

    def __init__(self, workspace: Workspace):
        super().__init__(workspace, "cpython-floor")

    def argv(self) -> List[str]:
        return [sys.executable, str(PROJECT / "bench" / "floor.py"), "0", str(self.upload_dir)]
