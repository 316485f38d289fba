"""systemd glue for real: sd_notify to a socket we bind, socket activation via
systemd-socket-activate, and the units checked by systemd-analyze."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.harness import PROJECT, ftpd_argv, read_reply, wait_until, write_config

UNITS = PROJECT / "systemd"
ANALYZE = shutil.which("systemd-analyze")
ACTIVATE = shutil.which("systemd-socket-activate")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(15)

    def next(self) -> str:
        return self.sock.recv(4096).decode()

    def close(self):
        self.sock.close()


def test_sd_notify_ready_reloading_stopping(make_daemon, tmp_path):
    listener = NotifyListener(str(tmp_path / "notify"))
    daemon = make_daemon(env={"NOTIFY_SOCKET": str(tmp_path / "notify")}, start=False)
    daemon.write_config()
    daemon.start()
    assert listener.next() == "READY=1"
    with daemon.client() as client:                 # READY means accepting
        assert client.list() == []

    daemon.send_signal(signal.SIGHUP)
    reloading = listener.next().split("\n")
    assert reloading[0] == "RELOADING=1"
    assert re.fullmatch(r"MONOTONIC_USEC=\d+", reloading[1])
    assert listener.next() == "READY=1"

    daemon.send_signal(signal.SIGTERM)
    assert listener.next() == "STOPPING=1"
    assert daemon.proc.wait(20) == 0
    listener.close()


def test_sd_notify_to_an_abstract_socket(make_daemon):
    name = f"ftpd-test-{os.getpid()}-{id(make_daemon)}"
    listener = NotifyListener("\0" + name)
    make_daemon(env={"NOTIFY_SOCKET": "@" + name})
    assert listener.next() == "READY=1"
    listener.close()


# systemd-socket-activate takes the sockets it is given (LISTEN_FDS, as from
# systemd itself) besides its own -l ones, which cannot be port 0. The test
# binds port 0 and keeps the socket; this launcher puts it at fd 3 for it.
WITH_FD3 = ("import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); fd == 3 or os.close(fd); "
            "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
            "os.execv(sys.argv[2], sys.argv[2:])")


@pytest.fixture
def activated(tmp_path):
    """Start ftpd under systemd-socket-activate, handing `sock` over (our copy
    is closed); yield (proc, log)."""
    if ACTIVATE is None:
        pytest.skip("systemd-socket-activate is not installed")
    procs = []

    def start(config_path, sock):
        log = tmp_path / f"activate{len(procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", WITH_FD3, str(sock.fileno()), ACTIVATE,
                 "-E", f"PYTHONPATH={PROJECT}", *ftpd_argv("-c", str(config_path))],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=[sock.fileno()])
        sock.close()
        procs.append(proc)
        wait_until(lambda: "Listening on" in log.read_text(), what="systemd-socket-activate")
        return proc, log

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_socket_activation_serves_on_the_inherited_socket(activated, tmp_path):
    with socket.socket() as squatter:             # [server] listen is busy: binding would fail
        squatter.bind(("127.0.0.1", 0))
        busy = squatter.getsockname()[1]
        (tmp_path / "library").mkdir()
        config = write_config(tmp_path / "ftpd.conf", {"server": {
            "listen": f"127.0.0.1:{busy}", "root": tmp_path / "library"}})
        activation = socket.create_server(("127.0.0.1", 0))
        port = activation.getsockname()[1]
        proc, log = activated(config, activation)
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            assert read_reply(sock, timeout=15).startswith(b"OK FTPD/1")
            sock.sendall(b"L\n")
            assert read_reply(sock) == b"OK 0\n"
        assert f"listening on 127.0.0.1:{port}" in log.read_text()

        write_config(config, {"server": {"listen": "127.0.0.1:0", "root": tmp_path / "library"}})
        proc.send_signal(signal.SIGHUP)           # inherited sockets are never rebound
        wait_until(lambda: "configuration reloaded" in log.read_text(), what="the reload")
        assert "sockets come from socket activation" in log.read_text()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert read_reply(sock).startswith(b"OK FTPD/1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_socket_activation_rejects_a_datagram_socket(activated, tmp_path):
    config = write_config(tmp_path / "ftpd.conf", {"server": {"root": tmp_path / "library"}})
    activation = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    activation.bind(("127.0.0.1", 0))
    address = activation.getsockname()
    proc, log = activated(config, activation)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"hello", address)                     # makes it start ftpd
    assert proc.wait(20) == 78
    assert "fd 3 is not a listening TCP socket" in log.read_text()


# What systemd does with ftpd.socket and ftpd-metrics.socket both active:
# fds 3.. in order, named by FileDescriptorName= (LISTEN_FDNAMES).
WITH_NAMED_FDS = (
    "import fcntl, os, sys; fds = [int(fd) for fd in sys.argv[1].split(',')]; "
    "moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]; [os.close(fd) for fd in fds]; "
    "[os.dup2(fd, 3 + i) for i, fd in enumerate(moved)]; [os.close(fd) for fd in moved]; "
    "os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_PID=str(os.getpid()), "
    "LISTEN_FDNAMES=sys.argv[2]); os.execv(sys.executable, [sys.executable, *sys.argv[3:]])")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def test_a_socket_named_metrics_serves_the_endpoint_instead_of_the_config(tmp_path):
    """ftpd-metrics.socket: the socket named "metrics" turns the endpoint on
    ([metrics] listen empty), the other serves clients, and a reload never
    rebinds either (a busy [metrics] listen is not even tried)."""
    (tmp_path / "library").mkdir()
    config = write_config(tmp_path / "ftpd.conf", {"server": {"root": tmp_path / "library"}})
    clients, metrics = (socket.create_server(("127.0.0.1", 0)) for _ in range(2))
    port, metrics_port = clients.getsockname()[1], metrics.getsockname()[1]
    log = tmp_path / "ftpd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", WITH_NAMED_FDS, f"{clients.fileno()},{metrics.fileno()}",
             "ftpd.socket:metrics", "-m", "ftpd", "-c", str(config), "serve"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=PROJECT,
            pass_fds=[clients.fileno(), metrics.fileno()])
    clients.close()
    metrics.close()
    try:
        wait_until(lambda: "metrics on" in log.read_text(), what="the start line")
        assert f"metrics on http://127.0.0.1:{metrics_port}/metrics from systemd" \
            in log.read_text()
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            assert read_reply(sock, timeout=15).startswith(b"OK FTPD/1")
        wait_until(lambda: "ftpd_sessions_started_total 1.0" in scrape(metrics_port),
                   what="the session counted")
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            busy = squatter.getsockname()[1]
            write_config(config, {"server": {"root": tmp_path / "library"},
                                  "metrics": {"listen": f"127.0.0.1:{busy}"}})
            proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "configuration reloaded" in log.read_text(), what="the reload")
        assert 'ftpd_reloads_total{result="ok"} 1.0' in scrape(metrics_port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


ADOPT = """
import os, socket, sys
from ftpd.server import systemd
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
if listener.fileno() != 3:
    os.dup2(listener.fileno(), 3)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=sys.argv[1] or str(os.getpid()))
