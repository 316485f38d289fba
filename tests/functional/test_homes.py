"""Homes: `ftpd passwd --home`, a session rooted at its account's home (made
at the first login) or at [access] anonymous_home, and `ftpd status` showing
each session's home. Against the real daemon in both models."""

import json
import os
from pathlib import Path

import pytest

from ftpd.server import auth
from tests.harness import fork_only, run_ftpd, wait_until
from tests.functional.test_auth import FAST, conf, passwd  # noqa: F401  (conf is a fixture)
from tests.functional.test_confine import service_user  # noqa: F401  (a fixture)
from tests.functional.test_tree import ask, names, put


def users_file(path: Path, **accounts: str) -> Path:
    """accounts: name="access:password:home" (home may be empty)."""
    lines = []
    for user, spec in accounts.items():
        access, password, home = spec.split(":")
        lines.append(auth.make_record(user, access, password, FAST, home=home).line())
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def homes_daemon(make_daemon, tmp_path):
    def start(anonymous_home="", server=None):
        users = users_file(tmp_path / "users", alice="write:pw-a:users/alice",
                           bob="write:pw-b:", carol="write:pw-c:trap/carol")
        return make_daemon({"server": server or {},
                            "access": {"anonymous": "write", "users_file": users,
                                       "anonymous_home": anonymous_home,
                                       "login_failure_delay": 0}})
    return start


def test_passwd_stores_a_home_and_refuses_one_that_climbs_out(conf, tmp_path):  # noqa: F811
    users = tmp_path / "etc" / "users"
    users.parent.mkdir()
    result = passwd(conf, "alice", "--access", "write", "--home", "users/alice",
                    password="pw\n")
    assert result.returncode == 0 and "home /users/alice" in result.stdout, result.stderr
    assert passwd(conf, "alice", password="new\n").returncode == 0        # home is kept
    [record] = auth.parse_lines(users.read_text().splitlines()).values()
    assert (record.access, record.home) == ("write", "users/alice")
    for bad in ("../etc", "users/../..", "a//b", ".ssh", "a/./b"):
        refused = passwd(conf, "alice", "--home", bad, password="pw\n")
        assert refused.returncode == 65 and "invalid home" in refused.stderr, bad
    assert passwd(conf, "alice", "--home", "/", password="pw\n").returncode == 0
    [record] = auth.parse_lines(users.read_text().splitlines()).values()
    assert record.home == ""


def test_home_records_round_trip_with_odd_names():
    record = auth.make_record("dave", "read", "pw", FAST, home="shared/my files:2026")
    assert record.line().endswith(":shared/my%20files:2026")
    assert auth.parse_record(record.line()) == record
    with pytest.raises(ValueError):
        auth.parse_record(record.line().rsplit(":", 2)[0] + ":../up")


def test_an_account_sees_only_its_home_made_at_first_login(homes_daemon):
    daemon = homes_daemon()
    (daemon.root / "top.txt").write_bytes(b"not alice's")
    home = daemon.root / "users" / "alice"
    with daemon.greeted() as sock:
        assert not home.exists()
        assert ask(sock, b"A alice pw-a\n") == b"OK alice\n"
        assert home.is_dir()
        assert names(sock) == []
        assert put(sock, b"f.txt", b"mine").startswith(b"OK 4 ")
        assert ask(sock, b"M sub\n") == b"OK\n"
        assert ask(sock, b"R f.txt sub/f.txt\n") == b"OK\n"
        for line in (b"G top.txt\n", b"L users\n", b"H users/alice/sub/f.txt\n",
                     b"D top.txt\n"):
            assert ask(sock, line).startswith(b"ERR 404 "), line
        for line in (b"G ../top.txt\n", b"L ..\n", b"R sub ../sub\n"):
            assert ask(sock, line).startswith(b"ERR 400 "), line
    assert (home / "sub" / "f.txt").read_bytes() == b"mine"
    assert (daemon.root / "top.txt").read_bytes() == b"not alice's"
    assert sorted(os.listdir(daemon.root)) == ["top.txt", "users"]


def test_anonymous_home_then_a_login_without_home_sees_everything(homes_daemon):
    daemon = homes_daemon(anonymous_home="pub")
    (daemon.root / "private.txt").write_bytes(b"x")
    with daemon.greeted() as sock:
        assert names(sock) == []                        # pub, made for this session
        assert put(sock, b"dropped", b"hi").startswith(b"OK 2 ")
        assert ask(sock, b"G private.txt\n").startswith(b"ERR 404 ")
        assert ask(sock, b"A bob pw-b\n") == b"OK bob\n"
        assert names(sock) == [b"private.txt", b"pub/"]
        assert names(sock, b"pub") == [b"dropped"]
    assert (daemon.root / "pub" / "dropped").read_bytes() == b"hi"


def test_a_home_through_a_symlink_is_refused_and_nothing_is_made_outside(homes_daemon,
                                                                        tmp_path):
    daemon = homes_daemon()
    outside = tmp_path / "outside"
    outside.mkdir()
    (daemon.root / "trap").symlink_to(outside)
    with daemon.greeted() as sock:
        reply = ask(sock, b"A carol pw-c\n")
        assert reply.startswith(b"ERR 500 ") and b"home" in reply, reply
        assert names(sock) == []            # still anonymous at the root; links unlisted
        assert put(sock, b"still-anonymous", b"x").startswith(b"OK 1 ")
    assert os.listdir(outside) == []
    assert (daemon.root / "still-anonymous").exists()


@fork_only
def test_status_shows_each_sessions_home(homes_daemon, tmp_path):
    daemon = homes_daemon(anonymous_home="pub",
                          server={"pidfile": tmp_path / "ftpd.pid"})
    with daemon.greeted() as anonymous, daemon.greeted() as alice:
        assert ask(alice, b"A alice pw-a\n") == b"OK alice\n"
        assert ask(anonymous, b"L\n") == b"OK 0\n"

        def homes():
            result = run_ftpd("-c", str(daemon.config_path), "status", "--json")
            assert result.returncode == 0, result.stderr
            found = {(s["user"], s["home"]) for s in json.loads(result.stdout)["sessions"]}
            return found if len(found) == 2 else None
        assert wait_until(homes, what="two sessions in status") == {
            ("anonymous", "/pub"), ("alice", "/users/alice")}
        table = run_ftpd("-c", str(daemon.config_path), "status").stdout
        assert " HOME " in table and " /users/alice " in table


@fork_only
def test_a_home_made_at_login_belongs_to_the_sessions_user(make_daemon, service_user,  # noqa: F811
                                                          tmp_path):
    users = users_file(tmp_path / "users", alice="write:pw-a:users/alice")
    daemon = make_daemon({"server": {"user": service_user.name},
                          "access": {"users_file": users, "login_failure_delay": 0}},
                         start=False)
    daemon.root.mkdir()
    os.chown(daemon.root, service_user.uid, service_user.gid)
    daemon.start()
    with daemon.greeted() as sock:
        assert ask(sock, b"A alice pw-a\n") == b"OK alice\n"
        assert put(sock, b"f", b"x").startswith(b"OK 1 ")
    for path in (daemon.root / "users", daemon.root / "users" / "alice",
                 daemon.root / "users" / "alice" / "f"):
        assert (path.stat().st_uid, path.stat().st_gid) == (service_user.uid,
                                                            service_user.gid), path
