"""Every FTPD/1 error code the daemon can give, and that the session goes on."""


import pytest

from ftpd.client import ServerError
from tests.harness import read_reply, recv_all


def ask(sock, line: bytes) -> bytes:
    sock.sendall(line)
    return read_reply(sock)


@pytest.fixture
def raw(daemon):
    sock = daemon.connect()
    assert read_reply(sock).startswith(b"OK FTPD/1")
    yield sock
    sock.close()


@pytest.mark.parametrize("line, start", [
    (b"X\n", b"ERR 400 "),
    (b"LIST\n", b"ERR 400 "),
    (b"L a b\n", b"ERR 400 "),
    (b"L a/\n", b"ERR 400 invalid name"),
    (b"G\n", b"ERR 400 "),
    (b"G a 1 2\n", b"ERR 400 "),
    (b"G a -1\n", b"ERR 400 "),
    (b"G a x\n", b"ERR 400 "),
    (b"G .hidden\n", b"ERR 400 invalid name"),
    (b"G ..%2Fetc%2Fpasswd\n", b"ERR 400 invalid name"),
    (b"G %2Fetc%2Fpasswd\n", b"ERR 400 invalid name"),
    (b"H a%00b\n", b"ERR 400 invalid name"),
    (b"P a\n", b"ERR 400 "),
    (b"P a 1 nothex\n", b"ERR 400 "),
    (b"P a%2F 1\n", b"ERR 400 invalid name"),
    (b"P a%2Fb 1\n", b"ERR 404 "),
    (b"G missing\n", b"ERR 404 "),
    (b"H missing\n", b"ERR 404 "),
    (b"A\n", b"ERR 400 "),
    (b"\n", b"ERR 400 "),
])
def test_bad_requests_get_an_error_and_the_session_goes_on(raw, line, start):
    assert ask(raw, line).startswith(start)
    assert ask(raw, b"L\n") == b"OK 0\n"


