"""Logging: the transfer log, [log] level, journald-friendly stderr (priority
prefixes when $JOURNAL_STREAM names fd 2), SIGUSR1."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys

from ftpd.client import Client, ConnectionLost
from tests.harness import (ftpd_argv, project_env, read_reply, wait_for_port, wait_until,
                           write_config)
from tests.servicekit import idle_session, wait_for_log

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def transfer_lines(path, count):
    wait_until(lambda: path.exists() and len(path.read_text().splitlines()) >= count,
               what=f"{count} transfer line(s)")
    return path.read_text().splitlines()


def test_transfer_log_has_one_line_per_finished_or_aborted_transfer(make_daemon, tmp_path):
    transfers = tmp_path / "transfer.log"
    daemon = make_daemon(settings={"log": {"transfer_log": transfers}})
    data = b"payload " * 5000
    local = tmp_path / "up.bin"
    local.write_bytes(data)
    with daemon.client() as client:
        client.put(str(local), "my file.bin")
        client.get("my file.bin", str(tmp_path / "down.bin"))
    (daemon.root / "big.bin").write_bytes(b"\0" * (8 << 20))
    sock = idle_session(daemon)
    sock.sendall(b"G big.bin\n")
    assert read_reply(sock) == b"OK 8388608\n"
    sock.close()                                          # abort mid-download

    put, get, aborted = transfer_lines(transfers, 3)
    digest = hashlib.sha256(data).hexdigest()
    fields = put.split(" ")
    assert re.fullmatch(STAMP, fields[0])
    assert re.fullmatch(r"127\.0\.0\.1:\d+", fields[1])
    assert fields[2:6] == ["anonymous", "P", "my%20file.bin", str(len(data))]
    assert re.fullmatch(r"\d+\.\d{3}", fields[6])
    assert fields[7:] == [digest, "ok"]
    assert get.split(" ")[2:6] == ["anonymous", "G", "my%20file.bin", str(len(data))]
    assert get.split(" ")[7:] == ["-", "ok"]
    verb, name, moved, _, _, result = aborted.split(" ", 8)[3:]
    assert (verb, name) == ("G", "big.bin")
    assert int(moved) < 8 << 20 and result.startswith("failed")
    assert "transfer 127.0.0.1" in daemon.log()           # the main log has them too


def test_log_level_filters_the_main_log_but_not_the_transfer_log(tmp_path):
    # The harness waits for INFO lines that this level hides: start by hand.
    # Its "listening on" line is INFO, hidden too: the port comes from the process.
    transfers, main = tmp_path / "transfer.log", tmp_path / "main.log"
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "f.txt").write_bytes(b"x")
    config = write_config(tmp_path / "ftpd.conf", {
        "server": {"listen": "127.0.0.1:0", "root": tmp_path / "library",
                   "max_clients": 1},
        "log": {"level": "warning", "file": main, "transfer_log": transfers}})
    proc = subprocess.Popen(ftpd_argv("-c", str(config)), env=project_env(),
                            stdin=subprocess.DEVNULL)
    try:
        port = wait_for_port(proc)
        client = wait_until(lambda: connect_or_none(port), what="the server to accept")
        with client:
            client.get("f.txt", str(tmp_path / "copy.txt"))
            with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
                assert read_reply(extra) == b"ERR 421 too many clients\n"   # a WARNING
        assert " G f.txt 1 " in transfer_lines(transfers, 1)[0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = main.read_text()
    assert "WARNING refused 127.0.0.1:" in text
    assert "session start" not in text and "transfer " not in text and "INFO" not in text


def connect_or_none(port):
    try:
        return Client("127.0.0.1", port, timeout=10)
    except ConnectionLost:
        return None


def journal_stream(path):
    """$JOURNAL_STREAM as systemd sets it for a stream whose other end is `path`."""
    status = os.stat(path)
    return f"{status.st_dev}:{status.st_ino}"


def test_stderr_lines_carry_priorities_and_no_timestamp_under_journald(make_daemon):
    journald = make_daemon(start=False, settings={"server": {"max_clients": 1}})
    journald.log_path.touch()                     # the daemon's stderr is this file
    journald.env = {"JOURNAL_STREAM": journal_stream(journald.log_path)}
    journald.start()
    elsewhere = make_daemon(start=False)           # started under systemd, stderr redirected
    elsewhere.log_path.touch()
    elsewhere.env = {"JOURNAL_STREAM": journal_stream(journald.log_path)}
    elsewhere.start()
    with journald.client() as client:
        client.list()
        with journald.connect() as extra:
            assert read_reply(extra) == b"ERR 421 too many clients\n"   # a WARNING
    text = wait_for_log(journald, "WARNING refused")
    assert re.search(r"^<6>ftpd\[\d+\] INFO listening on", text, re.MULTILINE)
    assert re.search(r"^<4>ftpd\[\d+\] WARNING refused 127\.0\.0\.1:", text, re.MULTILINE)
    assert all(re.match(r"<[0-7]>ftpd\[", line) for line in text.splitlines()), text
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ftpd\[\d+\] INFO listening on",
                     elsewhere.log(), re.MULTILINE)
    assert "<6>" not in elsewhere.log()


LOG_EVERY_LEVEL = """
import logging, sys
from ftpd import config
from ftpd.server import logs
logs.setup(config.load(sys.argv[1]))
log = logging.getLogger("ftpd.test")
log.debug("a debug line")
log.info("an info line")
log.warning("a warning line")
log.error("an error line")
try:
    raise OSError("disk gone")
