"""Several ftpd nodes on one shared library behind a real HAProxy (send-proxy-v2)."""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ftpd.server import proxy
from ftpd.client import Client, ClientError
from ftpd.server.library import TEMP_PREFIX
from tests.harness import read_reply, recv_all, wait_until

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed "
                                "(.ci/run installs it from Debian's packages)")

HAPROXY_CONFIG = """
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A health check's reply may wait this long (without it: `inter`, 300 ms,
    # which a forked greeting on a loaded 2-core machine can miss, marking a
    # healthy node down); a dead node still refuses the connect at once.
    timeout check 5s
    retries 3
    option redispatch
frontend ftpd
    bind fd@{fd}
    default_backend nodes
backend nodes
    balance {balance}
    option tcp-check
    tcp-check expect rstring ^OK\\ FTPD/1
    tcp-check send Q\\r\\n
    tcp-check expect rstring ^OK\\ bye
{servers}
"""


class Balancer:
    def __init__(self, workdir: Path, nodes, balance: str = "roundrobin"):
        # The frontend socket is bound here, on port 0, and inherited (fd@):
        # no port is picked first and bound later by another process.
        frontend = socket.create_server(("127.0.0.1", 0))
        self.port = frontend.getsockname()[1]
        servers = "\n".join(
            f"    server n{i} {node.host}:{node.port} send-proxy-v2 check check-send-proxy "
            f"inter 300 fall 2 rise 1" for i, node in enumerate(nodes))
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(HAPROXY_CONFIG.format(fd=frontend.fileno(), balance=balance,
                                                     servers=servers))
        self.log = open(workdir / "haproxy.log", "wb")
        with frontend:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config)],
                                         stdout=self.log, stderr=self.log,
                                         pass_fds=[frontend.fileno()])
        wait_until(self.greets, timeout=20, what="haproxy to forward to a node")

    def greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                return read_reply(sock, 2).startswith(b"OK FTPD/1")
        except OSError:
            return False

    def client(self, source: str = "127.0.0.1", timeout: float = 30) -> Client:
        return Client("127.0.0.1", self.port, timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def cluster(make_daemon, tmp_path):
    shared = tmp_path / "shared-library"
    shared.mkdir()
    settings = {"server": {"root": shared, "proxy_protocol": "yes",
                           "trusted_proxies": "127.0.0.1", "max_clients_per_ip": 50}}
    nodes = [make_daemon(settings, name=f"node{i}") for i in range(3)]
    for node in nodes:
        node.root = shared
    balancer = Balancer(tmp_path, nodes)
    yield nodes, balancer, shared
    balancer.stop()


def temps(root: Path):
    return [p.name for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_many_clients_through_haproxy_with_verification(cluster, tmp_path):
    nodes, balancer, shared = cluster
    failures = []

    def worker(index):
        data = os.urandom(200_000 + index)
        src = tmp_path / f"src{index}"
        src.write_bytes(data)
        try:
            with balancer.client() as c:
                c.put(str(src), f"file{index}")
            with balancer.client() as c:
                out = tmp_path / f"out{index}"
                c.get(f"file{index}", str(out))
                assert out.read_bytes() == data
                assert c.hash(f"file{index}")[1] == hashlib.sha256(data).hexdigest()
        except Exception as exc:          # collected and asserted below
            failures.append((index, repr(exc)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    assert sorted(p.name for p in shared.iterdir()) == sorted(f"file{i}" for i in range(24))
    served = [n for n in nodes if "transfer 127.0.0.1:" in n.log()]
    assert len(served) >= 2, "the balancer spread the sessions over the nodes"


def test_logs_and_status_see_the_real_client_address(cluster):
    nodes, balancer, _ = cluster
    with socket.create_connection(("127.0.0.1", balancer.port), timeout=10,
                                  source_address=("127.0.0.7", 0)) as sock:
        real_port = sock.getsockname()[1]
        assert read_reply(sock).startswith(b"OK FTPD/1")
        sock.sendall(b"Q\n")
        recv_all(sock)
    wait_until(lambda: any(f"session start 127.0.0.7:{real_port}" in n.log() for n in nodes),
               what="the real address in a node's log")


def test_per_ip_limit_counts_real_clients_not_the_balancer(make_daemon, tmp_path):
    shared = tmp_path / "lib"
    node = make_daemon({"server": {"root": shared, "proxy_protocol": "yes",
                                   "trusted_proxies": "127.0.0.1", "max_clients_per_ip": 2}})
    balancer = Balancer(tmp_path, [node])
    try:
        held = []
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", balancer.port), timeout=10,
                                            source_address=("127.0.0.8", 0))
            assert read_reply(sock).startswith(b"OK FTPD/1")
            held.append(sock)
        with socket.create_connection(("127.0.0.1", balancer.port), timeout=10,
                                      source_address=("127.0.0.8", 0)) as third:
            assert read_reply(third) == b"ERR 421 too many connections from your address\n"
        with socket.create_connection(("127.0.0.1", balancer.port), timeout=10,
                                      source_address=("127.0.0.9", 0)) as other:
            assert read_reply(other).startswith(b"OK FTPD/1")   # another client is fine
        for sock in held:
            sock.close()
    finally:
        balancer.stop()


def test_untrusted_or_missing_proxy_header_is_cut_off(make_daemon):
    node = make_daemon({"server": {"proxy_protocol": "yes", "trusted_proxies": "127.0.0.1"}})
    spoof = proxy.build_v2(("203.0.113.66", 1234), ("127.0.0.1", node.port))
    with socket.create_connection((node.host, node.port), timeout=10,
                                  source_address=("127.0.0.9", 0)) as sock:
        sock.sendall(spoof + b"L\n")
        try:
            assert recv_all(sock) == b""                  # untrusted: no greeting
        except ConnectionResetError:
            pass                                          # or a reset: as good
    with socket.create_connection((node.host, node.port), timeout=10) as sock:
        sock.sendall(b"L\n")                               # trusted, but no header
        assert recv_all(sock, timeout=15) == b""
    with socket.create_connection((node.host, node.port), timeout=10) as sock:
        sock.sendall(proxy.build_v1(("198.51.100.1", 999), ("127.0.0.1", node.port)))
        assert read_reply(sock).startswith(b"OK FTPD/1")  # trusted with header
    wait_until(lambda: "not a trusted proxy" in node.log(), what="the refusal log line")
    assert "session start 203.0.113.66" not in node.log()
    wait_until(lambda: "session start 198.51.100.1:999" in node.log(), what="real address")


def test_node_killed_mid_download_ftpc_retries_and_resumes(cluster, tmp_path):
    """ftpc --retries: the node serving a download dies; the download goes on
    from where it broke on another node, through the balancer, and is verified."""
    from tests.ftpc_util import Relay, run_ftpc

    nodes, balancer, shared = cluster
    data = os.urandom(48 << 20)
    (shared / "big").write_bytes(data)
    # The relay is the client's network path: it stalls after 8 MiB, so the
    # serving node is caught mid-transfer, and then that node is killed.
    relay = Relay(balancer.port, 8 << 20, mode="stall")
    killer = threading.Thread(target=kill_serving_node, args=(nodes, relay), daemon=True)
    killer.start()
    try:
        result = run_ftpc("--retries", "3", "--timeout", "3", relay.address, "get", "big",
                          home=tmp_path, timeout=120)
    finally:
        relay.close()
    killer.join(30)
    assert result.returncode == 0, result.stderr
    assert "retrying" in result.stderr.decode()
    assert (tmp_path / "big").read_bytes() == data
    served = [n for n in nodes if n.proc.poll() is None and
              re.search(r"anonymous G big bytes=(\d+)", n.log())]
    resumed = [int(m) for n in served for m in re.findall(r"anonymous G big bytes=(\d+)",
                                                          n.log())]
    assert any(0 < size < len(data) for size in resumed), "the rest came from another node"


def kill_serving_node(nodes, relay) -> None:
    relay.broken.wait(60)
    for node in nodes:
        titles = " ".join(" ".join(c.cmdline()) for c in node.live_children())
        if "G big" in titles:
            node.proc.kill()
            for child in node.children():
                child.kill()
            return


def test_draining_node_loses_no_session(cluster, tmp_path):
    nodes, balancer, shared = cluster
    (shared / "f").write_bytes(b"payload")
    draining = nodes[0]
    draining.send_signal(signal.SIGTERM)
    failures = 0
    deadline = time.monotonic() + 20
    for _ in range(30):
        if time.monotonic() > deadline:
            break
        try:
            with balancer.client(timeout=10) as c:
                assert c.hash("f")[0] == 7
        except ClientError:
            failures += 1
    assert failures == 0
    assert draining.proc.wait(20) == 0


def test_restarting_node_keeps_a_live_nodes_upload(cluster, tmp_path):
    nodes, balancer, shared = cluster
    a, b = nodes[0], nodes[1]
    sock = socket.create_connection((a.host, a.port), timeout=10)
    sock.sendall(proxy.build_v2(("192.0.2.1", 5), ("127.0.0.1", a.port)))
    read_reply(sock)
    sock.sendall(b"P slow 100\n")
    assert read_reply(sock) == b"OK ready\n"
    sock.sendall(b"x" * 50)
    [live_temp] = wait_until(lambda: temps(shared), what="node a's temp")
    assert f"~{a.pid}~" in live_temp
    b.stop(signal.SIGKILL)
    b.start()
    assert live_temp in temps(shared)
    sock.sendall(b"x" * 50)
    assert read_reply(sock).startswith(b"OK 100 ")
    sock.close()
    assert (shared / "slow").read_bytes() == b"x" * 100
    assert temps(shared) == []
