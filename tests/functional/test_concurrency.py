"""Both session models, fork and thread: how sessions start, end, are
counted, reaped and stopped. The rest of the suite runs in both models
through the `concurrency` fixture; these tests look at the differences."""

import signal
import time

import psutil
import pytest

from tests.harness import fork_only, read_reply, recv_all, recv_exact, wait_until

thread_only = pytest.mark.parametrize("concurrency", ["thread"])


@thread_only
def test_thread_mode_serves_sessions_inside_the_server_process(daemon):
    before = psutil.Process(daemon.pid).num_threads()
    socks = [daemon.greeted() for _ in range(3)]
    try:
        assert daemon.children() == []
        wait_until(lambda: psutil.Process(daemon.pid).num_threads() >= before + 3,
                   what="three session threads")
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: psutil.Process(daemon.pid).num_threads() == before,
               what="session threads to end")


@fork_only
def test_fork_mode_runs_one_child_per_session(daemon):
    socks = [daemon.greeted() for _ in range(3)]
    try:
        wait_until(lambda: len(daemon.live_children()) == 3, what="three children")
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: not daemon.children(), what="children to be reaped")


def test_ended_sessions_are_reaped_and_free_their_slot(make_daemon):
    daemon = make_daemon({"server": {"max_clients": 2}})
    for _ in range(6):
        # Each quit must free its slot: poll until the next session is admitted.
        def admitted():
            sock = daemon.connect()
            line = read_reply(sock)
            if not line.startswith(b"OK"):
                sock.close()
                return None
            return sock
        sock = wait_until(admitted, what="a free slot")
        sock.sendall(b"Q\n")
        assert recv_all(sock) == b"OK bye\n"
        sock.close()
    held = [wait_until(lambda: greet_or_none(daemon), what="slot") for _ in range(2)]
    try:
        with daemon.connect() as third:
            assert read_reply(third).startswith(b"ERR 421 ")
    finally:
        for sock in held:
            sock.close()
    assert "ended with" not in daemon.log()


def greet_or_none(daemon):
    sock = daemon.connect()
    if read_reply(sock).startswith(b"OK"):
        return sock
    sock.close()
    return None


def test_sigterm_reaches_idle_sessions_and_the_server_exits(daemon):
    socks = [daemon.greeted() for _ in range(3)]
    daemon.send_signal(signal.SIGTERM)
    for sock in socks:
        assert recv_all(sock, timeout=10) == b"ERR 421 server shutting down\n"
        sock.close()
    assert daemon.proc.wait(20) == 0


def test_sigint_cuts_an_upload_and_leaves_no_temp(daemon):
    sock = daemon.greeted()
    sock.sendall(b"P half.bin 10000000\n")
    assert read_reply(sock) == b"OK ready\n"
    sock.sendall(b"x" * 100000)
    wait_until(lambda: list(daemon.root.glob(".ftpd~*")), what="the upload temp")
    started = time.monotonic()
    daemon.send_signal(signal.SIGINT)
    assert daemon.proc.wait(20) == 0
    assert time.monotonic() - started < 10
    sock.close()
    assert list(daemon.root.iterdir()) == []


def test_sigterm_lets_a_running_download_finish(make_daemon):
    daemon = make_daemon({"server": {"shutdown_timeout": 30}})
    data = bytes(range(256)) * 4096 * 8     # 8 MiB: far more than the socket buffers
    (daemon.root / "big.bin").write_bytes(data)
    sock = daemon.greeted()
    sock.sendall(b"G big.bin\n")
    assert read_reply(sock) == f"OK {len(data)}\n".encode()
    sock.settimeout(10)
    first = sock.recv(65536)      # the server is now blocked in sendfile
    daemon.send_signal(signal.SIGTERM)
    assert first + recv_exact(sock, len(data) - len(first)) == data
    sock.sendall(b"L\n")
    assert recv_all(sock, timeout=10) == b"ERR 421 server shutting down\n"
    sock.close()
    assert daemon.proc.wait(20) == 0


@thread_only
def test_reload_keeps_the_old_library_open_for_running_sessions(make_daemon, tmp_path):
    daemon = make_daemon()
    (daemon.root / "old.txt").write_bytes(b"old")
    old_session = daemon.greeted()
    new_root = tmp_path / "newlib"
    new_root.mkdir()
    (new_root / "new.txt").write_bytes(b"new")
    daemon.settings["server"]["root"] = new_root
    daemon.write_config()
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in daemon.log(), what="the reload")
    with daemon.client() as c:
        assert [e.name for e in c.list()] == ["new.txt"]
    old_session.sendall(b"L\nQ\n")
    lines = recv_all(old_session).split(b"\n")
    assert lines[0] == b"OK 1" and lines[1].endswith(b" old.txt")
    old_session.close()


@fork_only
def test_a_killed_session_process_takes_only_its_client(daemon):
    victim, survivor = daemon.greeted(), daemon.greeted()
    wait_until(lambda: len(daemon.live_children()) == 2, what="two children")
    port = victim.getsockname()[1]
    [child] = [c for c in daemon.live_children()
               if any(conn.raddr and conn.raddr[1] == port for conn in c.net_connections())]
    child.kill()
    wait_until(lambda: "ended with signal 9" in daemon.log(), what="the reap")
    survivor.sendall(b"L\n")
    assert read_reply(survivor) == b"OK 0\n"
    survivor.close()
    victim.close()
