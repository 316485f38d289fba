"""Every FTPD/1 verb against the real daemon, through raw sockets and the client."""

import hashlib

import pytest

from ftpd.client import ServerError
from tests.harness import read_reply, recv_all


def test_greeting_names_the_protocol(daemon):
    with daemon.connect() as sock:
        line = read_reply(sock)
    assert line.startswith(b"OK FTPD/1 ")
    assert line.endswith(b"\n")


def test_list_empty_then_put_get_hash_roundtrip(daemon, tmp_path):
    data = b"hello world\n" * 1000
    local = tmp_path / "src.bin"
    local.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    with daemon.client() as c:
        assert c.list() == []
        assert c.put(str(local), "my file.txt") == (len(data), digest)
        [entry] = c.list()
        assert (entry.name, entry.size) == ("my file.txt", len(data))
        assert c.hash("my file.txt") == (len(data), digest)
        out = tmp_path / "out.bin"
        assert c.get("my file.txt", str(out)) == len(data)
    assert out.read_bytes() == data
    assert (daemon.root / "my file.txt").read_bytes() == data


def test_raw_session_as_typed_with_crlf(daemon):
    (daemon.root / "hello world.txt").write_bytes(b"hello world\n")
    with daemon.connect() as sock:
        read_reply(sock)
        sock.sendall(b"l\r\nG hello%20world.txt\r\nh hello%20world.txt\r\nq\r\n")
        rest = recv_all(sock)
    digest = hashlib.sha256(b"hello world\n").hexdigest()
    lines = rest.split(b"\n")
    assert lines[0] == b"OK 1"
    assert lines[1].startswith(b"12 ") and lines[1].endswith(b" hello%20world.txt")
    assert lines[2] == b"OK 12"
    assert lines[3] == b"hello world"
    assert lines[4] == f"OK 12 {digest}".encode()
    assert lines[5] == b"OK bye"


def test_unknown_command_gets_400_and_session_goes_on(daemon):
    with daemon.client() as c:
        with pytest.raises(ServerError) as info:
            c.request("X")
        assert info.value.code == 400
        assert c.list() == []
