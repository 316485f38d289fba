"""The promises of protocol.md: atomic uploads, snapshots, no strays, confinement
to the library, concurrent uploads of one name."""

import hashlib
import os
import signal
import socket
import threading

import pytest

from ftpd.client import ServerError
from ftpd.server.library import TEMP_PREFIX
from tests.harness import fork_only, read_reply, recv_exact, wait_until


def visible(root):
    return sorted(p.name for p in root.iterdir())


def temps(root):
    return [p.name for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)]


def start_upload(daemon, name: str, size: int) -> socket.socket:
    sock = daemon.connect()
    read_reply(sock)
    sock.sendall(f"P {name} {size}\n".encode())
    assert read_reply(sock) == b"OK ready\n"
    return sock


def test_partial_upload_is_never_visible_and_disconnect_stores_nothing(daemon):
    (daemon.root / "doc").write_bytes(b"old version")
    sock = start_upload(daemon, "doc", 1_000_000)
    sock.sendall(b"x" * 500_000)
    wait_until(lambda: temps(daemon.root), what="the temp file")
    with daemon.client() as c:
        assert [(e.name, e.size) for e in c.list()] == [("doc", 11)]
        assert c.hash("doc") == (11, hashlib.sha256(b"old version").hexdigest())
    sock.close()
    wait_until(lambda: not temps(daemon.root), what="temp removal after disconnect")
    assert (daemon.root / "doc").read_bytes() == b"old version"
    assert visible(daemon.root) == ["doc"]


@fork_only
def test_killed_session_leaves_no_temp_behind(daemon):
    sock = start_upload(daemon, "doc", 1_000_000)
    sock.sendall(b"x" * 1000)
    wait_until(lambda: temps(daemon.root), what="the temp file")
    [child] = daemon.live_children()
    child.send_signal(signal.SIGKILL)
    wait_until(lambda: not temps(daemon.root), what="the parent to drop the temp")
    assert "ended with signal 9" in daemon.log()
    sock.close()


def test_server_killed_mid_upload_cleans_up_on_next_start(make_daemon, tmp_path):
    daemon = make_daemon()
    (daemon.root / ".admin-notes").write_text("keep me")
    (daemon.root / ".ftpd~otherhost~1~2~0123456789abcdef.part").write_text("another node")
    sock = start_upload(daemon, "doc", 1_000_000)
    sock.sendall(b"x" * 1000)
    wait_until(lambda: temps(daemon.root), what="the temp file")
    sessions = daemon.children()
    daemon.proc.kill()              # the parent first, so it cannot tidy up
    daemon.proc.wait(10)
    for child in sessions:
        child.kill()
    sock.close()
    assert any(f"~{daemon.pid}~" in name for name in temps(daemon.root))
    daemon.start()
    assert visible(daemon.root) == [".admin-notes", ".ftpd~otherhost~1~2~0123456789abcdef.part"]
    assert "removed 1 stale upload temp" in daemon.log()


def test_download_is_a_snapshot_while_the_file_is_replaced(daemon, tmp_path):
    # Larger than the loopback socket buffers, so the server is mid-sendfile
    # while the replacement lands.
    old = os.urandom(24 << 20)
    (daemon.root / "big").write_bytes(old)
    new = tmp_path / "new"
    new.write_bytes(os.urandom(1 << 20))
    sock = daemon.connect()
    read_reply(sock)
    sock.sendall(b"G big\n")
    assert read_reply(sock) == f"OK {len(old)}\n".encode()
    first = sock.recv(1000)
    with daemon.client() as c:
        c.put(str(new), "big")
    rest = recv_exact(sock, len(old) - len(first))
    assert first + rest == old
    assert (daemon.root / "big").read_bytes() == new.read_bytes()


def test_concurrent_uploads_of_one_name_both_succeed_and_one_wins_whole(daemon, tmp_path):
    contents = [bytes([65 + i]) * (2 << 20) for i in range(4)]
    results, errors = [], []

    def upload(data, index):
        path = tmp_path / f"src{index}"
        path.write_bytes(data)
        try:
            with daemon.client(timeout=60) as c:
                results.append(c.put(str(path), "same"))
        except Exception as exc:     # reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(d, i)) for i, d in enumerate(contents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 4
    assert (daemon.root / "same").read_bytes() in contents
    assert visible(daemon.root) == ["same"]


