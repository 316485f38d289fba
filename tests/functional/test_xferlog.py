"""[log] transfer_format = xferlog: the wu-ftpd/vsftpd xferlog(5) line, read
field by field the way xferstats reads it (split on white space, 18 words:
a 5-word date and 13 fields). Against the real daemon in both models."""

import logging
import re
import time

from ftpd.server import logs
from tests.functional.test_homes import users_file
from tests.functional.test_logs import transfer_lines
from tests.harness import read_reply
from tests.servicekit import idle_session

FIELDS = ("transfer_time", "remote_host", "file_size", "filename", "transfer_type",
          "special_action_flag", "direction", "access_mode", "username", "service_name",
          "authentication_method", "authenticated_user_id", "completion_status")
CTIME = re.compile(r"\A(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep"
                   r"|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4} ")


def parse_xferlog(line):
    """One line as xferstats splits it: exactly 5 date words and 13 fields."""
    words = line.split()
    assert len(words) == 18, line
    assert CTIME.match(line), line
    when = time.mktime(time.strptime(" ".join(words[:5]), "%a %b %d %H:%M:%S %Y"))
    return dict(zip(FIELDS, words[5:], strict=True), when=when)


def test_xferlog_lines_carry_every_field_and_leave_out_m_d_r(make_daemon, tmp_path):
    transfers = tmp_path / "xferlog"
    users = users_file(tmp_path / "users", alice="write:pw-a:users/alice")
    daemon = make_daemon(settings={
        "log": {"transfer_log": transfers, "transfer_format": "xferlog"},
        "access": {"anonymous": "write", "users_file": users, "login_failure_delay": 0}})
    data = b"payload " * 5000
    local = tmp_path / "up.bin"
    local.write_bytes(data)
    odd = "my file\u00a0two.bin"               # a space, and a no-break space
    started = time.time()
    with daemon.client() as client:
        client.put(str(local), odd)
        client.get(odd, str(tmp_path / "down.bin"))
        client.mkdir("dir")                     # M, R, D: not in an xferlog file
        client.rename(odd, "dir/moved.bin")
        client.delete("dir/moved.bin")
    with daemon.client() as client:
        client.login("alice", "pw-a")
        client.put(str(local), "mine.bin", resume=True)      # C: an upload too
    (daemon.root / "big.bin").write_bytes(b"\0" * (8 << 20))
    sock = idle_session(daemon)
    sock.sendall(b"G big.bin\n")
    assert read_reply(sock) == b"OK 8388608\n"
    sock.close()                                # abort mid-download: incomplete

    put, get, resumed, aborted = [parse_xferlog(line) for line in transfer_lines(transfers, 4)]
    common = dict(remote_host="127.0.0.1", transfer_type="b", special_action_flag="_",
                  service_name="ftp", authentication_method="0",
                  authenticated_user_id="*")
    for entry in (put, get, resumed, aborted):
        assert {key: entry[key] for key in common} == common
        assert int(entry["transfer_time"]) >= 1              # whole seconds, at least 1
        assert started - 2 <= entry["when"] <= time.time() + 1
    anonymous = dict(access_mode="a", username="anonymous")
    assert put == dict(put, filename="/my_file?two.bin", file_size=str(len(data)),
                       direction="i", completion_status="c", **anonymous)
    assert get == dict(get, filename="/my_file?two.bin", file_size=str(len(data)),
                       direction="o", completion_status="c", **anonymous)
    assert resumed == dict(resumed, filename="/users/alice/mine.bin",
                           file_size=str(len(data)), direction="i", access_mode="r",
                           username="alice", completion_status="c")
    assert aborted == dict(aborted, filename="/big.bin", direction="o",
                           completion_status="i", **anonymous)
    assert int(aborted["file_size"]) < 8 << 20
    assert len(transfers.read_text().splitlines()) == 4      # no M, R, D lines came late


def test_the_default_format_is_still_ftpd_and_logs_m_d_r(make_daemon, tmp_path):
    transfers = tmp_path / "transfer.log"
    daemon = make_daemon(settings={"log": {"transfer_log": transfers}})
    with daemon.client() as client:
        client.mkdir("dir")
    [line] = transfer_lines(transfers, 1)
    assert line.split(" ")[3:5] == ["M", "dir"] and line.endswith(" ok")


def record_for(**transfer):
    record = logging.LogRecord("ftpd.transfer", logging.INFO, "", 0, "", (), None)
    record.transfer = transfer
    record.created = time.mktime((2026, 12, 3, 8, 39, 6, 0, 0, -1))
    return record


def test_xferlog_fields_for_ipv6_peers_short_transfers_and_failures():
    line = logs.XferlogFormatter().format(record_for(
        client="[::1]:40000", user="bob", verb="C", name="a b/c.txt", bytes=10,
        seconds=0.2, sha256=None, result="failed: stalled, kept 10 bytes"))
    assert line == "Thu Dec  3 08:39:06 2026 1 ::1 10 /a_b/c.txt b _ i r bob ftp 0 * i"
    long = logs.XferlogFormatter().format(record_for(
        client="127.0.0.1:1", user="anonymous", verb="G", name="x", bytes=0,
        seconds=2.6, sha256=None, result="ok"))
    assert parse_xferlog(long)["transfer_time"] == "3"
