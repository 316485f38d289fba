"""Real signals to the real daemon: TERM drains, INT kills, HUP reloads, USR1 reopens."""

import hashlib
import os
import re
import signal
import socket
import time

import psutil


from tests.harness import (fork_only, read_reply, recv_all, recv_counted, wait_until,
                           write_config)
from tests.servicekit import big_file, idle_session, refused, slow_download, wait_for_log


@fork_only
def test_term_lets_a_transfer_finish_and_tells_idle_sessions_421(make_daemon):
    daemon = make_daemon(settings={"server": {"shutdown_timeout": 60}})
    digest = big_file(daemon.root / "big.bin", 32)
    slow, count = slow_download(daemon, "big.bin", first=0)
    idle = idle_session(daemon)
    child_pids = {child.pid for child in daemon.live_children()}
    assert len(child_pids) == 2

    daemon.send_signal(signal.SIGTERM)
    assert read_reply(idle) == b"ERR 421 server shutting down\n"
    assert recv_all(idle) == b""                        # then closed
    wait_until(lambda: refused(daemon.host, daemon.port), what="listeners closed")
    assert daemon.proc.poll() is None                   # still draining the download

    received = hashlib.sha256()
    assert recv_counted(slow, count, received) == count
    assert received.hexdigest() == digest
    assert read_reply(slow) == b"ERR 421 server shutting down\n"
    assert daemon.proc.wait(20) == 0
    assert not [pid for pid in child_pids if psutil.pid_exists(pid)]
    assert "transfer 127.0.0.1" in daemon.log() and "result=ok" in daemon.log()
    slow.close()
    idle.close()


def test_term_kills_what_outlives_shutdown_timeout_and_keeps_nothing(make_daemon):
    daemon = make_daemon(settings={"server": {"shutdown_timeout": 1}})
    big_file(daemon.root / "big.bin", 32)
    stuck, _ = slow_download(daemon, "big.bin")          # never read again
    upload = idle_session(daemon)
    upload.sendall(b"P half.bin 10485760\n")
    assert read_reply(upload) == b"OK ready\n"
    upload.sendall(b"x" * (1 << 20))                     # a tenth, then silence
    children = daemon.live_children()

    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(20) == 0
    assert time.monotonic() - started < 10
    assert "shutdown timeout: killing 2 session(s)" in daemon.log()
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert sorted(p.name for p in daemon.root.iterdir()) == ["big.bin"]   # no temp, no half file
    stuck.close()
    upload.close()


@fork_only
def test_int_kills_sessions_at_once(make_daemon):
    daemon = make_daemon(settings={"server": {"shutdown_timeout": 60}})
    big_file(daemon.root / "big.bin", 32)
    busy, _ = slow_download(daemon, "big.bin")
    idle = idle_session(daemon)
    children = daemon.live_children()
    assert len(children) == 2

    started = time.monotonic()
    daemon.send_signal(signal.SIGINT)
    daemon.proc.wait(15)
    assert time.monotonic() - started < 10               # far below shutdown_timeout
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive
    assert "quick shutdown: killing 2 session(s)" in daemon.log()
    assert idle.recv(100) == b""                          # no 421 courtesy: just gone
    busy.close()
    idle.close()


def test_hup_applies_a_new_client_limit_to_new_sessions(make_daemon):
    daemon = make_daemon(settings={"server": {"max_clients": 10}})
    first, second = idle_session(daemon), idle_session(daemon)
    with idle_session(daemon):                            # a third fits today
        pass
    daemon.settings["server"]["max_clients"] = 2
    daemon.write_config()
    daemon.send_signal(signal.SIGHUP)
    wait_for_log(daemon, "configuration reloaded")

    with daemon.connect() as third:
        assert read_reply(third) == b"ERR 421 too many clients\n"
    first.sendall(b"L\n")
    assert read_reply(first) == b"OK 0\n"                 # old sessions go on
    first.close()
    second.close()
    wait_until(daemon.serves_a_client, what="a slot once the old sessions end")


