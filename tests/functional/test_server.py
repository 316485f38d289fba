"""The parent process: limits before fork, timeouts, reaping, fds, crashes."""

import signal
import socket
import time

import psutil
import pytest

from tests.harness import fork_only, read_reply, recv_all, wait_until


def spoken(daemon):
    """A session past its first request: the early drop for silent
    connections (test_silence.py) must not be what refuses here."""
    sock = daemon.greeted()
    sock.sendall(b"L\n")
    assert read_reply(sock) == b"OK 0\n"
    return sock


@fork_only
def test_max_clients_refused_with_421_and_no_fork(make_daemon):
    daemon = make_daemon({"server": {"max_clients": 3}})
    held = [spoken(daemon) for _ in range(3)]
    wait_until(lambda: len(daemon.live_children()) == 3, what="3 sessions")
    forks_before = {c.pid for c in daemon.children()}
    for _ in range(5):
        with daemon.connect() as extra:
            assert recv_all(extra) == b"ERR 421 too many clients\n"
    assert {c.pid for c in daemon.children()} == forks_before
    assert daemon.log().count("refused 127.0.0.1:") == 5
    held.pop().close()
    wait_until(lambda: len(daemon.children()) == 2, what="the parent to reap a session")
    with daemon.greeted() as again:
        again.sendall(b"Q\n")
        assert read_reply(again) == b"OK bye\n"
    for sock in held:
        sock.close()


def test_max_clients_per_ip(make_daemon):
    daemon = make_daemon({"server": {"max_clients_per_ip": 2,
                                     "listen": "127.0.0.1:0,127.0.0.2:0"}})
    held = [daemon.greeted(), daemon.greeted()]
    with daemon.connect() as extra:
        assert recv_all(extra) == b"ERR 421 too many connections from your address\n"
    other = daemon.addresses[1].rsplit(":", 1)
    with socket.create_connection((other[0], int(other[1])), timeout=5,
                                  source_address=("127.0.0.2", 0)) as sock:
        assert read_reply(sock).startswith(b"OK FTPD/1")
    for sock in held:
        sock.close()


def test_binds_every_listen_address_including_ipv6(make_daemon):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("::1 is not configured here")
    daemon = make_daemon({"server": {"listen": "127.0.0.1:0,[::1]:0"}})
    assert daemon.addresses[1].startswith("[::1]:")
    port = int(daemon.addresses[1].rsplit(":", 1)[1])
    with socket.create_connection(("::1", port), timeout=5) as sock:
        assert read_reply(sock).startswith(b"OK FTPD/1")


def test_idle_timeout_408_then_close(make_daemon):
    daemon = make_daemon({"server": {"idle_timeout": "0.5"}})
    with daemon.greeted() as sock:
        assert recv_all(sock, timeout=10) == b"ERR 408 idle timeout\n"


def test_slow_sender_dropped_even_while_bytes_trickle(make_daemon):
    daemon = make_daemon({"server": {"idle_timeout": "1"}})
    with daemon.greeted() as sock:
        started = time.monotonic()
        try:
            for _ in range(40):          # one byte every 0.1 s, never a LF
                sock.sendall(b"L")
                time.sleep(0.1)
        except OSError:
            pass                        # the server hung up on us: expected
        assert recv_all(sock, timeout=10).endswith(b"ERR 408 idle timeout\n")
        assert time.monotonic() - started < 4


def test_stalled_upload_dropped_after_data_timeout(make_daemon):
    daemon = make_daemon({"server": {"data_timeout": "0.5"}})
    (daemon.root / "f").write_bytes(b"old")
    with daemon.greeted() as sock:
        sock.sendall(b"P f 100\n")
        assert read_reply(sock) == b"OK ready\n"
        sock.sendall(b"x" * 10)
        assert recv_all(sock, timeout=10) == b"ERR 408 data timeout\n"
    wait_until(lambda: sorted(p.name for p in daemon.root.iterdir()) == ["f"],
               what="the temp to go")
    assert (daemon.root / "f").read_bytes() == b"old"


@fork_only
def test_many_sessions_leave_no_zombies_and_no_fd_leak(daemon):
    def one_session():
        with daemon.greeted() as sock:
            sock.sendall(b"L\nQ\n")
            recv_all(sock)

    one_session()
    wait_until(lambda: not daemon.children(), what="first session reaped")
    fds_before = daemon.num_fds()
    for _ in range(150):
        one_session()
    abrupt = [daemon.greeted() for _ in range(20)]
    for sock in abrupt:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()                     # RST instead of FIN
    wait_until(lambda: not daemon.children(), timeout=15, what="all sessions reaped")
    assert daemon.num_fds() == fds_before


@fork_only
def test_crashing_or_killed_child_never_takes_the_parent_down(daemon):
    socks = [daemon.greeted() for _ in range(3)]
    wait_until(lambda: len(daemon.live_children()) == 3, what="3 sessions")
    for child, sig in zip(daemon.live_children(), (signal.SIGKILL, signal.SIGSEGV,
                                                    signal.SIGABRT), strict=True):
        child.send_signal(sig)
    wait_until(lambda: not daemon.children(), what="killed sessions reaped")
    assert daemon.proc.poll() is None
    with daemon.client() as c:
        assert c.list() == []
    for sock in socks:
        sock.close()


@fork_only
def test_sigterm_exits_zero_and_idle_sessions_get_421(daemon):
    sock = daemon.greeted()
    wait_until(lambda: daemon.live_children(), what="a session")
    assert daemon.stop(signal.SIGTERM) == 0
    assert recv_all(sock) == b"ERR 421 server shutting down\n"
    assert not daemon.children()


@fork_only
def test_parent_title_and_child_titles(daemon):
    with daemon.greeted():
        [child] = wait_until(daemon.live_children, what="a session")
        wait_until(lambda: "anonymous /: idle" in " ".join(child.cmdline()),
                   what="the child's title")
        assert " ".join(psutil.Process(daemon.pid).cmdline()).startswith("ftpd: master")


def test_bind_failure_is_reported_not_a_traceback(make_daemon):
    first = make_daemon()
    second = make_daemon({"server": {"listen": first.addresses[0]}}, start=False)
    second.write_config()
    second.root.mkdir()
    from tests.harness import run_ftpd
    result = run_ftpd("-c", str(second.config_path), timeout=30)
    assert result.returncode == 69
    assert f"cannot listen on {first.addresses[0]}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_master_keeps_its_title_while_sessions_run(daemon):
    # In thread mode the sessions share the master's process: none may retitle
    # it, or `ftpd status` loses the listening addresses.
    master = psutil.Process(daemon.pid)
    with daemon.greeted() as sock:
        sock.sendall(b"L\n")
        assert read_reply(sock).startswith(b"OK")
        assert " ".join(master.cmdline()).startswith(f"ftpd: master {daemon.host}:")
