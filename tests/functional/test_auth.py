"""Accounts: the users file, `ftpd passwd`, logins, 401/403 and brute-force limits."""

import io
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from ftpd.server import auth
from ftpd.client import ConnectionLost, ServerError
from tests.harness import (PROJECT, ftpd_argv, project_env, read_reply, recv_all, run_ftpd,
                           wait_until, write_config)

FAST = auth.Cost(10, 8, 1)      # unit tests only: the real default is tested by the CLI


def passwd(conf: Path, *args: str, password: str = None) -> subprocess.CompletedProcess:
    return run_ftpd("-c", str(conf), "passwd", *args, input=password)


@pytest.fixture
def conf(tmp_path):
    return write_config(tmp_path / "ftpd.conf", {
        "server": {"root": tmp_path / "lib"},
        "access": {"users_file": tmp_path / "etc" / "users"}})


# -- records and hashing ---------------------------------------------------------

def test_record_round_trip_keeps_its_cost_parameters():
    record = auth.make_record("alice", "write", "s3cret", FAST)
    line = record.line()
    assert re.fullmatch(r"alice:write:\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+",
                        line)
    assert "s3cret" not in line
    parsed = auth.parse_record(line)
    assert parsed == record
    assert auth.verify(parsed, "s3cret")
    assert not auth.verify(parsed, "s3cret ")


def test_same_password_gets_a_different_salt_each_time():
    one = auth.make_record("a", "read", "pw", FAST)
    two = auth.make_record("a", "read", "pw", FAST)
    assert one.salt != two.salt and one.key != two.key


@pytest.mark.parametrize("line", [
    "alice:write",
    "alice:admin:$scrypt$ln=10,r=8,p=1$c2FsdA$a2V5",
    "al ice:read:$scrypt$ln=10,r=8,p=1$c2FsdA$a2V5",
    "alice:read:$pbkdf2$ln=10,r=8,p=1$c2FsdA$a2V5",
    "alice:read:$scrypt$ln=99,r=8,p=1$c2FsdA$a2V5",
    "alice:read:plaintext-password",
])
def test_malformed_records_are_refused(line):
    with pytest.raises(ValueError):
        auth.parse_record(line)


def test_unknown_user_costs_one_scrypt_run_with_the_default_cost(monkeypatch):
    accounts = auth.Accounts()
    accounts.records["alice"] = auth.make_record("alice", "read", "right", auth.DEFAULT_COST)
    calls = []
    real = auth.hashlib.scrypt

    def counting(password, **kwargs):
        calls.append(kwargs["n"])
        return real(password, **kwargs)

    monkeypatch.setattr(auth.hashlib, "scrypt", counting)
    assert accounts("alice", "wrong") is None
    assert accounts("mallory", "wrong") is None
    assert accounts("alice", "right") == auth.Login("read", "")
    assert calls == [1 << auth.DEFAULT_COST.log2_n] * 3


def test_keys_are_compared_in_constant_time(monkeypatch):
    seen = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: seen.append(1) or real(a, b))
    record = auth.make_record("a", "read", "pw", FAST)
    assert auth.verify(record, "pw") and not auth.verify(record, "px")
    assert len(seen) == 2


# -- ftpd passwd -------------------------------------------------------------------

def test_passwd_from_stdin_creates_a_0600_file_atomically(conf, tmp_path):
    users = tmp_path / "etc" / "users"
    users.parent.mkdir()
    result = passwd(conf, "alice", "--access", "write", password="correct horse\n")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    text = users.read_text()
    assert "correct horse" not in text
    [record] = auth.parse_lines(text.splitlines()).values()
    assert (record.user, record.access, record.cost) == ("alice", "write", auth.DEFAULT_COST)
    assert auth.verify(record, "correct horse")
    assert os.listdir(users.parent) == ["users"]       # no temp file left behind