bound = systemd.listen_fds()
print(None if bound is None else sorted(bound.clients) == [listener.getsockname()])
print("LISTEN_FDS" in os.environ, "LISTEN_PID" in os.environ)
"""


ONLY_METRICS = """
import os, socket
from ftpd.server import systemd
listener = socket.create_server(("127.0.0.1", 0))
os.dup2(listener.fileno(), 3)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="metrics")
try:
    systemd.listen_fds()
except systemd.ActivationError as exc:
    print(exc)
"""


def test_only_a_metrics_socket_is_refused_with_the_unit_to_start():
    out = subprocess.run([sys.executable, "-c", ONLY_METRICS], capture_output=True, text=True,
                         cwd=PROJECT, timeout=30).stdout
    assert "none for clients: start ftpd.socket" in out


def test_listen_fds_adopts_fd_3_only_for_our_pid_and_hides_the_variables():
    def run(pid_arg):
        return subprocess.run([sys.executable, "-c", ADOPT, pid_arg], capture_output=True,
                              text=True, cwd=PROJECT, timeout=30).stdout.split("\n")
    assert run("")[:2] == ["True", "False False"]
    assert run("1")[:2] == ["None", "True True"]        # meant for another process


# -- the unit files ---------------------------------------------------------------

def runnable_units(tmp_path):
    """Copies of the units whose ExecStart= points at this checkout's ftpd."""
    program = Path(sys.executable).parent / "ftpd"
    if not program.exists():
        pytest.skip(f"{program} is missing (pip install -e . first)")
    units = ("ftpd.service", "ftpd.socket", "ftpd-metrics.socket")
    for unit in units:
        text = (UNITS / unit).read_text().replace("/opt/ftpd/bin/ftpd", str(program))
        (tmp_path / unit).write_text(text)
    return [str(tmp_path / unit) for unit in units]


@needs_analyze
def test_units_pass_systemd_analyze_verify(tmp_path):
    result = subprocess.run([ANALYZE, "verify", *runnable_units(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ftpd" not in result.stderr, result.stderr       # no warnings either


@needs_analyze
def test_service_sandbox_rates_2_or_better(tmp_path):
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--threshold=20",
                             str(UNITS / "ftpd.service")], capture_output=True, text=True,
                            timeout=60)
    match = re.search(r"Overall exposure level for ftpd.service: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout
    assert result.returncode == 0, result.stdout


def syscall_group(name):
    out = subprocess.run([ANALYZE, "syscall-filter", name], capture_output=True,
                         text=True, timeout=60).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            calls |= syscall_group(word) if word.startswith("@") else {word}
    return calls


@needs_analyze
def test_syscall_filter_keeps_what_the_daemon_needs():
    allowed, denied = set(), set()
    for line in (UNITS / "ftpd.service").read_text().splitlines():
        if line.startswith("SystemCallFilter="):
            value = line.split("=", 1)[1]
            target = denied if value.startswith("~") else allowed
            for word in value.lstrip("~").split():
                target |= syscall_group(word) if word.startswith("@") else {word}
    effective = allowed - denied
    needed = {"fork", "clone", "clone3", "wait4", "sendfile", "chroot", "setuid", "setgid",
              "setgroups", "setresuid", "setresgid", "prctl", "prlimit64", "accept4",
              "epoll_wait", "pipe2", "socket", "sendto", "renameat2", "linkat", "fsync",
              "unlinkat", "openat", "kill"}
    assert needed <= effective, sorted(needed - effective)
