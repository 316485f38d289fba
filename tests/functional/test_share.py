"""Fair sharing (issue 18): per-session rate limits and per-account quotas,
against the real daemon in both models, plus `ftpd passwd` limits."""

import hashlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import psutil

from ftpd.server import auth, quota
from ftpd.server.auth import Limits
from tests.harness import fork_only, read_reply, run_ftpd
from tests.functional.test_auth import FAST, conf, passwd  # noqa: F401  (conf is a fixture)
from tests.functional.test_tree import ask, put

MiB = 1 << 20


def accounts(path: Path, **limits: Limits) -> Path:
    """Write accounts, each `write` with password "pw" and home users/<name>."""
    path.write_text("".join(auth.make_record(user, "write", "pw", FAST, f"users/{user}",
                                             limit).line() + "\n"
                            for user, limit in limits.items()))
    path.chmod(0o600)
    return path


def logged_in(daemon, user: str) -> socket.socket:
    sock = daemon.greeted()
    assert ask(sock, f"A {user} pw\n".encode()) == f"OK {user}\n".encode()
    return sock


def download(sock: socket.socket, name: bytes) -> int:
    head = ask(sock, b"G " + name + b"\n")
    assert head.startswith(b"OK "), head
    size, got = int(head.split()[1]), 0
    while got < size:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed mid-download"
        got += len(chunk)
    return got


def test_a_limited_download_runs_at_its_rate_and_an_unlimited_one_beside_it_is_not_slowed(
        make_daemon, tmp_path):
    users = accounts(tmp_path / "users", fast=Limits(max_rate=0))
    daemon = make_daemon({"files": {"max_rate": "4M"},     # anonymous: the server default
                          "access": {"users_file": users, "login_failure_delay": 0}})
    (daemon.root / "big").write_bytes(os.urandom(20 * MiB))
    (daemon.root / "users" / "fast").mkdir(parents=True)
    (daemon.root / "users" / "fast" / "big").write_bytes(os.urandom(20 * MiB))
    fast = logged_in(daemon, "fast")
    timing = {}

    def limited():
        with daemon.greeted(timeout=30) as sock:
            started = time.monotonic()
            assert download(sock, b"big") == 20 * MiB
            timing["limited"] = time.monotonic() - started
            timing["cpu"] = _session_cpu(daemon)
    runner = threading.Thread(target=limited)
    runner.start()
    time.sleep(1.0)                      # the limited one is under way
    started = time.monotonic()
    assert download(fast, b"big") == 20 * MiB
    unlimited = time.monotonic() - started
    runner.join(30)
    fast.close()
    assert 4.5 <= timing["limited"] <= 5.5, timing
    assert unlimited < 1.0, unlimited    # a small fraction of the limited 5 s
    # Waiting sleeps: the whole daemon used far less CPU than 5 s of polling.
    assert timing["cpu"] < 2.0, timing


def _session_cpu(daemon) -> float:
    processes = [psutil.Process(daemon.pid)] + daemon.children()
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def test_an_account_rate_limits_its_uploads(make_daemon, tmp_path):
    users = accounts(tmp_path / "users", slow=Limits(max_rate=4 * MiB))
    daemon = make_daemon({"access": {"users_file": users, "login_failure_delay": 0}})
    with logged_in(daemon, "slow") as sock:
        sock.settimeout(30)
        started = time.monotonic()
        assert put(sock, b"up", os.urandom(8 * MiB)).startswith(b"OK 8388608 ")
        elapsed = time.monotonic() - started
    assert 1.8 <= elapsed <= 2.4, elapsed
    assert (daemon.root / "users" / "slow" / "up").stat().st_size == 8 * MiB


def usage(daemon, user: str):
    recorded = json.loads((daemon.root / "users" / user / quota.USAGE_FILE).read_text())
    return recorded["bytes"], recorded["files"]


