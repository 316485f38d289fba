"""The sandbox layers beyond chroot and the privilege drop: the seccomp
filter of each forked session, seen from outside (a debug hook makes a
session try a forbidden call) and through /proc."""

import json
import signal

import pytest

from ftpd.server import landlock, syscalls
from tests.harness import fork_only, run_ftpd, wait_until
from tests.servicekit import idle_session

SIGSYS = int(signal.SIGSYS)


def seccomp_field(pid: int) -> str:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Seccomp:"):
                return line.split()[1]
    return "?"


@fork_only
@pytest.mark.parametrize("act", ["execve", "socket", "connect"])
def test_a_session_that_tries_a_forbidden_call_dies_with_sigsys(make_daemon, act):
    daemon = make_daemon(env={"FTPD_TEST_HOOKS": act})
    with daemon.connect() as sock:
        sock.settimeout(10)
        assert sock.recv(64) == b""                  # killed before its greeting
    wait_until(lambda: f"ended with signal {SIGSYS} (a system call off the seccomp list)"
               in daemon.log(),
               what="the parent to log the SIGSYS")
    assert "sessions: " in daemon.log() and "seccomp yes" in daemon.log()
    wait_until(lambda: not daemon.children(), what="the killed session reaped")
    assert not daemon.zombies()


@fork_only
def test_without_the_filter_the_same_call_goes_through(make_daemon):
    daemon = make_daemon({"server": {"seccomp": "no"}}, env={"FTPD_TEST_HOOKS": "socket"})
    with daemon.client() as client:
        assert client.list() == []
    assert f"signal {SIGSYS}" not in daemon.log()


@fork_only
@pytest.mark.parametrize("mode, field", [("yes", "2"), ("log", "2"), ("no", "0")])
def test_a_live_session_runs_filtered_as_configured(make_daemon, mode, field):
    daemon = make_daemon({"server": {"seccomp": mode}})
    with daemon.client() as client:
        client.list()
        wait_until(lambda: len(daemon.live_children()) == 1, what="the session")
        assert seccomp_field(daemon.live_children()[0].pid) == field
    assert seccomp_field(daemon.pid) == "0"          # never the parent


@fork_only
def test_log_mode_lets_a_forbidden_call_through(make_daemon):
    daemon = make_daemon({"server": {"seccomp": "log"}}, env={"FTPD_TEST_HOOKS": "socket"})
    with daemon.client() as client:
        assert client.list() == []
    assert f"signal {SIGSYS}" not in daemon.log()


@fork_only
@pytest.mark.parametrize("mode", ["yes", "log", "no"])
def test_status_shows_the_mode_and_the_filtered_sessions(make_daemon, mode, tmp_path):
    daemon = make_daemon({"server": {"seccomp": mode, "pidfile": tmp_path / "ftpd.pid"}})
    idle = idle_session(daemon)
    wait_until(lambda: len(daemon.live_children()) == 1, what="the session")
    result = run_ftpd("-c", str(daemon.config_path), "status")
    assert result.returncode == 0, result.stderr
    filtered = 0 if mode == "no" else 1
    assert f"seccomp {mode}: {filtered} of 1 session(s) filtered" in result.stdout
    report = json.loads(run_ftpd("-c", str(daemon.config_path), "status", "--json").stdout)
    assert (report["seccomp"], report["filtered"]) == (mode, filtered)
    idle.close()


def test_thread_mode_says_it_cannot_filter(make_daemon):
    daemon = make_daemon({"server": {"concurrency": "thread"}})
    assert "[server] seccomp = yes has no effect" in daemon.log()


def test_the_table_forbids_what_the_issue_names():
    forbidden = {"execve", "execveat", "socket", "connect", "bind", "listen", "accept4",
                 "ptrace", "mount", "chroot", "setuid", "setresuid", "setgroups", "bpf"}
    assert not forbidden & set(syscalls.ALLOWED)
    assert not forbidden & set(syscalls.REFUSED)
    assert len(set(syscalls.ALLOWED)) == len(syscalls.ALLOWED)


# -- Landlock -------------------------------------------------------------------------------

LANDLOCK = landlock.abi()
needs_landlock = pytest.mark.skipif(not LANDLOCK, reason="the kernel offers no Landlock")


def test_the_log_says_whether_landlock_is_active(make_daemon):
    daemon = make_daemon()
    expected = "landlock active" if LANDLOCK else "landlock not offered by this kernel"
    assert expected in daemon.log()


@fork_only
@needs_landlock
def test_an_open_outside_the_library_fails_with_eacces(make_daemon, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    # No chroot, so the path exists for the session: only Landlock stands in the way.
    daemon = make_daemon({"server": {"chroot": "no"}}, env={"FTPD_TEST_HOOKS": f"open:{outside}"})
    with daemon.client() as client:
        assert client.list() == []                  # the session goes on serving
    wait_until(lambda: f"test hook: open {outside}: EACCES" in daemon.log(),
               what="the hook's refused open")


@fork_only
@needs_landlock
def test_an_open_inside_the_library_is_allowed(make_daemon):
    daemon = make_daemon({"server": {"chroot": "no"}}, start=False)
    daemon.root.mkdir()
    inside = daemon.root / "inside.txt"
    inside.write_text("x")
    daemon.env = {"FTPD_TEST_HOOKS": f"open:{inside}"}
    daemon.start()
    with daemon.client() as client:
        assert [entry.name for entry in client.list()] == ["inside.txt"]
    wait_until(lambda: f"test hook: open {inside}: allowed" in daemon.log(),
               what="the hook's open")

