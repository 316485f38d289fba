"""The library as a tree, against the real daemon over raw sockets: paths in
every verb, L of a directory or a file, M, D, R, their error codes, P's
trailing digest and mtime, overwrite = no, the listing limit and the
transfer log lines of M, D and R."""

import hashlib
import os
import socket
from typing import List

import pytest

from ftpd.server.temps import temp_name
from tests.harness import read_reply, wait_until
from tests.functional.test_auth import make_users


def ask(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line)
    return read_reply(sock)


def listing(sock: socket.socket, path: bytes = b"") -> List[bytes]:
    """The rows of `L path` (without their LF); fails on an ERR."""
    head = ask(sock, b"L " + path + b"\n" if path else b"L\n")
    assert head.startswith(b"OK "), head
    return [read_reply(sock)[:-1] for _ in range(int(head.split()[1]))]


def names(sock: socket.socket, path: bytes = b"") -> List[bytes]:
    return [row.split(b" ")[2] for row in listing(sock, path)]


def put(sock: socket.socket, path: bytes, data: bytes, *extra: bytes) -> bytes:
    """P with the given extra fields; the final reply (or the refusal)."""
    ready = ask(sock, b" ".join((b"P", path, str(len(data)).encode()) + extra) + b"\n")
    if ready != b"OK ready\n":
        return ready
    sock.sendall(data)
    return read_reply(sock)


@pytest.fixture
def raw(daemon):
    with daemon.greeted() as sock:
        yield sock


def test_a_tree_made_filled_listed_and_read(daemon, raw):
    data = b"hello world\n"
    digest = hashlib.sha256(data).hexdigest().encode()
    assert ask(raw, b"M photos\n") == b"OK\n"
    assert ask(raw, b"M photos/2026\n") == b"OK\n"
    assert put(raw, b"photos/2026/beach%20day.txt", data, digest) == b"OK 12 " + digest + b"\n"
    assert (daemon.root / "photos" / "2026" / "beach day.txt").read_bytes() == data
    [row] = listing(raw)
    assert row.startswith(b"- ") and row.endswith(b" photos/")
    assert int(row.split()[1]) == int((daemon.root / "photos").stat().st_mtime)
    assert names(raw, b"photos") == [b"2026/"]
    assert names(raw, b"photos%2F2026") == [b"beach%20day.txt"]
    assert listing(raw, b"photos/2026/beach%20day.txt") == [
        b"12 %d beach%%20day.txt"
        % int((daemon.root / "photos/2026/beach day.txt").stat().st_mtime)]
    assert ask(raw, b"G photos/2026/beach%20day.txt\n") == b"OK 12\n"
    assert raw.recv(12, socket.MSG_WAITALL) == data
    assert ask(raw, b"G photos/2026/beach%20day.txt 6\n") == b"OK 6\n"
    assert raw.recv(6, socket.MSG_WAITALL) == b"world\n"
    assert ask(raw, b"H photos/2026/beach%20day.txt\n") == b"OK 12 " + digest + b"\n"


def test_rows_are_sorted_and_skip_links_specials_hidden_and_temps(daemon, raw, tmp_path):
    for name in ("b", "a", "Z", "é"):
        (daemon.root / name).write_bytes(b"x")
    (daemon.root / "dir").mkdir()
    (daemon.root / ".hidden").write_bytes(b"x")
    (daemon.root / temp_name(1, 2)).write_bytes(b"x")
    (daemon.root / "link").symlink_to(tmp_path)
    os.mkfifo(daemon.root / "fifo")
    assert names(raw) == [b"Z", b"a", b"b", b"dir/", "é".encode()]