def test_passwd_updates_keeps_access_and_comments_and_deletes(conf, tmp_path):
    users = tmp_path / "etc" / "users"
    users.parent.mkdir()
    users.write_text("# our accounts\n")
    users.chmod(0o644)
    assert passwd(conf, "bob", "--access", "write", password="one\n").returncode == 0
    assert passwd(conf, "carol", password="two\n").returncode == 0
    assert passwd(conf, "bob", password="three\n").returncode == 0     # new password only
    records = auth.parse_lines(users.read_text().splitlines())
    assert {u: r.access for u, r in records.items()} == {"bob": "write", "carol": "read"}
    assert auth.verify(records["bob"], "three")
    assert users.read_text().startswith("# our accounts\n")
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert passwd(conf, "--delete", "carol").returncode == 0
    assert list(auth.parse_lines(users.read_text().splitlines())) == ["bob"]
    missing = passwd(conf, "--delete", "carol")
    assert missing.returncode == 65 and "no such user" in missing.stderr


@pytest.mark.parametrize("user, password, problem", [
    ("bad:name", "pw\n", "invalid user name"),
    ("-rf", "pw\n", "invalid user name"),
    ("dave", "\n", "empty password"),
])
def test_passwd_refuses_bad_input_and_changes_nothing(conf, tmp_path, user, password, problem):
    (tmp_path / "etc").mkdir()
    result = passwd(conf, "--", user, password=password) if user.startswith("-") \
        else passwd(conf, user, password=password)
    assert result.returncode == 65 and problem in result.stderr
    assert not (tmp_path / "etc" / "users").exists()


def test_passwd_without_users_file_is_a_config_error(tmp_path):
    conf = write_config(tmp_path / "plain.conf", {"server": {"root": tmp_path / "lib"}})
    result = passwd(conf, "alice", password="pw\n")
    assert result.returncode == 78 and "[access] users_file" in result.stderr


def spawn_passwd(conf: Path, user: str) -> pexpect.spawn:
    command = ftpd_argv("-c", str(conf), "passwd", user)
    child = pexpect.spawn(command[0], command[1:], env=project_env(), timeout=30,
                          encoding="utf-8")
    child.logfile_read = io.StringIO()      # everything the terminal showed
    return child


def test_passwd_on_a_terminal_asks_twice_without_echo(conf, tmp_path):
    (tmp_path / "etc").mkdir()
    child = spawn_passwd(conf, "erin")
    child.expect("New password: ")
    child.sendline("tty-secret")
    child.expect("Repeat password: ")
    child.sendline("tty-secret")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    transcript = child.logfile_read.getvalue()
    assert "Repeat password: " in transcript and "tty-secret" not in transcript
    records = auth.parse_lines((tmp_path / "etc" / "users").read_text().splitlines())
    assert auth.verify(records["erin"], "tty-secret")


def test_passwd_on_a_terminal_with_mismatch_changes_nothing(conf, tmp_path):
    (tmp_path / "etc").mkdir()
    child = spawn_passwd(conf, "frank")
    child.expect("New password: ")
    child.sendline("one")
    child.expect("Repeat password: ")
    child.sendline("two")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 65 and "do not match" in child.before
    assert not (tmp_path / "etc" / "users").exists()


# -- logging in against the real daemon ----------------------------------------------

