"""ftpc one-shot commands against the real daemon: output, exit codes, trust."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from ftpd.ftpc.transfer import part_path
from ftpd.ftpc.upload import upload
from tests.harness import closed_port, wait_until
from tests.ftpc_util import Relay, ftpc_command, ftpc_env, make_file, run_ftpc


# -- list and hash -----------------------------------------------------------------------

def test_list_is_a_sorted_table_with_local_times_and_a_total(daemon, home):
    for name, size in (("zeta.bin", 3 * 1024 * 1024), ("my file.txt", 12), ("alpha", 0)):
        make_file(daemon.root / name, size)
    result = run_ftpc(daemon.address, "list", home=home)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].split() == ["SIZE", "MODIFIED", "NAME"]
    assert [line.split("  ")[-1] for line in lines[1:4]] == ["alpha", "my file.txt", "zeta.bin"]
    stamp = time.strftime("%Y-%m-%d %H:%M",
                          time.localtime(os.stat(daemon.root / "zeta.bin").st_mtime))
    assert lines[3].split() == ["3.0", "MiB", *stamp.split(), "zeta.bin"]
    assert lines[2].split()[:2] == ["12", "B"]
    assert lines[4] == "3 files, 3.0 MiB total"


def test_list_json_matches_the_library(daemon, home):
    make_file(daemon.root / "b b.bin", 1000)
    make_file(daemon.root / "a.bin", 5)
    result = run_ftpc(daemon.address, "list", "--json", home=home)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    expected = [{"name": n, "size": os.stat(daemon.root / n).st_size,
                 "mtime": int(os.stat(daemon.root / n).st_mtime), "type": "file"}
                for n in ("a.bin", "b b.bin")]
    assert listed == expected


def test_hash_prints_sha256sum_format_and_json(daemon, home):
    data = make_file(daemon.root / "data.bin", 4096)
    digest = hashlib.sha256(data).hexdigest()
    plain = run_ftpc(daemon.address, "hash", "data.bin", home=home)
    assert plain.stdout.decode() == f"{digest}  data.bin\n"
    as_json = run_ftpc(daemon.address, "hash", "data.bin", "--json", home=home)
    assert json.loads(as_json.stdout) == {"name": "data.bin", "size": 4096, "sha256": digest}


# -- exit codes ----------------------------------------------------------------------------

def test_missing_file_exits_1_with_the_code_and_leaves_nothing(daemon, home):
    result = run_ftpc(daemon.address, "get", "nope.txt", home=home)
    assert result.returncode == 1
    assert b"404" in result.stderr and b"no such file" in result.stderr
    assert sorted(os.listdir(home)) == []


def test_anonymous_refused_exits_1_with_401(make_daemon, home):
    daemon = make_daemon({"access": {"anonymous": "none"}})
    result = run_ftpc(daemon.address, "list", home=home)
    assert result.returncode == 1
    assert b"(code 401)" in result.stderr


@pytest.mark.parametrize("args", [[], ["127.0.0.1:notaport", "list"], ["HOST", "get"],
                                  ["HOST", "frobnicate"], ["HOST", "get", "x", "--bogus"]])
def test_usage_errors_exit_2(daemon, home, args):
    args = [daemon.address if a == "HOST" else a for a in args]
    result = run_ftpc(*args, home=home)
    assert result.returncode == 2
    assert b"usage" in result.stderr.lower() or b"port" in result.stderr.lower()


def test_cannot_connect_exits_3(home):
    with closed_port() as port:
        result = run_ftpc(f"127.0.0.1:{port}", "list", home=home)
    assert result.returncode == 3
    assert b"cannot connect" in result.stderr


def test_silent_server_times_out_with_exit_3(home):
    with socket.create_server(("127.0.0.1", 0)) as mute:   # accepts, never greets
        started = time.monotonic()
        result = run_ftpc(f"127.0.0.1:{mute.getsockname()[1]}", "--timeout", "1", "list",
                          home=home)
        took = time.monotonic() - started
    assert result.returncode == 3
    assert took < 20


# -- downloads -----------------------------------------------------------------------------

def test_get_verifies_and_never_clobbers_without_force(daemon, home):
    data = make_file(daemon.root / "report.pdf", 200_000)
    first = run_ftpc(daemon.address, "get", "report.pdf", home=home)
    assert first.returncode == 0, first.stderr
    assert (home / "report.pdf").read_bytes() == data
    assert b"verified" in first.stdout
    (home / "report.pdf").write_bytes(b"my own edits")
    again = run_ftpc(daemon.address, "get", "report.pdf", home=home)
    assert again.returncode == 2
    assert b"--force" in again.stderr
    assert (home / "report.pdf").read_bytes() == b"my own edits"
    forced = run_ftpc(daemon.address, "get", "report.pdf", "--force", home=home)
    assert forced.returncode == 0, forced.stderr
    assert (home / "report.pdf").read_bytes() == data
    assert sorted(os.listdir(home)) == ["report.pdf"]      # no partial left behind


def test_get_to_directory_and_to_stdout(daemon, home):
    data = make_file(daemon.root / "a b.txt", 5000)
    (home / "dl").mkdir()
    into_dir = run_ftpc(daemon.address, "get", "a b.txt", "-o", "dl", home=home)
    assert into_dir.returncode == 0, into_dir.stderr
    assert (home / "dl" / "a b.txt").read_bytes() == data
    to_stdout = run_ftpc(daemon.address, "get", "a b.txt", "-o", "-", home=home)
    assert to_stdout.returncode == 0
    assert to_stdout.stdout == data


def test_no_progress_bar_when_stdout_is_not_a_tty(daemon, home):
    make_file(daemon.root / "big.bin", 2 << 20)
    result = run_ftpc(daemon.address, "get", "big.bin", home=home)
    assert result.returncode == 0
    assert b"%|" not in result.stderr and b"B/s" not in result.stderr
    quiet = run_ftpc("-q", daemon.address, "get", "big.bin", "-o", "q.bin", home=home)
    assert quiet.returncode == 0 and quiet.stdout == b"" and quiet.stderr == b""


def test_cut_connection_keeps_partial_and_continue_resumes(daemon, home):
    data = make_file(daemon.root / "movie.mkv", 3 << 20)
    relay = Relay(daemon.port, limit=1 << 20, mode="cut")
    try:
        cut = run_ftpc(relay.address, "get", "movie.mkv", home=home)
    finally:
        relay.close()
    assert cut.returncode == 3
    assert b"--continue" in cut.stderr
    part = home / ".movie.mkv.ftpc-part"
    kept = part.read_bytes()
    assert 0 < len(kept) < len(data) and data.startswith(kept)
    assert not (home / "movie.mkv").exists()
    resumed = run_ftpc(daemon.address, "get", "--continue", "movie.mkv", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at byte {len(kept)}".encode() in resumed.stdout
    assert (home / "movie.mkv").read_bytes() == data
    assert not part.exists()
    assert f"bytes={len(data) - len(kept)} ".encode() in daemon.log().encode()


def test_continue_with_a_corrupt_partial_fails_verification_and_cleans_up(daemon, home):
    data = make_file(daemon.root / "disk.img", 100_000)
    (home / ".disk.img.ftpc-part").write_bytes(b"X" * 1000 + data[1000:40_000])
    result = run_ftpc(daemon.address, "get", "-c", "disk.img", home=home)
    assert result.returncode == 4
    assert b"does not match" in result.stderr
    assert sorted(os.listdir(home)) == []


def test_continue_with_an_overlong_partial_is_refused_416(daemon, home):
    make_file(daemon.root / "small.txt", 100)
    (home / ".small.txt.ftpc-part").write_bytes(b"x" * 500)
    result = run_ftpc(daemon.address, "get", "--continue", "small.txt", home=home)
    assert result.returncode == 1 and b"416" in result.stderr
    assert not (home / "small.txt").exists()


def interrupt_stalled_get(daemon, home, *args, past: int = 0):
    """Run `ftpc get` through a relay that freezes after 1 MiB, then press Ctrl-C
    once the partial file holds more than `past` bytes."""
    relay = Relay(daemon.port, limit=1 << 20, mode="stall")
    try:
        proc = subprocess.Popen(ftpc_command(relay.address, "get", *args), cwd=home,
                                env=ftpc_env(home), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert relay.broken.wait(30), "the download never reached the stall point"
        part = home / ".huge.bin.ftpc-part"
        wait_until(lambda: part.exists() and part.stat().st_size > past, 10, what="partial")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        relay.close()
    return proc.returncode, err


def test_ctrl_c_during_download_keeps_the_partial_and_says_how_to_resume(daemon, home):
    data = make_file(daemon.root / "huge.bin", 4 << 20)
    code, err = interrupt_stalled_get(daemon, home, "huge.bin")
    assert code == 130
    assert b"cancelled" in err and b"partial data kept" in err and b"--continue" in err
    kept = (home / ".huge.bin.ftpc-part").read_bytes()
    assert 0 < len(kept) < len(data) and data.startswith(kept)
    resumed = run_ftpc(daemon.address, "get", "huge.bin", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at byte {len(kept)}".encode() in resumed.stdout
    assert (home / "huge.bin").read_bytes() == data


def test_ctrl_c_during_continue_keeps_the_partial_it_was_asked_to_keep(daemon, home):
    data = make_file(daemon.root / "huge.bin", 4 << 20)
    part = home / ".huge.bin.ftpc-part"
    part.write_bytes(data[:100_000])
    code, err = interrupt_stalled_get(daemon, home, "--continue", "huge.bin", past=100_000)
    assert code == 130 and b"partial data kept" in err
    kept = part.read_bytes()
    assert 100_000 < len(kept) < len(data) and data.startswith(kept)
    assert not (home / "huge.bin").exists()


# -- uploads and credentials ---------------------------------------------------------------------

def test_put_streams_sha256_keeps_mtime_and_stores_under_another_name(daemon, home):
    data = make_file(home / "local.bin", 300_000)
    result = run_ftpc(daemon.address, "put", "local.bin", "--as", "remote copy.bin", home=home)
    assert result.returncode == 0, result.stderr
    assert (daemon.root / "remote copy.bin").read_bytes() == data
    missing = run_ftpc(daemon.address, "put", "absent.bin", home=home)
    assert missing.returncode == 2 and b"does not exist" in missing.stderr
    with daemon.client() as client:
        sent = []
        real = client.request
        client.request = lambda verb, *fields: sent.append((verb, fields)) or real(verb, *fields)
        os.utime(home / "local.bin", (1_500_000_000, 1_500_000_000))
        outcome = upload(client, str(home / "local.bin"), "again.bin")
    # hashed while sent (the file is read once), its time travels with it
    assert sent[0] == ("P", ("again.bin", str(len(data)), "-", "1500000000"))
    assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    assert os.stat(daemon.root / "again.bin").st_mtime == 1_500_000_000


def test_password_comes_from_env_or_netrc_never_argv(daemon, home):
    from_env = run_ftpc("-u", "alice", daemon.address, "list", home=home,
                        env={"FTPC_PASSWORD": "pw"})
    assert from_env.returncode == 1 and b"401" in from_env.stderr
    (home / ".netrc").write_text(f"machine {daemon.host} login carol password s3cret\n")
    (home / ".netrc").chmod(0o600)
    from_netrc = run_ftpc(daemon.address, "list", home=home)
    assert from_netrc.returncode == 1 and b"401" in from_netrc.stderr
    wait_until(lambda: "login failed: address=127.0.0.1 user=carol " in daemon.log(),
               what="netrc login")
    assert "login failed: address=127.0.0.1 user=alice " in daemon.log()
    no_tty = run_ftpc("-u", "bob", daemon.address, "list", home=home)
    assert no_tty.returncode == 2 and b"FTPC_PASSWORD" in no_tty.stderr


def test_ipv6_literal_with_port(make_daemon, home):
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("this machine has no ::1")
    daemon = make_daemon({"server": {"listen": "[::1]:0"}})
    make_file(daemon.root / "six.txt", 6)
    result = run_ftpc(f"[::1]:{daemon.port}", "list", "--json", home=home)
    assert result.returncode == 0, result.stderr
    assert [e["name"] for e in json.loads(result.stdout)] == ["six.txt"]


def test_part_file_name_is_predictable():
    assert part_path("/x/y/movie.mkv") == "/x/y/.movie.mkv.ftpc-part"
    assert part_path("a b.txt") == ".a b.txt.ftpc-part"


def test_a_remote_name_never_becomes_a_path_outside_the_target(daemon, home):
    (home / "inside").mkdir()
    result = run_ftpc(daemon.address, "get", "../escape.txt", home=home, cwd=home / "inside")
    assert result.returncode == 2 and b"cannot be a file on the server" in result.stderr
    assert sorted(os.listdir(home)) == ["inside"] and os.listdir(home / "inside") == []