@pytest.mark.parametrize("line", [
    b"L /a\n", b"L a/\n", b"L a//b\n", b"L .\n", b"L a/..\n", b"G a/./b\n", b"H ..\n",
    b"M /\n", b"M a%2F\n", b"M %2Fa\n", b"D a/.hidden\n", b"R a ../b\n", b"R a/ b\n",
    b"P a//b 1\n", b"G " + b"x/" * 2000 + b"x\n",
    b"M " + b"/".join([b"a" * 250] * 16) + b"\n",   # 4015 bytes
    b"M a/b/c/d/e/f/g/h/i\n",                      # deeper than max_depth = 8
])
def test_invalid_paths_get_400_and_the_session_goes_on(make_daemon, line):
    daemon = make_daemon({"files": {"max_depth": 8}})
    with daemon.greeted() as sock:
        reply = ask(sock, line)
        assert reply.startswith(b"ERR 400 "), reply
        assert ask(sock, b"L\n") == b"OK 0\n"
    assert os.listdir(daemon.root) == []


def test_max_depth_allows_exactly_that_many_levels(make_daemon):
    daemon = make_daemon({"files": {"max_depth": 3}})
    with daemon.greeted() as sock:
        for path in (b"a", b"a/b", b"a/b/c"):
            assert ask(sock, b"M " + path + b"\n") == b"OK\n"
        assert ask(sock, b"M a/b/c/d\n").startswith(b"ERR 400 ")
        assert put(sock, b"a/b/c/d", b"x").startswith(b"ERR 400 ")


@pytest.mark.parametrize("line", [
    b"L nope\n", b"L nope/x\n", b"G nope/f\n", b"H nope/f\n", b"M nope/d\n",
    b"D nope\n", b"D nope/f\n", b"R nope x\n", b"R f nope/f\n", b"P nope/f 1\n",
    b"G f/x\n", b"P f/x 1\n", b"M f/x\n",          # a file where a directory should be
])
def test_missing_things_and_missing_parents_are_404(daemon, raw, line):
    (daemon.root / "f").write_bytes(b"x")
    reply = ask(raw, line)
    assert reply.startswith(b"ERR 404 "), reply      # P: before OK ready, no bytes sent
    assert names(raw) == [b"f"]