def make_users(path: Path, **accounts: str) -> Path:
    """accounts: name="access:password" (a fast cost keeps the tests quick)."""
    lines = [auth.make_record(user, *spec.split(":", 1), FAST).line()
             for user, spec in accounts.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def accounts_daemon(make_daemon, tmp_path):
    def start(anonymous="read", delay=0.3, failures=3, **accounts):
        users = make_users(tmp_path / "users", **accounts)
        return make_daemon({"access": {"anonymous": anonymous, "users_file": users,
                                       "login_failure_delay": delay,
                                       "max_login_failures": failures}})
    return start


def test_write_user_uploads_read_user_gets_403_anonymous_gets_401(accounts_daemon, tmp_path):
    daemon = accounts_daemon(writer="write:pw-w", reader="read:pw-r")
    (tmp_path / "f").write_bytes(b"data")
    with daemon.client() as c:
        assert c.list() == []
        with pytest.raises(ServerError) as info:
            c.put(str(tmp_path / "f"), "f")
        assert info.value.code == 401             # logging in would help
        assert c.login("reader", "pw-r") == "reader"
        with pytest.raises(ServerError) as info:
            c.put(str(tmp_path / "f"), "f")
        assert info.value.code == 403             # this account lacks the right
        assert c.login("writer", "pw-w") == "writer"
        assert c.put(str(tmp_path / "f"), "f")[0] == 4
    assert (daemon.root / "f").read_bytes() == b"data"


def test_anonymous_none_needs_a_login_for_everything(accounts_daemon):
    daemon = accounts_daemon(anonymous="none", reader="read:pw")
    with daemon.client() as c:
        for verb, args in (("L", ()), ("H", ("x",)), ("G", ("x",))):
            with pytest.raises(ServerError) as info:
                c.request(verb, *args)
            assert info.value.code == 401
        c.login("reader", "pw")
        assert c.list() == []


def test_read_only_anonymous_gets_401_for_put_even_without_writers(accounts_daemon):
    daemon = accounts_daemon(reader="read:pw")
    with daemon.client() as c:
        with pytest.raises(ServerError) as info:
            c.request("P", "f", "4")
        assert info.value.code == 401          # anonymous: logging in is the way


def test_failed_logins_are_slow_then_421_and_closed(accounts_daemon):
    daemon = accounts_daemon(delay=0.4, failures=3, alice="write:right")
    with daemon.client() as c:
        for user in ("alice", "nobody-here"):
            started = time.monotonic()
            with pytest.raises(ServerError) as info:
                c.login(user, "wrong")
            assert info.value.code == 401
            assert time.monotonic() - started >= 0.4
        with pytest.raises(ServerError) as info:
            c.login("alice", "still wrong")
        assert info.value.code == 421
        with pytest.raises(ConnectionLost):
            c.list()
    wait_until(lambda: "too many failed logins" in daemon.log(), what="the closing log line")


def test_the_right_password_is_not_delayed(accounts_daemon):
    daemon = accounts_daemon(delay=5, alice="write:right")
    with daemon.client() as c:
        started = time.monotonic()
        assert c.login("alice", "right") == "alice"
        assert time.monotonic() - started < 4


def test_failure_lines_match_the_shipped_fail2ban_filter(accounts_daemon):
    daemon = accounts_daemon(delay=0, alice="write:right")
    with daemon.connect() as sock:
        read_reply(sock)
        sock.sendall(b"A evil%0Aaddress=10.9.9.9 x\nA alice nope\nQ\n")
        recv_all(sock)
    wait_until(lambda: daemon.log().count("login failed:") == 2, what="two failure lines")
    filter_text = (PROJECT / "etc" / "fail2ban" / "filter.d"
                   / "ftpd.conf").read_text()
    failregex = re.search(r"^failregex\s*=\s*(.+)$", filter_text, re.M).group(1).strip()
    pattern = re.compile(failregex.replace("<HOST>", r"(?P<host>[0-9a-fA-F.:]+)"))
    hosts = [m.group("host") for line in daemon.log().splitlines()
             if (m := pattern.search(line))]
    assert hosts == ["127.0.0.1", "127.0.0.1"]         # the injected address never matches


def test_a_user_added_while_running_can_log_in_without_reload(accounts_daemon, tmp_path):
    daemon = accounts_daemon(alice="write:a")
    make_users(tmp_path / "users", alice="write:a", bob="read:b")
    with daemon.client() as c:
        assert c.login("bob", "b") == "bob"


def test_a_broken_users_file_is_a_config_error(tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:write:not-a-hash\n")
    conf = write_config(tmp_path / "c.conf", {"server": {"root": tmp_path},
                                              "access": {"users_file": users}})
    result = run_ftpd("-c", str(conf), "check")
    assert result.returncode == 78
    assert "[access] users_file" in result.stderr and "line 1" in result.stderr
