"""The library is reached only through the directory fd opened at start, with
O_NOFOLLOW: renaming or replacing the library path, or swapping symlinks in,
even in the middle of a request, never leads a session outside it.

Run with chroot off (and on, where it applies) so the directory fd alone is tested."""

import hashlib
import os

import pytest

from ftpd import protocol
from ftpd.client import ServerError
from tests.harness import read_reply, recv_exact, wait_until

SECRET = b"outside the library: must never be served\n"


@pytest.fixture(params=["no", "yes"])
def setup(request, make_daemon):
    daemon = make_daemon({"server": {"chroot": request.param}})
    outside = daemon.workdir / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(SECRET)
    return daemon, outside


def outside_untouched(outside):
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == SECRET


@pytest.mark.parametrize("replacement", ["symlink", "directory"])
def test_a_renamed_or_replaced_library_path_changes_nothing(setup, tmp_path, replacement):
    daemon, outside = setup
    (tmp_path / "a").write_bytes(b"original")
    with daemon.client() as c:
        c.put(str(tmp_path / "a"), "a")
    moved = daemon.workdir / "library.moved"
    daemon.root.rename(moved)
    if replacement == "symlink":
        daemon.root.symlink_to(outside, target_is_directory=True)
    else:
        daemon.root.mkdir()
        (daemon.root / "secret").write_bytes(SECRET)
    with daemon.client() as c:
        assert [e.name for e in c.list()] == ["a"]
        with pytest.raises(ServerError) as info:
            c.get("secret", str(tmp_path / "x"))
        assert info.value.code == 404
        c.put(str(tmp_path / "a"), "new")
    assert (moved / "new").read_bytes() == b"original"
    outside_untouched(outside)
    if replacement == "directory":
        assert sorted(os.listdir(daemon.root)) == ["secret"]


def test_symlinks_in_the_library_are_never_followed(setup, tmp_path):
    daemon, outside = setup
    (daemon.root / "link").symlink_to(outside / "secret")
    (daemon.root / "dirlink").symlink_to(outside, target_is_directory=True)
    (daemon.root / "relative").symlink_to("../outside/secret")
    with daemon.client() as c:
        assert c.list() == []
        for name in ("link", "dirlink", "relative"):
            for call in (lambda n=name: c.get(n, str(tmp_path / "x")), lambda n=name: c.hash(n)):
                with pytest.raises(ServerError) as info:
                    call()
                assert info.value.code == 404
        (tmp_path / "new").write_bytes(b"replacement")
        c.put(str(tmp_path / "new"), "link")           # replaces the link itself
    assert not (daemon.root / "link").is_symlink()
    assert (daemon.root / "link").read_bytes() == b"replacement"
    outside_untouched(outside)


def test_a_symlink_swapped_in_during_an_upload_is_replaced_not_followed(setup):
    daemon, outside = setup
    data = os.urandom(200_000)
    target = daemon.root / "target"
    target.write_bytes(b"old")
    with daemon.connect() as sock:
        read_reply(sock)
        sock.sendall(f"P target {len(data)}\n".encode())
        assert read_reply(sock) == b"OK ready\n"
        sock.sendall(data[:100_000])
        target.unlink()
        target.symlink_to(outside / "secret")          # the swap, mid-request
        sock.sendall(data[100_000:])
        reply = read_reply(sock, timeout=15)
    assert reply == f"OK {len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()
    assert not target.is_symlink() and target.read_bytes() == data
    outside_untouched(outside)


def test_a_file_swapped_for_a_symlink_during_a_download_stays_the_snapshot(setup, tmp_path):
    daemon, outside = setup
    data = os.urandom(4 << 20)
    (daemon.root / "big").write_bytes(data)
    with daemon.connect() as sock:
        read_reply(sock)
        sock.sendall(b"G big\n")
        assert read_reply(sock) == f"OK {len(data)}\n".encode()
        received = sock.recv(65536)
        (daemon.root / "big").unlink()
        (daemon.root / "big").symlink_to(outside / "secret")
        received += recv_exact(sock, len(data) - len(received))
        sock.sendall(b"G big\n")
        assert read_reply(sock).startswith(b"ERR 404")
    assert received == data
    outside_untouched(outside)


def test_names_that_would_climb_out_are_invalid(setup):
    daemon, outside = setup
    with daemon.connect() as sock:
        read_reply(sock)
        for name in ("..", "%2E%2E", "..%2Foutside%2Fsecret", "%2Fetc%2Fpasswd", "a%2F",
                     "a/../..", "%00", ".hidden"):
            sock.sendall(f"G {name}\n".encode())
            assert read_reply(sock) == b"ERR 400 invalid name\n", name
            with pytest.raises(protocol.ProtocolError):
                protocol.decode_path(name.encode())
    wait_until(lambda: not daemon.live_children(), what="the session to end")
    outside_untouched(outside)