def test_symlinks_are_never_followed_at_any_depth(daemon, raw, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (daemon.root / "d").mkdir()
    (daemon.root / "d" / "out").symlink_to(outside)
    (daemon.root / "out").symlink_to(outside)
    for line in (b"L out\n", b"L d/out\n", b"G d/out/secret\n", b"H out/secret\n",
                 b"M d/out/new\n", b"D d/out/secret\n", b"R d/out/secret mine\n",
                 b"R d d/out/d\n", b"P d/out/new 1\n", b"D d/out\n", b"G out\n"):
        reply = ask(raw, line)
        assert reply.startswith(b"ERR 404 "), (line, reply)
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"


@pytest.mark.parametrize("line, reason", [
    (b"M d\n", b"exists"), (b"M f\n", b"exists"),
    (b"D d\n", b"not empty"),
    (b"P d 1\n", b"directory"),
    (b"R d d/sub/d\n", b"itself"), (b"R d d/d\n", b"itself"),
    (b"R e d\n", b"exists"), (b"R e f\n", b"exists"), (b"R f d\n", b"exists"),
    (b"R d/sub e\n", b"exists"),
])
def test_conflicts_get_409_and_change_nothing(daemon, raw, line, reason):
    (daemon.root / "d" / "sub").mkdir(parents=True)
    (daemon.root / "e").mkdir()
    (daemon.root / "f").write_bytes(b"x")
    reply = ask(raw, line)
    assert reply.startswith(b"ERR 409 ") and reason in reply, reply
    assert names(raw) == [b"d/", b"e/", b"f"]
    assert names(raw, b"d") == [b"sub/"] and names(raw, b"e") == []


def test_delete_a_file_and_an_empty_directory(daemon, raw):
    (daemon.root / "d" / "sub").mkdir(parents=True)
    (daemon.root / "d" / "f").write_bytes(b"x")
    assert ask(raw, b"D d/f\n") == b"OK\n"
    assert ask(raw, b"D d/sub\n") == b"OK\n"
    assert ask(raw, b"D d\n") == b"OK\n"
    assert ask(raw, b"D d\n").startswith(b"ERR 404 ")
    assert os.listdir(daemon.root) == []


def test_a_download_in_progress_survives_a_delete(daemon, tmp_path):
    (daemon.root / "f").write_bytes(b"z" * 4_000_000)
    with daemon.greeted() as reader, daemon.greeted() as writer:
        assert ask(reader, b"G f\n") == b"OK 4000000\n"
        assert ask(writer, b"D f\n") == b"OK\n"
        got = b""
        while len(got) < 4_000_000:
            chunk = reader.recv(1 << 20)
            assert chunk
            got += chunk
        assert got == b"z" * 4_000_000


def test_rename_moves_files_and_directories_and_replaces_a_file(daemon, raw):
    (daemon.root / "a" / "inner").mkdir(parents=True)
    (daemon.root / "a" / "inner" / "f").write_bytes(b"f")
    (daemon.root / "old").write_bytes(b"old")
    (daemon.root / "new").write_bytes(b"new")
    (daemon.root / "b").mkdir()
    assert ask(raw, b"R a b/a2\n") == b"OK\n"
    assert (daemon.root / "b" / "a2" / "inner" / "f").read_bytes() == b"f"
    assert ask(raw, b"R b/a2/inner/f top%20f\n") == b"OK\n"
    assert ask(raw, b"R new old\n") == b"OK\n"        # a file replaces a file
    assert (daemon.root / "old").read_bytes() == b"new"
    assert names(raw) == [b"b/", b"old", b"top%20f"]
    assert names(raw, b"b/a2") == [b"inner/"]


def test_p_refuses_before_ok_ready_and_never_makes_directories(daemon, raw):
    (daemon.root / "d").mkdir()
    for line in (b"P missing/f 3\n", b"P d 3\n", b"P d/x/f 3\n"):
        assert ask(raw, line).startswith(b"ERR 40"), line
    assert ask(raw, b"L\n") == b"OK 1\n"              # the session was never out of step
    assert read_reply(raw).endswith(b" d/\n")
    assert os.listdir(daemon.root / "d") == []


def test_p_with_a_trailing_digest_good_bad_and_malformed(daemon, raw):
    data = b"streamed bytes"
    digest = hashlib.sha256(data).hexdigest().encode()
    (daemon.root / "d").mkdir()
    raw.sendall(b"P d/good %d -\n" % len(data))
    assert read_reply(raw) == b"OK ready\n"
    raw.sendall(data + digest.upper() + b"\r\n")
    assert read_reply(raw) == b"OK %d %s\n" % (len(data), digest)
    assert (daemon.root / "d" / "good").read_bytes() == data
    for trailer, code in ((b"0" * 64, b"422"), (b"not-a-digest", b"400")):
        raw.sendall(b"P d/bad %d -\n" % len(data))
        assert read_reply(raw) == b"OK ready\n"
        raw.sendall(data + trailer + b"\n")
        assert read_reply(raw).startswith(b"ERR " + code + b" "), trailer
    assert sorted(os.listdir(daemon.root / "d")) == ["good"]     # no temp, no "bad"
    assert names(raw, b"d") == [b"good"]


def test_p_with_mtime_keeps_the_time(daemon, raw):
    data = b"old photo"
    digest = hashlib.sha256(data).hexdigest().encode()
    assert put(raw, b"announced", data, digest, b"1000000000").startswith(b"OK 9 ")
    assert ask(raw, b"P streamed 0 - 1234567890\n") == b"OK ready\n"
    raw.sendall(hashlib.sha256(b"").hexdigest().encode() + b"\n")
    assert read_reply(raw).startswith(b"OK 0 ")
    times = {row.split()[2]: int(row.split()[1]) for row in listing(raw)}
    assert times == {b"announced": 1000000000, b"streamed": 1234567890}
    assert int((daemon.root / "announced").stat().st_mtime) == 1000000000
    for mtime in (b"soon", b"9223372036854775807", b"-1"):
        assert put(raw, b"x", data, digest, mtime).startswith(b"ERR 400 "), mtime
    assert put(raw, b"y", data, digest, b"1000000000", b"extra").startswith(b"ERR 400 ")


def test_overwrite_no_is_a_drop_box(make_daemon):
    daemon = make_daemon({"files": {"overwrite": "no"}})
    (daemon.root / "kept").write_bytes(b"kept")
    with daemon.greeted() as sock:
        assert ask(sock, b"M new\n") == b"OK\n"
        assert put(sock, b"new/f", b"data").startswith(b"OK 4 ")
        for line in (b"P kept 1\n", b"P new/f 1\n", b"D kept\n", b"D new\n", b"R kept k2\n",
                     b"R new n2\n", b"D missing\n"):
            reply = ask(sock, line)
            assert reply.startswith(b"ERR 403 "), (line, reply)
    assert (daemon.root / "kept").read_bytes() == b"kept"
    assert (daemon.root / "new" / "f").read_bytes() == b"data"


def test_read_only_accounts_and_anonymous_may_not_change_the_tree(make_daemon, tmp_path):
    users = make_users(tmp_path / "users", reader="read:pw")
    daemon = make_daemon({"access": {"anonymous": "read", "users_file": users,
                                     "login_failure_delay": 0}})
    (daemon.root / "d").mkdir()
    changes = (b"M x\n", b"D d\n", b"R d e\n", b"P f 1\n")
    with daemon.greeted() as sock:
        for line in changes:
            assert ask(sock, line).startswith(b"ERR 401 "), line
        assert ask(sock, b"A reader pw\n") == b"OK reader\n"
        for line in changes:
            assert ask(sock, line).startswith(b"ERR 403 "), line
        assert names(sock) == [b"d/"]


def test_listing_beyond_the_limit_is_413(make_daemon):
    daemon = make_daemon({"files": {"max_entries_per_listing": 5}})
    (daemon.root / "big").mkdir()
    for i in range(5):
        (daemon.root / "big" / f"f{i}").write_bytes(b"")
    with daemon.greeted() as sock:
        assert len(listing(sock, b"big")) == 5
        (daemon.root / "big" / "d5").mkdir()
        assert ask(sock, b"L big\n").startswith(b"ERR 413 ")
        assert listing(sock, b"big/d5") == []
        assert len(listing(sock)) == 1


def test_tree_changes_are_logged_like_transfers(make_daemon):
    daemon = make_daemon({"log": {"transfer_log": "transfers.log"}})
    with daemon.greeted() as sock:
        for line in (b"M a\n", b"M a%20b\n", b"R a%20b a/c\n", b"D a\n", b"D a/c\n", b"D a\n"):
            ask(sock, line)
    log = daemon.workdir / "transfers.log"
    lines = wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 6 and
                       log.read_text().splitlines(), what="six log lines")
    fields = [line.split(" ", 8) for line in lines]
    assert all(f[1].startswith("127.0.0.1:") and f[2] == "anonymous" and f[5] == "0"
               and f[7] == "-" for f in fields)
    assert [(f[3], f[4], f[8]) for f in fields] == [
        ("M", "a", "ok"), ("M", "a%20b", "ok"), ("R", "a%20b", "ok -> a/c"),
        ("D", "a", "failed: directory not empty"), ("D", "a/c", "ok"), ("D", "a", "ok")]


def test_stale_temps_anywhere_in_the_tree_are_removed_at_start(make_daemon, tmp_path):
    daemon = make_daemon(start=False)
    deep = daemon.root / "a" / "b"
    deep.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    dead = 2 ** 22 + 12345                      # above pid_max: never a live node
    stale = [daemon.root / temp_name(dead, 7), deep / temp_name(dead, 8)]
    kept = [outside / temp_name(dead, 9), daemon.root / "a" / "keep.txt"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    (daemon.root / "a" / "out").symlink_to(outside)
    daemon.start()
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)
    assert "removed 2 stale upload temp(s)" in daemon.log()