def test_404_for_directories_symlinks_and_fifos(daemon, raw, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (daemon.root / "adir").mkdir()
    (daemon.root / "link").symlink_to(outside)
    (daemon.root / "inlink").symlink_to(daemon.root / "adir")
    import os
    os.mkfifo(daemon.root / "fifo")
    for name in (b"adir", b"link", b"inlink", b"fifo"):
        assert ask(raw, b"G " + name + b"\n").startswith(b"ERR 404"), name
        assert ask(raw, b"H " + name + b"\n").startswith(b"ERR 404"), name
    assert ask(raw, b"L\n") == b"OK 1\n"            # the directory, nothing else
    assert read_reply(raw).endswith(b" adir/\n")


def test_416_offset_beyond_end(daemon, raw):
    (daemon.root / "f").write_bytes(b"12345")
    assert ask(raw, b"G f 6\n").startswith(b"ERR 416 ")
    assert ask(raw, b"G f 5\n") == b"OK 0\n"
    assert ask(raw, b"G f 4\n") == b"OK 1\n"
    assert raw.recv(1) == b"5"


def test_413_over_max_file_size(make_daemon):
    daemon = make_daemon({"files": {"max_file_size": "1K"}})
    with daemon.client() as c:
        with pytest.raises(ServerError) as info:
            c.request("P", "big", "1025")
        assert info.value.code == 413
        assert c.request("P", "ok", "0") == ["ready"]
        assert c._reply()[0] == "0"
    assert not (daemon.root / "big").exists()


def test_507_when_free_space_is_short(make_daemon):
    daemon = make_daemon({"files": {"min_free_space": "1000T"}})
    with daemon.client() as c:
        with pytest.raises(ServerError) as info:
            c.request("P", "f", "1")
        assert info.value.code == 507
        assert c.list() == []


def test_403_when_overwrite_is_off(make_daemon):
    daemon = make_daemon({"files": {"overwrite": "no"}})
    (daemon.root / "kept").write_bytes(b"original")
    with daemon.client() as c:
        with pytest.raises(ServerError) as info:
            c.request("P", "kept", "3")
        assert info.value.code == 403
    assert (daemon.root / "kept").read_bytes() == b"original"


def test_422_digest_mismatch_stores_nothing_and_session_goes_on(daemon, raw):
    (daemon.root / "f").write_bytes(b"old")
    assert ask(raw, b"P f 3 " + b"0" * 64 + b"\n") == b"OK ready\n"
    raw.sendall(b"new")
    assert read_reply(raw).startswith(b"ERR 422 ")
    assert (daemon.root / "f").read_bytes() == b"old"
    assert sorted(p.name for p in daemon.root.iterdir()) == ["f"]
    assert ask(raw, b"L\n") == b"OK 1\n"


def test_digest_in_upper_case_is_accepted(daemon, raw):
    import hashlib
    digest = hashlib.sha256(b"abc").hexdigest()
    assert ask(raw, f"P f 3 {digest.upper()}\n".encode()) == b"OK ready\n"
    raw.sendall(b"abc")
    assert read_reply(raw) == f"OK 3 {digest}\n".encode()


def test_anonymous_none_needs_login_for_everything(make_daemon):
    daemon = make_daemon({"access": {"anonymous": "none"}})
    (daemon.root / "f").write_bytes(b"x")
    with daemon.connect() as sock:
        read_reply(sock)
        for line in (b"L\n", b"G f\n", b"H f\n", b"P g 1\n"):
            assert ask(sock, line).startswith(b"ERR 401 "), line
        assert ask(sock, b"Q\n") == b"OK bye\n"


def test_anonymous_read_cannot_put(make_daemon):
    daemon = make_daemon({"access": {"anonymous": "read"}})
    with daemon.client() as c:
        assert c.list() == []
        with pytest.raises(ServerError) as info:
            c.request("P", "f", "1")
        assert info.value.code == 401
    assert list(daemon.root.iterdir()) == []


def test_overlong_line_gets_400_and_close(raw):
    raw.sendall(b"G " + b"a" * 5000 + b"\n")
    assert recv_all(raw) == b"ERR 400 line too long\n"


def test_line_of_exactly_4096_bytes_is_accepted(raw):
    line = b"G " + b"a" * 4093 + b"\n"
    assert len(line) == 4096
    assert ask(raw, line).startswith(b"ERR 400 invalid name")   # read, parsed, judged
    line = b"G " + b"a" * 4094 + b"\n"
    raw.sendall(line)
    assert recv_all(raw) == b"ERR 400 line too long\n"


def test_pipelined_requests_are_answered_in_order(daemon, raw):
    (daemon.root / "a").write_bytes(b"AAA")
    raw.sendall(b"G a\nX\nH nope\nG a 1\nQ\n")
    assert recv_all(raw) == (b"OK 3\nAAA" + b"ERR 400 unknown command\n" +
                             b"ERR 404 no such file\n" + b"OK 2\nAA" + b"OK bye\n")


def test_pipelined_upload_bytes_right_after_ready(daemon, raw):
    raw.sendall(b"P f 5\n")
    assert read_reply(raw) == b"OK ready\n"
    raw.sendall(b"hello" + b"L\n")
    assert read_reply(raw).startswith(b"OK 5 ")
    assert read_reply(raw) == b"OK 1\n"


def test_quit_closes(raw):
    raw.sendall(b"Q\n")
    assert recv_all(raw) == b"OK bye\n"


def test_last_reply_survives_input_the_server_never_reads(raw):
    # Whatever follows Q is never read; closing with it unread would make the
    # kernel send a reset that can destroy "OK bye" before the client reads it.
    raw.sendall(b"Q\n" + b"x" * (512 << 10))
    assert recv_all(raw) == b"OK bye\n"


def test_overlong_line_reply_survives_the_rest_of_the_line(raw):
    raw.sendall(b"G " + b"a" * (512 << 10) + b"\n")
    assert recv_all(raw) == b"ERR 400 line too long\n"
