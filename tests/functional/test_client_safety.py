"""ftpd.client never falls out of step, never parses file data as replies,
and says what went wrong (issue 15): the real daemon where the behaviour is
about the server, a scripted fake peer for what the daemon never does."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import select

import pytest

from ftpd.client import (Client, ConnectionLost, IntegrityError, LocalError,
                         ProtocolViolation, ServerError)
from tests.ftpc_util import FakeServer, Relay, read_request_lines, serve_file

# A stored file whose bytes look like a reply to L announcing one entry.
FORGED = b"OK 1\n999 0 evil.exe\n"


@pytest.fixture
def local(tmp_path):
    path = tmp_path / "local"           # the daemon's own files live in tmp_path too
    path.mkdir()
    return path


def names(client):
    return [entry.name for entry in client.list()]


# -- out of step -------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["missing-dir/out.bin", "offset-into-nothing"])
def test_a_failed_local_open_sends_nothing_and_the_session_stays_in_step(daemon, local,
                                                                         where):
    (daemon.root / "forged.txt").write_bytes(FORGED)
    with daemon.client() as c:
        with pytest.raises((LocalError, OSError)) as info:
            if where == "offset-into-nothing":
                c.get("forged.txt", str(local / "absent.bin"), offset=3)
            else:
                c.get("forged.txt", str(local / where))
        assert names(c) == ["forged.txt"]          # not the forged evil.exe
    assert isinstance(info.value, LocalError)


class FailingWriter:
    """A destination that fails like a full disk or RLIMIT_FSIZE on its first write."""

    def write(self, chunk):
        raise OSError(errno.EFBIG, "File too large")


def test_a_local_write_error_mid_body_closes_the_connection(daemon):
    (daemon.root / "forged.txt").write_bytes(FORGED * 20_000)      # far more than one chunk
    with daemon.client() as c:
        with pytest.raises(LocalError) as info:
            c.get("forged.txt", FailingWriter(), verify=False)
        assert "File too large" in str(info.value)
        assert c.closed
        with pytest.raises(ConnectionLost):
            c.list()
    with daemon.client() as fresh:
        assert names(fresh) == ["forged.txt"]


def test_a_reply_that_is_file_data_is_a_protocol_violation_not_a_server_error():
    def script(conn):
        conn.sendall(b"OK FTPD/1 fake\n")
        read_request_lines(conn, 1)
        conn.sendall(b"\x00\x01PK\x03\x04 binary garbage\n")

    with FakeServer(script) as fake, Client("127.0.0.1", fake.port, timeout=5) as c:
        with pytest.raises(ProtocolViolation) as info:
            c.list()
        assert "not an FTPD/1 reply" in str(info.value) and c.closed


@pytest.mark.parametrize("banner", [b"220 (vsFTPd 3.0.3)\r\n", b"SSH-2.0-OpenSSH_9.6\r\n",
                                    b"hello, this is a web server\n"])
def test_a_server_that_does_not_speak_ftpd1_is_named_as_such(banner):
    def script(conn):
        conn.sendall(banner)
        conn.recv(100)

    with FakeServer(script) as fake:
        with pytest.raises(ProtocolViolation) as info:
            Client("127.0.0.1", fake.port, timeout=5)
    assert "is not an FTPD/1 server" in str(info.value)
    assert banner.split()[0].decode() in str(info.value)


def test_a_421_greeting_is_still_a_server_error(make_daemon):
    daemon = make_daemon({"server": {"max_clients": 1}})
    with daemon.client():
        with pytest.raises(ServerError) as info:
            Client(daemon.host, daemon.port, timeout=5)
    assert info.value.code == 421


# -- verification and atomic downloads -----------------------------------------------------

def test_the_digest_is_asked_first_so_a_stop_right_after_the_data_loses_nothing(local):
    data = os.urandom(100_000)
    script = serve_file(data, hashlib.sha256(data).hexdigest(), b"ERR 421 shutting down\n")
    with FakeServer(script) as fake, Client("127.0.0.1", fake.port, timeout=5) as c:
        assert c.get("f.bin", str(local / "f.bin")) == len(data)
    assert (local / "f.bin").read_bytes() == data


def test_a_download_that_does_not_match_leaves_nothing(local):
    data = os.urandom(10_000)
    with FakeServer(serve_file(data, "0" * 64)) as fake, \
            Client("127.0.0.1", fake.port, timeout=5) as c:
        with pytest.raises(IntegrityError):
            c.get("f.bin", str(local / "f.bin"))
    assert os.listdir(local) == []


def test_get_is_atomic_a_cut_download_leaves_no_file(daemon, local):
    (daemon.root / "big.bin").write_bytes(os.urandom(3 << 20))
    (local / "big.bin").write_bytes(b"the old copy")
    relay = Relay(daemon.port, limit=1 << 20)
    try:
        host, port = relay.address.split(":")
        with Client(host, int(port), timeout=10) as c:
            with pytest.raises(ConnectionLost):
                c.get("big.bin", str(local / "big.bin"))
    finally:
        relay.close()
    assert os.listdir(local) == ["big.bin"]
    assert (local / "big.bin").read_bytes() == b"the old copy"


def test_get_verifies_by_default_and_continues_a_partial_in_place(daemon, local):
    data = os.urandom(300_000)
    (daemon.root / "f.bin").write_bytes(data)
    (local / "f.bin").write_bytes(data[:1000])
    with daemon.client() as c:
        assert c.get("f.bin", str(local / "f.bin"), offset=1000) == len(data) - 1000
        assert (local / "f.bin").read_bytes() == data
        (local / "bad.bin").write_bytes(b"X" * 1000)
        with pytest.raises(IntegrityError):
            c.get("f.bin", str(local / "bad.bin"), offset=1000)
        out = io.BytesIO()
        assert c.get("f.bin", out) == len(data) and out.getvalue() == data
        assert names(c) == ["f.bin"]          # still in step after all that


# -- uploads and local mistakes -------------------------------------------------------------

def test_put_takes_a_file_object_and_local_problems_are_local_errors(daemon, local):
    data = b"from memory\n" * 1000
    source = io.BytesIO(b"skip" + data)
    source.seek(4)                               # from the current position to the end
    with daemon.client() as c:
        assert c.put(source, "mem.bin") == (len(data), hashlib.sha256(data).hexdigest())
        assert (daemon.root / "mem.bin").read_bytes() == data
        with pytest.raises(LocalError):
            c.put(str(local / "absent.bin"))
        with pytest.raises(LocalError):
            c.put(io.BytesIO(b"no name"))
        with pytest.raises(LocalError):
            c.get("mem.bin", 42)
        with pytest.raises(LocalError):
            c.get("x" * 5000, str(local / "long"))
        assert names(c) == ["mem.bin"]


# -- errors that say what happened -------------------------------------------------------------

def test_a_timeout_says_it_timed_out():
    def script(conn):
        conn.sendall(b"OK FTPD/1 fake\n")
        read_request_lines(conn, 1)
        conn.recv(100)                 # and never answer

    with FakeServer(script) as fake, Client("127.0.0.1", fake.port, timeout=0.5) as c:
        with pytest.raises(ConnectionLost) as info:
            c.list()
    assert str(info.value).startswith("connection lost: timed out")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from tests.certs import make_pki
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_plaintext_on_a_tls_port_suggests_tls(make_daemon, pki):
    daemon = make_daemon({"tls": {"certificate": pki.cert, "private_key": pki.key,
                                  "handshake_timeout": 0.5}})
    with pytest.raises(ConnectionLost) as info:
        Client(daemon.host, daemon.port, timeout=10)
    assert "no greeting" in str(info.value) and "--tls" in str(info.value)


def test_tls_on_a_plaintext_port_says_the_server_does_not_speak_tls(daemon, pki):
    with pytest.raises(ConnectionLost) as info:
        Client(daemon.host, daemon.port, timeout=5, ssl_context=pki.client_context())
    assert "the server does not speak TLS" in str(info.value)


def test_an_idle_session_ended_by_the_server_is_noticed_before_the_next_request(make_daemon):
    from tests.harness import wait_until
    daemon = make_daemon({"server": {"idle_timeout": 0.3}})
    with daemon.client() as c:
        wait_until(lambda: select.select([c.sock], [], [], 0)[0], what="the ERR 408")
        with pytest.raises(ServerError) as info:
            c.ensure_alive()
        assert info.value.code == 408 and c.closed