def test_quota_refuses_before_ready_and_deleting_or_overwriting_gives_space_back(
        make_daemon, tmp_path):
    users = accounts(tmp_path / "users", q=Limits(quota=1000, max_files=2))
    daemon = make_daemon({"access": {"users_file": users, "login_failure_delay": 0}})
    home = daemon.root / "users" / "q"
    with logged_in(daemon, "q") as sock:
        refused = ask(sock, b"P big 1001\n")
        assert refused.startswith(b"ERR 507 ") and b"quota" in refused, refused
        assert put(sock, b"a", b"x" * 600).startswith(b"OK 600 ")
        assert put(sock, b"b", b"x" * 600).startswith(b"ERR 507 ")    # 1200 > 1000
        assert put(sock, b"a", b"x" * 100).startswith(b"OK 100 ")     # overwrite: 100 used
        assert put(sock, b"b", b"x" * 900).startswith(b"OK 900 ")
        assert usage(daemon, "q") == (1000, 2)
        files = ask(sock, b"P c 0\n")
        assert files.startswith(b"ERR 507 ") and b"quota" in files, files   # max_files
        assert ask(sock, b"D b\n") == b"OK\n"
        assert ask(sock, b"M d\n") == b"OK\n"
        assert ask(sock, b"R a d/a2\n") == b"OK\n"                    # moves count nothing
        assert usage(daemon, "q") == (100, 1)
        assert put(sock, b"c", b"y" * 900).startswith(b"OK 900 ")
        assert ask(sock, b"R c d/a2\n") == b"OK\n"                    # replaced: 100 back
        assert usage(daemon, "q") == (900, 1)
        assert ask(sock, b"P e 0\n") == b"OK ready\n"                 # session goes on
        assert read_reply(sock).startswith(b"OK 0 ")
    assert sorted(p.name for p in home.rglob("*") if not p.name.startswith(".")) \
        == ["a2", "d", "e"]


def test_parallel_sessions_of_one_account_cannot_double_spend(make_daemon, tmp_path):
    users = accounts(tmp_path / "users", team=Limits(quota=10 * MiB))
    daemon = make_daemon({"server": {"pidfile": tmp_path / "ftpd.pid"},
                          "access": {"users_file": users, "login_failure_delay": 0}})
    socks = [logged_in(daemon, "team") for _ in range(4)]
    try:
        for number, sock in enumerate(socks):       # all announce before any sends
            sock.sendall(b"P f%d %d\n" % (number, 3 * MiB))
        answers = [read_reply(sock) for sock in socks]
        ready = [sock for sock, answer in zip(socks, answers, strict=True)
                 if answer == b"OK ready\n"]
        assert len(ready) == 3, answers
        assert sum(a.startswith(b"ERR 507 ") for a in answers) == 1, answers
        for sock in ready:
            threading.Thread(target=sock.sendall, args=(b"z" * (3 * MiB),)).start()
        for sock in ready:
            assert read_reply(sock, timeout=30).startswith(b"OK 3145728 ")
    finally:
        for sock in socks:
            sock.close()
    assert usage(daemon, "team") == (9 * MiB, 3)
    shown = run_ftpd("-c", str(daemon.config_path), "status")
    assert "team /users/team: 9.0M of 10.0M, 3 of unlimited files" in shown.stdout, shown


@fork_only
def test_a_killed_session_leaves_no_reservation_and_a_cut_change_is_recounted(
        make_daemon, tmp_path):
    users = accounts(tmp_path / "users", q=Limits(quota=1000))
    daemon = make_daemon({"access": {"users_file": users, "login_failure_delay": 0}})
    home = daemon.root / "users" / "q"
    with logged_in(daemon, "q") as sock:
        assert ask(sock, b"P a 900\n") == b"OK ready\n"              # holds 900
        [child] = daemon.live_children()
        child.kill()
        child.wait(10)
    (home / "hand-made").write_bytes(b"h" * 300)                     # outside ftpd
    with logged_in(daemon, "q") as sock:
        assert put(sock, b"b", b"x" * 600).startswith(b"OK 600 ")    # 900 was given back
        # A session that died mid-change: its writer mark makes the next use recount.
        recorded = json.loads((home / quota.USAGE_FILE).read_text())
        recorded.update(bytes=5, writer="999999999:1")
        (home / quota.USAGE_FILE).write_text(json.dumps(recorded))
        refused = ask(sock, b"P c 200\n")                            # 900 + 200 > 1000
        assert refused.startswith(b"ERR 507 ") and b"900 of 1000" in refused, refused
    assert usage(daemon, "q") == (900, 2)


