"""ftpd.client behaviour, and what the daemon logs."""

import hashlib
import os
import re
import socket
import threading

import pytest

from ftpd.client import Client, ConnectionLost, ServerError, parse_hostport
from tests.harness import closed_port, fork_only, read_reply, wait_until


def test_client_raises_server_error_with_code(daemon, tmp_path):
    with daemon.client() as c:
        with pytest.raises(ServerError) as info:
            c.get("nope", str(tmp_path / "x"))
        assert info.value.code == 404 and "no such file" in str(info.value)
        with pytest.raises(ServerError) as info:
            c.hash("nope")
        assert info.value.code == 404
        assert c.list() == []          # still usable after errors


def test_client_cannot_connect_raises_connection_lost():
    with closed_port() as port, pytest.raises(ConnectionLost):
        Client("127.0.0.1", port, timeout=2)


def test_client_sees_421_as_end_of_session(make_daemon):
    daemon = make_daemon({"server": {"max_clients": 1}})
    with daemon.client():
        with pytest.raises(ServerError) as info:
            Client(daemon.host, daemon.port, timeout=5)
        assert info.value.code == 421


def test_client_login_without_accounts_is_401(daemon):
    with daemon.client() as c:
        with pytest.raises(ServerError) as info:
            c.login("someone", "pw")
        assert info.value.code == 401


@fork_only
def test_short_download_is_a_failure(daemon, tmp_path):
    size = 64 << 20          # far more than the loopback buffers hold
    (daemon.root / "f").write_bytes(os.urandom(size))
    with daemon.client() as c:
        [child] = wait_until(daemon.live_children, what="session")
        c.request("G", "f")
        child.kill()
        with pytest.raises(ConnectionLost), open(os.devnull, "wb") as sink:
            c.receive(sink, size, None)


@pytest.mark.parametrize("text, result", [
    ("host", ("host", 8021)), ("host:21", ("host", 21)), ("[::1]:9", ("::1", 9)),
    ("[::1]", ("::1", 8021)), ("::1", ("::1", 8021)), ("127.0.0.1:1", ("127.0.0.1", 1)),
])
def test_parse_hostport(text, result):
    assert parse_hostport(text) == result


def test_session_and_transfer_log_lines(daemon, tmp_path):
    src = tmp_path / "s"
    src.write_bytes(b"abc")
    with daemon.client() as c:
        c.put(str(src), "my file")
        c.get("my file", str(tmp_path / "o"))
        with pytest.raises(ServerError):
            c.get("missing", str(tmp_path / "o2"))
    digest = hashlib.sha256(b"abc").hexdigest()
    log = wait_until(lambda: "session end" in daemon.log() and daemon.log(), what="end line")
    assert re.search(r"session start 127\.0\.0\.1:\d+", log)
    assert re.search(rf"transfer 127\.0\.0\.1:\d+ anonymous P my%20file bytes=3 "
                     rf"seconds=\S+ sha256={digest} result=ok", log)
    assert re.search(r"transfer 127\.0\.0\.1:\d+ anonymous G my%20file bytes=3 .*result=ok", log)
    assert re.search(r"session end 127\.0\.0\.1:\d+ user=anonymous duration=\S+s in=3 out=3", log)


def test_client_mistakes_leave_no_traceback_in_the_log(daemon):
    with daemon.connect() as sock:
        read_reply(sock)
        sock.sendall(b"X\nG ..\nP a b\nG " + b"a" * 5000 + b"\n")
        sock.recv(4096)
    with daemon.connect() as sock:
        read_reply(sock)
        sock.sendall(b"P a 10\n")
        read_reply(sock)
        sock.sendall(b"abc")        # then vanish mid-upload
    wait_until(lambda: daemon.log().count("session end") == 2, what="both sessions end")
    assert "Traceback" not in daemon.log()


def test_burst_of_simultaneous_connects_is_served(make_daemon):
    daemon = make_daemon({"server": {"max_clients": 400, "max_clients_per_ip": 400}})
    socks, greetings = [], []
    for _ in range(200):
        socks.append(socket.create_connection((daemon.host, daemon.port), timeout=30))

    def greet(sock):
        greetings.append(read_reply(sock, timeout=60))

    threads = [threading.Thread(target=greet, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert len(greetings) == 200 and all(g.startswith(b"OK FTPD/1") for g in greetings)
    for sock in socks:
        sock.close()
    wait_until(lambda: not daemon.children(), timeout=30, what="all reaped")