def test_hup_with_a_broken_file_keeps_the_running_config(make_daemon):
    daemon = make_daemon(settings={"server": {"max_clients": 1}})
    daemon.config_path.write_text("[server]\nlisten = 127.0.0.1:0\nmax_clients = lots\n")
    daemon.send_signal(signal.SIGHUP)
    log = wait_for_log(daemon, "reload refused")
    assert f"{daemon.config_path}: [server] max_clients" in log
    with idle_session(daemon):                            # still max_clients = 1
        with daemon.connect() as extra:
            assert read_reply(extra) == b"ERR 421 too many clients\n"

    daemon.config_path.write_text("[server]\nlisten = 127.0.0.1:0\nbogus = 1\n")
    daemon.send_signal(signal.SIGHUP)
    log = wait_for_log(daemon, "reload refused", count=2)
    assert "[server] bogus: unknown key" in log
    assert daemon.proc.poll() is None
    wait_until(lambda: not daemon.children(), what="the first session to be reaped")
    with daemon.client() as client:
        assert client.list() == []


def test_hup_rebinds_a_changed_listen_address(make_daemon):
    daemon = make_daemon()
    old_port = daemon.port
    keeper = idle_session(daemon)
    daemon.settings["server"]["listen"] = "127.0.0.2:0"
    daemon.write_config()
    daemon.send_signal(signal.SIGHUP)
    wait_for_log(daemon, "listening on 127.0.0.2:")
    new_port = int(re.search(r"listening on 127\.0\.0\.2:(\d+)", daemon.log())[1])
    assert "stopped listening on 127.0.0.1:0" in daemon.log()

    assert refused("127.0.0.1", old_port)
    with socket.create_connection(("127.0.0.2", new_port), timeout=10) as sock:
        assert read_reply(sock).startswith(b"OK FTPD/1")
    keeper.sendall(b"L\n")                                # accepted before: unaffected
    assert read_reply(keeper) == b"OK 0\n"
    keeper.close()


def test_hup_with_an_address_that_cannot_be_bound_keeps_the_old_one(make_daemon):
    daemon = make_daemon()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        write_config(daemon.config_path, {"server": {"listen": f"127.0.0.1:{taken}",
                                                     "root": daemon.root}})
        daemon.send_signal(signal.SIGHUP)
        log = wait_for_log(daemon, "reload refused")
    assert f"cannot listen on 127.0.0.1:{taken}" in log
    with daemon.client() as client:
        assert client.list() == []


def test_usr1_reopens_the_log_file_for_logrotate(make_daemon):
    daemon = make_daemon(start=False)
    log_file = daemon.log_path           # the harness reads the server's own log file
    daemon.settings["log"] = {"file": log_file}
    daemon.start()
    rotated = log_file.with_name("ftpd.log.1")
    log_file.rename(rotated)
    daemon.send_signal(signal.SIGUSR1)
    wait_until(lambda: log_file.exists() and "log files reopened" in log_file.read_text(),
               what="a fresh log file")
    with daemon.client() as client:
        client.list()
    wait_until(lambda: "session end" in log_file.read_text(), what="new lines in the new file")
    assert "session end" not in rotated.read_text()
    assert "ftpd serving" in rotated.read_text()
    assert daemon.stop() == 0


def inherited_kinds(pid: int) -> set:
    """The sockets, pipes and epoll instances a process holds above stdio."""
    links = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if int(fd) > 2:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:
                continue
            if target.startswith(("socket:", "pipe:", "anon_inode:")):
                links.add(target)
    return links


@fork_only
def test_a_session_holds_none_of_the_parents_fds_even_after_a_rebind(make_daemon):
    daemon = make_daemon()
    address = (daemon.host, daemon.port)
    for step in ("before", "after"):
        if step == "after":
            daemon.settings["server"]["listen"] = "127.0.0.2:0"
            daemon.write_config()
            daemon.send_signal(signal.SIGHUP)
            wait_for_log(daemon, "listening on 127.0.0.2:")
            address = ("127.0.0.2",
                       int(re.search(r"listening on 127\.0\.0\.2:(\d+)", daemon.log())[1]))
        with socket.create_connection(address, timeout=10) as session:
            assert read_reply(session).startswith(b"OK FTPD/1")
            wait_until(lambda: len(daemon.live_children()) == 1, what="the session")
            parent = inherited_kinds(daemon.pid)
            assert any(link.startswith("socket:") for link in parent)     # its listener
            assert not parent & inherited_kinds(daemon.live_children()[0].pid), step
        wait_until(lambda: not daemon.live_children(), what="the session to end")