def test_overwrite_off_is_race_free(make_daemon, tmp_path):
    daemon = make_daemon({"files": {"overwrite": "no"}})
    socks = [start_upload(daemon, "once", 3) for _ in range(5)]
    replies = []
    for index, sock in enumerate(socks):
        sock.sendall(str(index).encode() * 3)
    for sock in socks:
        replies.append(read_reply(sock))
        sock.close()
    assert sum(r.startswith(b"OK 3 ") for r in replies) == 1
    assert sum(r.startswith(b"ERR 403 ") for r in replies) == 4
    winner = replies.index(next(r for r in replies if r.startswith(b"OK")))
    assert (daemon.root / "once").read_bytes() == str(winner).encode() * 3
    assert visible(daemon.root) == ["once"]


def test_upload_replaces_a_symlink_instead_of_writing_through_it(daemon, tmp_path):
    target = tmp_path / "outside.txt"
    target.write_text("do not touch")
    (daemon.root / "link").symlink_to(target)
    src = tmp_path / "src"
    src.write_bytes(b"new")
    with daemon.client() as c:
        c.put(str(src), "link")
    assert target.read_text() == "do not touch"
    assert not (daemon.root / "link").is_symlink()
    assert (daemon.root / "link").read_bytes() == b"new"


def test_symlinks_are_never_listed_or_served(daemon, tmp_path):
    (tmp_path / "outside").write_text("secret")
    (daemon.root / "ok").write_text("fine")
    (daemon.root / "evil").symlink_to(tmp_path / "outside")
    with daemon.client() as c:
        assert [e.name for e in c.list()] == ["ok"]
        for name in ("evil",):
            with pytest.raises(ServerError) as info:
                c.get(name, str(tmp_path / "x"))
            assert info.value.code == 404


def test_listing_hides_hidden_and_special_files_and_sorts_by_code_point(daemon):
    for name in ("b", "B", "a b", "é", "z"):
        (daemon.root / name).write_bytes(name.encode())
    (daemon.root / ".hidden").write_text("h")
    (daemon.root / "sub").mkdir()           # listed, as a directory
    os.mkfifo(daemon.root / "pipe")
    with daemon.client() as c:
        names = [e.name for e in c.list()]
    assert names == sorted(["b", "B", "a b", "é", "z", "sub"])
    assert names == ["B", "a b", "b", "sub", "z", "é"]


def test_listing_reports_size_and_mtime(daemon):
    path = daemon.root / "f"
    path.write_bytes(b"12345")
    os.utime(path, (1764230461, 1764230461))
    with daemon.client() as c:
        [entry] = c.list()
    assert (entry.size, entry.mtime) == (5, 1764230461)


def test_get_with_offset_resumes(daemon, tmp_path):
    data = os.urandom(300_000)
    (daemon.root / "f").write_bytes(data)
    out = tmp_path / "out"
    out.write_bytes(data[:123_456])
    with daemon.client() as c:
        assert c.get("f", str(out), offset=123_456) == len(data) - 123_456
    assert out.read_bytes() == data


def test_fifty_parallel_clients_with_verification(daemon, tmp_path):
    failures = []

    def worker(index):
        data = os.urandom(64 * 1024 + index)
        src = tmp_path / f"in{index}"
        src.write_bytes(data)
        try:
            with daemon.client(timeout=60) as c:
                size, digest = c.put(str(src), f"file{index}")
                out = tmp_path / f"out{index}"
                c.get(f"file{index}", str(out))
                assert out.read_bytes() == data
                assert c.hash(f"file{index}") == (size, hashlib.sha256(data).hexdigest())
        except Exception as exc:      # collected and asserted below
            failures.append((index, exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    assert len(visible(daemon.root)) == 50
    wait_until(lambda: not daemon.children(), timeout=3, what="every session reaped")


def test_library_moved_away_does_not_follow_the_path(daemon, tmp_path):
    (daemon.root / "f").write_bytes(b"in library")
    with daemon.client() as c:
        daemon.root.rename(tmp_path / "moved")
        (tmp_path / "evil").mkdir()
        (tmp_path / "evil" / "f").write_bytes(b"outside")
        os.symlink(tmp_path / "evil", daemon.root)
        out = tmp_path / "out"
        c.get("f", str(out))
    assert out.read_bytes() == b"in library"
