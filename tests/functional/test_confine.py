"""Confinement of session children: rlimits and no_new_privs for everyone;
chroot and the privilege drop for real when the tests run as root (as CI does)."""

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from ftpd.server import confine
from ftpd.client import Client, ServerError
from tests.certs import make_pki
from tests.harness import fork_only, project_env, run_ftpd, wait_until, write_config
from tests.functional.test_auth import make_users

def needs_root(test):
    """Chroot and the privilege drop: a `system` test, skipped unless root."""
    skip = pytest.mark.skipif(os.geteuid() != 0, reason="chroot and the privilege drop "
                              "need root; CI runs the suite as root")
    return pytest.mark.system(skip(test))


def proc_status(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


def proc_limits(pid: int) -> dict:
    """'Max open files' -> (soft, hard) as text, from /proc/PID/limits."""
    limits = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        limits[name] = (soft, hard)
    return limits


@contextlib.contextmanager
def session_child(daemon) -> Iterator[int]:
    """Connect and have one request answered: a child that has read from its
    client is confined (a plain session may greet before it confines itself)."""
    with daemon.connect() as sock:
        assert sock.recv(64).startswith(b"OK FTPD/1")
        sock.sendall(b"NOSUCHVERB\n")
        assert sock.recv(64).startswith(b"ERR 400")
        [child] = wait_until(daemon.live_children, what="the session child")
        yield child.pid


@fork_only
def test_every_child_has_no_new_privs_and_small_limits(make_daemon):
    daemon = make_daemon({"files": {"max_file_size": "1M"}})
    with session_child(daemon) as pid:
        status, limits = proc_status(pid), proc_limits(pid)
    assert status["NoNewPrivs"] == ["1"]
    assert limits["Max core file size"] == ("0", "0")
    assert limits["Max processes"] == ("0", "0")
    assert limits["Max open files"] == (str(confine.SESSION_NOFILE),) * 2
    assert limits["Max file size"] == (str(1 << 20),) * 2
    parent = proc_limits(daemon.pid)
    assert parent["Max processes"] != ("0", "0")         # only the child is confined
    assert proc_status(daemon.pid)["NoNewPrivs"] == ["0"]


@fork_only
def test_a_greeted_client_already_talks_to_a_confined_child(make_daemon):
    daemon = make_daemon()
    for _ in range(5):     # the greeting must never overtake the confinement
        with daemon.connect() as sock:
            assert sock.recv(64).startswith(b"OK FTPD/1")
            [child] = wait_until(daemon.live_children, what="the session child")
            assert proc_status(child.pid)["NoNewPrivs"] == ["1"]
            assert proc_limits(child.pid)["Max processes"] == ("0", "0")
        wait_until(lambda: not daemon.children(), what="the session to be reaped")


@fork_only
def test_without_max_file_size_the_file_size_limit_is_left_alone(make_daemon):
    daemon = make_daemon()
    with session_child(daemon) as pid:
        assert proc_limits(pid)["Max file size"] == proc_limits(daemon.pid)["Max file size"]


def test_a_write_past_rlimit_fsize_becomes_413_not_a_signal(tmp_path):
    script = f"""
import os, sys
from ftpd.server import confine
from ftpd.server.library import Library, LibraryError
library = Library({str(tmp_path)!r})
confine.limit_resources(confine.Plan(chroot=False, uid=None, gid=None, user="", fsize=1000))
upload = library.begin_upload("big")
try:
    upload.write(memoryview(b"x" * 4000))
except LibraryError as exc:
    print("code", exc.code)
    sys.exit(0)
sys.exit(3)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=project_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "code 413"


def fake_config(tmp_path, user="", group="", chroot=True):
    return SimpleNamespace(source="x.conf", files=SimpleNamespace(max_file_size=0),
                           server=SimpleNamespace(user=user, group=group, chroot=chroot,
                                                  root=str(tmp_path)))


def test_plan_as_non_root_ignores_user_with_a_warning(tmp_path):
    plan = confine.plan_for(fake_config(tmp_path, user="root"), euid=4242)
    assert (plan.chroot, plan.uid, plan.gid) == (False, None, None)
    assert any("not started as root" in w for w in plan.warnings)


def test_plan_as_root_without_user_warns(tmp_path):
    plan = confine.plan_for(fake_config(tmp_path), euid=0)
    assert plan.chroot and plan.uid is None
    assert any("without [server] user" in w for w in plan.warnings)


def test_plan_as_root_resolves_user_and_group(tmp_path):
    plan = confine.plan_for(fake_config(tmp_path, user="root", group="0"), euid=0)
    assert (plan.uid, plan.gid, plan.warnings) == (0, 0, ())
    assert not confine.plan_for(fake_config(tmp_path, user="0", chroot=False), euid=0).chroot


@pytest.mark.parametrize("user, group, key", [
    ("no-such-user-ftpd", "", "[server] user"),
    ("root", "no-such-group-ftpd", "[server] group"),
    ("", "root", "[server] group"),
])
def test_unknown_user_or_group_is_a_config_error(tmp_path, user, group, key):
    conf = write_config(tmp_path / "c.conf", {"server": {
        "root": tmp_path, "user": user, "group": group}})
    result = run_ftpd("-c", str(conf), "check")
    assert result.returncode == 78 and key in result.stderr


def test_unwritable_library_is_reported(tmp_path):
    plan = confine.Plan(chroot=True, uid=54321, gid=54321, user="x", fsize=0)
    tmp_path.chmod(0o755)
    assert confine.library_warnings(plan, str(tmp_path))
    tmp_path.chmod(0o777)
    assert confine.library_warnings(plan, str(tmp_path)) == []


# -- as root, for real ------------------------------------------------------------

@pytest.fixture(scope="module")
def service_user():
    """A throwaway system user, removed afterwards (nobody where useradd is missing)."""
    if os.geteuid() != 0:
        pytest.skip("creating a user needs root")
    if shutil.which("useradd") is None:
        entry = pwd.getpwnam("nobody")
        yield SimpleNamespace(name="nobody", uid=entry.pw_uid, gid=entry.pw_gid)
        return
    name = f"ftpdt{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                    "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    try:
        yield SimpleNamespace(name=name, uid=entry.pw_uid, gid=entry.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def root_daemon(make_daemon, service_user, tmp_path):
    """A daemon started as root with supplementary groups of its own, serving as
    the throwaway user, with TLS and accounts (so all of it runs under chroot)."""
    def start(**server):
        pki = make_pki(tmp_path / "pki")
        users = make_users(tmp_path / "users", alice="write:pw")
        daemon = make_daemon({"server": {"user": service_user.name, **server},
                              "files": {"max_file_size": "10M"},
                              "access": {"anonymous": "read", "users_file": users,
                                         "login_failure_delay": 0},
                              "tls": {"certificate": pki.cert, "private_key": pki.key}},
                             start=False)
        daemon.root.mkdir()
        os.chown(daemon.root, service_user.uid, service_user.gid)
        groups = os.getgroups()
        os.setgroups(sorted(set(groups) | {0, 4}))    # inherited by the daemon
        try:
            daemon.start()
        finally:
            os.setgroups(groups)
        daemon.tls = pki.client_context()
        return daemon
    return start


@fork_only
@needs_root
def test_children_chroot_and_drop_to_the_user_with_no_groups(root_daemon, service_user):
    daemon = root_daemon()
    assert proc_status(daemon.pid)["Uid"][0] == "0"
    assert proc_status(daemon.pid)["Groups"]                # the parent has some
    with Client(daemon.host, daemon.port, ssl_context=daemon.tls) as c:
        [child] = wait_until(daemon.live_children, what="the session child")
        status = proc_status(child.pid)
        assert status["Uid"] == [str(service_user.uid)] * 4
        assert status["Gid"] == [str(service_user.gid)] * 4
        assert status["Groups"] == []
        assert status["NoNewPrivs"] == ["1"]
        assert status["CapEff"] == ["0000000000000000"]
        assert os.readlink(f"/proc/{child.pid}/root") == str(daemon.root)
        assert c.list() == []


@fork_only
@needs_root
def test_every_verb_works_confined_and_uploads_belong_to_the_user(root_daemon, service_user,
                                                                  tmp_path):
    daemon = root_daemon()
    data = os.urandom(300_000)
    (tmp_path / "up").write_bytes(data)
    with Client(daemon.host, daemon.port, ssl_context=daemon.tls) as c:
        with pytest.raises(ServerError) as info:
            c.put(str(tmp_path / "up"), "up")
        assert info.value.code == 401
        with pytest.raises(ServerError) as info:
            c.login("alice", "wrong")
        assert info.value.code == 401
        assert c.login("alice", "pw") == "alice"
        assert c.put(str(tmp_path / "up"), "up")[0] == len(data)
        assert [e.name for e in c.list()] == ["up"]
        assert c.get("up", str(tmp_path / "down")) == len(data)
        assert c.hash("up")[0] == len(data)
        for request, code in ((("G", "missing"), 404), (("P", "big", str(11 << 20)), 413),
                              (("G", "up", str(len(data) + 1)), 416), (("G", "%2E%2E"), 400)):
            with pytest.raises(ServerError) as info:
                c.request(*request)
            assert info.value.code == code
    assert (tmp_path / "down").read_bytes() == data
    info = (daemon.root / "up").stat()
    assert (info.st_uid, info.st_gid) == (service_user.uid, service_user.gid)
    assert "crashed" not in daemon.log() and "Traceback" not in daemon.log()


@fork_only
@needs_root
def test_chroot_can_be_turned_off_but_the_drop_stays(root_daemon, service_user):
    daemon = root_daemon(chroot="no")
    with Client(daemon.host, daemon.port, ssl_context=daemon.tls) as c:
        [child] = wait_until(daemon.live_children, what="the session child")
        assert os.readlink(f"/proc/{child.pid}/root") == "/"
        assert proc_status(child.pid)["Uid"][0] == str(service_user.uid)
        assert c.list() == []


@fork_only
@needs_root
def test_root_without_user_warns_and_goes_on(make_daemon):
    daemon = make_daemon()
    assert "running as root without [server] user" in daemon.log()
    with session_child(daemon) as pid:
        assert proc_status(pid)["Uid"][0] == "0"
        assert os.readlink(f"/proc/{pid}/root") == str(daemon.root)     # chroot still on
    with daemon.client() as c:
        assert c.list() == []
