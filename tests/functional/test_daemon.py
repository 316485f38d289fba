"""`ftpd serve --daemon` and the pidfile, with real detached processes."""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import psutil
import pytest

from ftpd.client import Client
from tests.harness import listening_ports, project_env, run_ftpd, wait_until, write_config


@pytest.fixture
def site(tmp_path):
    """A config for a daemon on port 0, and cleanup of every server it starts
    (whatever pid the pidfile named, if that process came after the test began)."""
    paths = {"conf": tmp_path / "ftpd.conf", "pid": tmp_path / "run" / "ftpd.pid",
             "log": tmp_path / "ftpd.log", "root": tmp_path / "library"}
    (tmp_path / "run").mkdir()
    paths["root"].mkdir()
    write_config(paths["conf"], site_settings(paths, "127.0.0.1:0"))
    began, seen = time.time(), set()
    paths["seen"] = seen
    yield paths
    if paths["pid"].exists():
        seen.add(read_pid(paths["pid"]))
    for pid in seen:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() >= began - 1:
                proc.kill()
        except psutil.NoSuchProcess:
            pass


def site_settings(paths, listen):
    return {"server": {"listen": listen, "root": paths["root"], "pidfile": paths["pid"]},
            "log": {"file": paths["log"]}}


def serve_daemon(site, conf=None):
    """`ftpd -c CONF serve --daemon`; remembers the pid it leaves for cleanup."""
    result = run_ftpd("-c", str(conf or site["conf"]), "serve", "--daemon")
    if result.returncode == 0:
        site["seen"].add(read_pid(site["pid"]))
    return result


def read_pid(path):
    return int(path.read_text())


def test_daemon_detaches_writes_pidfile_serves_and_cleans_up(site):
    result = serve_daemon(site)
    assert result.returncode == 0, result.stderr
    pid = read_pid(site["pid"])                 # written before the launcher returned
    assert stat.S_IMODE(site["pid"].stat().st_mode) == 0o644
    proc = psutil.Process(pid)
    assert proc.ppid() != os.getpid()           # not our child: detached
    assert os.getsid(pid) != os.getsid(0)       # a session of its own...
    assert os.getsid(pid) != pid                # ...that it does not lead (second fork)
    assert proc.terminal() is None
    assert proc.cwd() == os.getcwd()
    status = open(f"/proc/{pid}/status").read()
    assert "Umask:\t0027" in status
    port = wait_until(lambda: listening_ports(pid), what="the daemon to listen")[0]
    with Client("127.0.0.1", port, timeout=10) as client:
        assert client.list() == []
    assert "ftpd serving" in site["log"].read_text()

    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not psutil.pid_exists(pid), what="the daemon to exit")
    assert not site["pid"].exists()
    assert "ftpd stopped" in site["log"].read_text()


def test_daemon_refuses_a_live_pidfile_and_replaces_a_stale_one(site):
    assert serve_daemon(site).returncode == 0
    live = read_pid(site["pid"])
    again = serve_daemon(site)
    assert again.returncode == 69
    assert f"already running as pid {live}" in again.stderr
    assert read_pid(site["pid"]) == live
    os.kill(live, signal.SIGTERM)
    wait_until(lambda: not psutil.pid_exists(live), what="the daemon to exit")

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    site["pid"].write_text(f"{dead.pid}\n")     # a crash left this behind
    assert serve_daemon(site).returncode == 0
    fresh = read_pid(site["pid"])
    assert fresh != dead.pid and psutil.pid_exists(fresh)
    assert "replacing stale pidfile" in site["log"].read_text()
    os.kill(fresh, signal.SIGTERM)
    wait_until(lambda: not site["pid"].exists(), what="the pidfile to go")


def test_config_and_bind_errors_reach_the_terminal_before_detaching(site, tmp_path):
    broken = tmp_path / "broken.conf"
    broken.write_text(site["conf"].read_text() + "\n[files]\nmax_file_size = huge\n")
    result = serve_daemon(site, broken)
    assert result.returncode == 78
    assert f"{broken}: [files] max_file_size" in result.stderr

    with socket.create_server(("127.0.0.1", 0)) as squatter:
        taken = squatter.getsockname()[1]
        write_config(site["conf"], site_settings(site, f"127.0.0.1:{taken}"))
        result = serve_daemon(site)
    assert result.returncode == 69
    assert f"cannot listen on 127.0.0.1:{taken}" in result.stderr
    assert not site["pid"].exists()


def test_errors_after_detaching_are_relayed_to_the_launcher(site, tmp_path):
    # The pre-flight catches what it can before detaching; a directory where
    # the pidfile goes only shows when the detached server claims it.
    (site["pid"] / "in-the-way").mkdir(parents=True)
    result = serve_daemon(site)
    assert result.returncode == 1
    assert f"cannot write pidfile {site['pid']}: Is a directory" in result.stderr
    shutil.rmtree(site["pid"])


def test_foreground_server_keeps_a_pidfile_too(make_daemon, tmp_path):
    pidfile = tmp_path / "fg.pid"
    daemon = make_daemon(settings={"server": {"pidfile": pidfile}})
    assert read_pid(pidfile) == daemon.pid
    assert daemon.stop() == 0
    assert not pidfile.exists()


@pytest.mark.skipif(os.path.exists("/dev/log"), reason="a syslog socket exists here")
def test_daemon_without_log_file_or_syslog_is_a_config_error(site, tmp_path):
    conf = tmp_path / "nolog.conf"
    conf.write_text(site["conf"].read_text().replace(f"file = {site['log']}", ""))
    result = serve_daemon(site, conf)
    assert result.returncode == 78
    assert f"{conf}: [log] file: --daemon needs a log file" in result.stderr


def test_the_serving_parent_loads_nothing_only_other_commands_need():
    # Every fork copies the parent's page tables: psutil (ftpd status, the
    # pidfile check), python-daemon (--daemon) and multiprocessing (the
    # PROXY peer table) are imported where they are used.
    code = ("import sys; from ftpd import cli; from ftpd.server import parent, service; "
            "print(sorted(m for m in ('psutil', 'daemon', 'multiprocessing') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=project_env(), timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
