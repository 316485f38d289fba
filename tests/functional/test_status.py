"""`ftpd status` against a live server with sessions mid-transfer."""

import json
import re
import time

import psutil
import pytest

from tests.harness import fork_only, run_ftpd, wait_until
from tests.servicekit import big_file, idle_session, slow_download


def status(daemon, *extra):
    result = run_ftpd("-c", str(daemon.config_path), *extra, "status")
    assert result.returncode == 0, result.stderr
    return result.stdout


def row_for(output, pid):
    for line in output.splitlines():
        if line.split()[:1] == [str(pid)]:
            return line.split()
    raise AssertionError(f"no row for pid {pid} in:\n{output}")


@fork_only
def test_status_lists_the_server_and_each_session(make_daemon, tmp_path):
    daemon = make_daemon(settings={"server": {"pidfile": tmp_path / "ftpd.pid"}})
    big_file(daemon.root / "backup.tar", 32)
    slow, count = slow_download(daemon, "backup.tar")
    idle = idle_session(daemon)
    by_port = {}
    for child in daemon.live_children():
        connections = getattr(child, "net_connections", child.connections)   # psutil < 6
        peer = [c.raddr for c in connections("tcp")][0]
        by_port[peer[1]] = child.pid
    downloader, idler = by_port[slow.getsockname()[1]], by_port[idle.getsockname()[1]]
    wait_until(lambda: "%" in " ".join(psutil.Process(downloader).cmdline()),
               what="the download's progress in its title")
    time.sleep(1.1)                                     # let the ages reach 1 s

    output = status(daemon)
    head = output.splitlines()[0]
    assert head.startswith(f"ftpd running: pid {daemon.pid}, listening on {daemon.addresses[0]}")
    assert "2 session(s)" in head
    pid, client, user, home, verb, name, percent, moved, age = row_for(output, downloader)
    assert (client, user, home, verb, name) == (f"127.0.0.1:{slow.getsockname()[1]}",
                                               "anonymous", "/", "G", "backup.tar")
    assert re.fullmatch(r"\d+%", percent) and int(percent[:-1]) < 100
    assert 0 < int(moved) < count
    assert re.fullmatch(r"[1-9]\d*s", age)
    assert row_for(output, idler)[1:6] == [f"127.0.0.1:{idle.getsockname()[1]}",
                                          "anonymous", "/", "idle", "0"]

    result = run_ftpd("-c", str(daemon.config_path), "status", "--json")
    report = json.loads(result.stdout)
    assert report["pid"] == daemon.pid
    sessions = {s["pid"]: s for s in report["sessions"]}
    assert sessions[downloader]["state"].startswith("G backup.tar ")
    assert sessions[idler]["state"] == "idle"
    assert sessions[idler]["home"] == "/"
    slow.close()
    idle.close()


def test_status_finds_the_server_by_its_listen_address(make_daemon):
    daemon = make_daemon()                              # no pidfile
    output = status(daemon, "--listen", daemon.addresses[0])
    assert output.startswith(f"ftpd running: pid {daemon.pid}, ")
    assert "0 session(s)" in output


def test_status_says_not_running_with_exit_3(tmp_path):
    conf = tmp_path / "ftpd.conf"
    conf.write_text(f"[server]\npidfile = {tmp_path / 'none.pid'}\nlisten = 127.0.0.1:0\n")
    result = run_ftpd("-c", str(conf), "status")
    assert result.returncode == 3
    assert "ftpd is not running" in result.stderr


@pytest.mark.parametrize("user, home, state, moved", [
    ("anonymous", "", "idle", 0),
    ("alice", "users/alice", "G backup.tar 41%", 1048576),
    ("bob smith", "drop box/in:coming", "P a b: c (3 bytes)", 7),
    ("café", "photos/été", "listing", 12),
])
def test_a_session_title_reads_back_as_written(user, home, state, moved):
    from ftpd.server import titles
    parsed = titles.parse_session(titles.session("10.0.0.7:51234", user, home, state, moved))
    assert parsed == titles.SessionTitle("10.0.0.7:51234", user, "/" + home, state, moved)


def test_master_and_starting_titles_read_back():
    from ftpd.server import titles
    assert titles.parse_master(titles.master("127.0.0.1:8021,[::1]:8021")) == \
        "127.0.0.1:8021,[::1]:8021"
    assert titles.parse_session(titles.master("127.0.0.1:8021")) is None
    starting = titles.parse_session(titles.starting("[::1]:4000"))
    assert starting is not None and (starting.user, starting.home, starting.state) == \
        ("-", "-", "starting")