except OSError:
    log.exception("with a traceback")
"""


def log_every_level(tmp_path, journal_stream_of_fd):
    """Run LOG_EVERY_LEVEL with stderr a pipe; JOURNAL_STREAM from that pipe's fd."""
    conf = write_config(tmp_path / "ftpd.conf", {"server": {"root": str(tmp_path)},
                                                  "log": {"level": "debug"}})
    read_end, write_end = os.pipe()
    env = project_env({"JOURNAL_STREAM": journal_stream_of_fd(write_end)})
    with os.fdopen(read_end, "rb") as reader:
        proc = subprocess.Popen([sys.executable, "-c", LOG_EVERY_LEVEL, str(conf)],
                                stderr=write_end, stdout=subprocess.DEVNULL, env=env)
        os.close(write_end)
        output = reader.read().decode()
    assert proc.wait(30) == 0, output
    return output.splitlines()


def test_a_pipe_that_is_the_journal_gets_a_priority_on_every_line(tmp_path):
    def same_pipe(fd):
        status = os.fstat(fd)
        return f"{status.st_dev}:{status.st_ino}"

    lines = log_every_level(tmp_path, same_pipe)
    assert [line.split(" ", 2)[1:] for line in lines[:4]] == [
        ["DEBUG", "a debug line"], ["INFO", "an info line"],
        ["WARNING", "a warning line"], ["ERROR", "an error line"]]
    assert [line[:3] for line in lines[:5]] == ["<7>", "<6>", "<4>", "<3>", "<3>"]
    assert lines[-1] == "<3>OSError: disk gone"   # the traceback's lines keep the priority
    assert all(line.startswith("<3>") for line in lines[4:])


def test_a_journal_stream_naming_another_file_changes_nothing(tmp_path):
    other = tmp_path / "other"
    other.touch()
    for value in (lambda fd: journal_stream(other), lambda fd: "not:numbers",
                  lambda fd: ""):
        lines = log_every_level(tmp_path, value)
        assert not any(line.startswith("<") for line in lines), lines
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ftpd\[\d+\] DEBUG a debug line",
                        lines[0]), lines


def test_usr1_reopens_the_transfer_log(make_daemon, tmp_path):
    transfers = tmp_path / "transfer.log"
    daemon = make_daemon(settings={"log": {"transfer_log": transfers}})
    (daemon.root / "a.txt").write_bytes(b"a")
    with daemon.client() as client:
        client.get("a.txt", str(tmp_path / "a1"))
    transfer_lines(transfers, 1)
    transfers.rename(tmp_path / "transfer.log.1")
    daemon.send_signal(signal.SIGUSR1)
    wait_until(transfers.exists, what="a new transfer log")
    with daemon.client() as client:
        client.get("a.txt", str(tmp_path / "a2"))
    assert len(transfer_lines(transfers, 1)) == 1
    assert len((tmp_path / "transfer.log.1").read_text().splitlines()) == 1


def test_log_records_skip_the_fields_no_format_prints(tmp_path):
    # Every forked session logs a few lines: finding the caller's file and
    # line walks frames (and copies shared pages) for a field never shown.
    conf = write_config(tmp_path / "ftpd.conf", {"server": {"root": str(tmp_path)}})
    code = f"""
import logging
from ftpd import config
from ftpd.server import logs
logs.setup(config.load({str(conf)!r}))
seen = []
handler = logging.Handler()
handler.emit = seen.append
logging.getLogger().addHandler(handler)
logging.getLogger("ftpd.session").info("session start %s", "x")
record = seen[0]
print(record.lineno, record.threadName, record.processName, record.process > 0)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=project_env(), timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "None", "None", "True"]   # the pid is printed