def test_passwd_sets_limits_keeps_the_password_and_lists_usage(conf, tmp_path):  # noqa: F811
    (tmp_path / "etc").mkdir()
    assert passwd(conf, "alice", "--access", "write", "--home", "users/alice",
                  password="pw\n").returncode == 0
    users = tmp_path / "etc" / "users"
    before = users.read_text()
    result = passwd(conf, "alice", "--quota", "10G", "--max-files", "5", "--max-rate", "4M")
    assert result.returncode == 0, result.stderr        # no password asked, none changed
    [record] = auth.parse_lines(users.read_text().splitlines()).values()
    assert record.limits == Limits(4 * MiB, 10 << 30, 5)
    assert record.key == auth.parse_record(before.strip()).key
    bad = passwd(conf, "alice", "--quota", "lots")
    assert bad.returncode != 0 and "not a size" in bad.stderr
    home = tmp_path / "lib" / "users" / "alice"
    home.mkdir(parents=True)
    (home / quota.USAGE_FILE).write_text('{"bytes": 3221225472, "files": 4}')
    listed = passwd(conf, "--list")
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split()
    assert row[:6] == ["alice", "write", "4.0M", "3.0G", "10.0G", "4"], listed.stdout
    assert passwd(conf, "bob", "--quota", "1G").returncode != 0      # new: needs a password


def test_ftpc_limit_rate_paces_both_directions(daemon, tmp_path):
    from tests.ftpc_util import run_ftpc
    (daemon.root / "big").write_bytes(os.urandom(4 * MiB))
    target = f"{daemon.host}:{daemon.port}"
    started = time.monotonic()
    got = run_ftpc("--limit-rate", "2M", target, "get", "big", home=tmp_path)
    fetched = time.monotonic() - started
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "big").read_bytes() == (daemon.root / "big").read_bytes()
    (tmp_path / "up").write_bytes(os.urandom(4 * MiB))
    started = time.monotonic()
    sent = run_ftpc("-b", "-", target, home=tmp_path, stdin=b"rate 2M\nput up\n")
    stored = time.monotonic() - started
    assert sent.returncode == 0, sent.stderr
    assert (daemon.root / "up").read_bytes() == (tmp_path / "up").read_bytes()
    # 4 MiB at 2 MiB/s: 2 s of pacing, plus the interpreter's start (the server is unlimited)
    assert 1.8 <= fetched <= 3.5 and 1.8 <= stored <= 3.5, (fetched, stored)


def test_a_resumable_upload_keeps_within_the_quota_too(make_daemon, tmp_path):
    # C stores like P: the quota must hold whichever verb an upload uses.
    users = accounts(tmp_path / "users", q=Limits(quota=1000))
    daemon = make_daemon({"access": {"users_file": users, "login_failure_delay": 0}})
    big, small = b"x" * 1001, b"y" * 700
    with logged_in(daemon, "q") as sock:
        refused = ask(sock, b"C big 1001 %s\n" % hashlib.sha256(big).hexdigest().encode())
        assert refused.startswith(b"ERR 507 ") and b"quota" in refused, refused
        assert ask(sock, b"C small 700 %s\n" % hashlib.sha256(small).hexdigest().encode()) \
            == b"OK 0\n"
        sock.sendall(small)
        assert read_reply(sock).startswith(b"OK 700 ")
        assert usage(daemon, "q") == (700, 1)
        assert put(sock, b"more", b"z" * 301).startswith(b"ERR 507 ")
