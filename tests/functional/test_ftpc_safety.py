"""ftpc never loses data, never falls out of step, and says what went wrong
(issue 15): the real ftpc as a subprocess, against the real daemon or, for
what the daemon never does, a scripted fake peer on loopback."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import resource
import select
import signal
import struct
import subprocess
import sys
import termios

import pytest

from tests.harness import wait_until
from tests.ftpc_util import FakeServer, ftpc_command, ftpc_env, make_file, run_ftpc, serve_file

FORGED = b"OK 1\n999 0 evil.exe\n"


# -- never out of step ---------------------------------------------------------------------

def limit_file_size():
    # As a full disk would: writes past 64 KiB fail with EFBIG (the signal ignored).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_a_local_write_error_does_not_leave_the_shell_reading_file_data(daemon, home):
    import pexpect
    (daemon.root / "forged.txt").write_bytes(FORGED * 50_000)      # ~1 MiB of fake replies
    command = ftpc_command(daemon.address)
    child = pexpect.spawn(command[0], command[1:], cwd=str(home), env=ftpc_env(home),
                          encoding="utf-8", timeout=30, preexec_fn=limit_file_size)
    try:
        prompt = f"ftpc {daemon.address}> "
        child.expect_exact(prompt)
        child.sendline("get forged.txt")
        child.expect_exact(prompt)
        assert "File too large" in child.before
        child.sendline("ls")
        child.expect_exact(prompt)
        listing = child.before
    finally:
        child.terminate(force=True)
    assert "evil.exe" not in listing and "malformed" not in listing
    assert "forged.txt" in listing and "1 file," in listing


@pytest.mark.parametrize("banner", [b"220 (vsFTPd 3.0.3)\r\n", b"SSH-2.0-OpenSSH_9.6\r\n",
                                    b"<html>hello</html>\n"])
def test_a_server_that_is_not_ftpd_exits_3_and_says_so(home, banner):
    def script(conn):
        conn.sendall(banner)
        conn.recv(100)

    with FakeServer(script) as fake:
        result = run_ftpc(fake.address, "list", home=home)
    assert result.returncode == 3
    assert b"is not an FTPD/1 server" in result.stderr


# -- never throw away what was received ------------------------------------------------------

def test_a_stop_right_after_the_data_keeps_the_verified_download(home):
    data = os.urandom(200_000)
    script = serve_file(data, hashlib.sha256(data).hexdigest(), b"ERR 421 shutting down\n")
    with FakeServer(script) as fake:
        result = run_ftpc(fake.address, "get", "big.iso", home=home)
    assert result.returncode == 0, result.stderr
    assert (home / "big.iso").read_bytes() == data and b"verified" in result.stdout


def test_a_plain_get_resumes_a_kept_partial_and_verifies_it(daemon, home):
    data = make_file(daemon.root / "movie.mkv", 500_000)
    (home / ".movie.mkv.ftpc-part").write_bytes(data[:123_456])
    result = run_ftpc(daemon.address, "get", "movie.mkv", home=home)
    assert result.returncode == 0, result.stderr
    assert b"resumed at byte 123456" in result.stdout and b"verified" in result.stdout
    assert (home / "movie.mkv").read_bytes() == data
    wait_until(lambda: f"bytes={len(data) - 123_456} " in daemon.log(), what="the G log line")


def test_a_plain_get_over_a_partial_of_another_longer_version_starts_again(daemon, home):
    data = make_file(daemon.root / "notes.txt", 1000)
    (home / ".notes.txt.ftpc-part").write_bytes(b"x" * 5000)
    result = run_ftpc(daemon.address, "get", "notes.txt", home=home)
    assert result.returncode == 0, result.stderr
    assert (home / "notes.txt").read_bytes() == data
    assert sorted(os.listdir(home)) == ["notes.txt"]


def test_continue_of_a_complete_identical_file_is_already_complete(daemon, home):
    data = make_file(daemon.root / "backup.tar", 300_000)
    (home / "backup.tar").write_bytes(data)
    again = run_ftpc(daemon.address, "get", "--continue", "backup.tar", home=home)
    assert again.returncode == 0, again.stderr
    assert b"already complete" in again.stdout
    (home / "backup.tar").write_bytes(data[:-1] + b"!")
    differs = run_ftpc(daemon.address, "get", "--continue", "backup.tar", home=home)
    assert differs.returncode == 2 and b"differs" in differs.stderr


# -- errors that say what happened -------------------------------------------------------------

def test_a_timeout_says_timed_out(home):
    def script(conn):
        conn.sendall(b"OK FTPD/1 mute\n")
        conn.recv(100)
        conn.recv(100)

    with FakeServer(script) as fake:
        result = run_ftpc("--timeout", "0.5", fake.address, "list", home=home)
    assert result.returncode == 3
    assert b"connection lost: timed out" in result.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from tests.certs import make_pki
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_plaintext_on_a_tls_port_suggests_tls_and_tls_on_plaintext_says_so(make_daemon, pki,
                                                                            home):
    tls = make_daemon({"tls": {"certificate": pki.cert, "private_key": pki.key,
                               "handshake_timeout": 0.5}})
    plain = run_ftpc(tls.address, "list", home=home)
    assert plain.returncode == 3 and b"--tls" in plain.stderr
    daemon = make_daemon()
    wrong = run_ftpc("--cafile", str(pki.ca_cert), daemon.address, "list", home=home)
    assert wrong.returncode == 3
    assert b"the server does not speak TLS" in wrong.stderr


def test_ftpd_urls_are_accepted_and_ftp_urls_refused(daemon, home):
    data = make_file(daemon.root / "a b.txt", 777)
    fetched = run_ftpc(f"ftpd://{daemon.address}/a%20b.txt", home=home)
    assert fetched.returncode == 0, fetched.stderr
    assert (home / "a b.txt").read_bytes() == data
    listed = run_ftpc(f"ftpd://{daemon.address}/", "list", home=home)
    assert listed.returncode == 0 and b"a b.txt" in listed.stdout
    refused = run_ftpc(f"ftp://{daemon.address}/", "list", home=home)
    assert refused.returncode == 2
    assert b"a different protocol" in refused.stderr and b"ftpd://" in refused.stderr


def test_a_refused_password_does_not_advise_dash_u(daemon, home):
    result = run_ftpc("-u", "alice", daemon.address, "list", home=home,
                      env={"FTPC_PASSWORD": "wrong"})
    assert result.returncode == 1 and b"401" in result.stderr
    assert b"-u USER" not in result.stderr and b"not accepted" in result.stderr


def test_a_world_readable_netrc_with_a_password_is_refused(daemon, home):
    (home / ".netrc").write_text(f"machine {daemon.host} login carol password s3cret\n")
    (home / ".netrc").chmod(0o644)
    result = run_ftpc(daemon.address, "list", home=home)
    assert result.returncode == 2 and b"chmod 600" in result.stderr
    assert "carol" not in daemon.log()


# -- pipes and scripts --------------------------------------------------------------------------

def test_put_dash_uploads_standard_input(daemon, home):
    data = os.urandom(100_000)
    result = run_ftpc(daemon.address, "put", "-", "--as", "from stdin.bin", home=home, stdin=data)
    assert result.returncode == 0, result.stderr
    assert (daemon.root / "from stdin.bin").read_bytes() == data
    nameless = run_ftpc(daemon.address, "put", "-", home=home, stdin=b"x")
    assert nameless.returncode == 2 and b"--as" in nameless.stderr


def test_get_to_a_closed_pipe_exits_quietly(daemon, home):
    make_file(daemon.root / "big.bin", 8 << 20)
    proc = subprocess.Popen(ftpc_command(daemon.address, "get", "big.bin", "-o", "-"), cwd=home,
                            env=ftpc_env(home), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()                       # what `| head -c 10` does
    err = proc.stderr.read()
    assert proc.wait(30) == 141
    assert err == b""


def test_the_progress_bar_goes_to_a_terminal_stderr_while_stdout_is_a_pipe(daemon, home):
    make_file(daemon.root / "big.bin", 4 << 20)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(ftpc_command(daemon.address, "get", "big.bin", "-o", "-"), cwd=home,
                            env=ftpc_env(home), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out = proc.stdout.read()
    assert proc.wait(30) == 0 and len(out) == 4 << 20
    seen = b""
    while select.select([master], [], [], 1)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert b"big.bin" in seen and b"100%" in seen


def test_batch_mode_stops_at_the_first_failure_with_its_status(daemon, home):
    make_file(daemon.root / "one.txt", 10)
    script = home / "commands"
    script.write_text("# nightly\nls\nget missing.txt\nget one.txt\n")
    result = run_ftpc("-b", str(script), daemon.address, home=home)
    assert result.returncode == 1
    assert b"line 3: server refused" in result.stderr and b"404" in result.stderr
    assert not (home / "one.txt").exists()           # the script stopped at line 3
    piped = run_ftpc(daemon.address, home=home, stdin=b"get missing.txt\nls\n")
    assert piped.returncode == 1 and b"1 file" not in piped.stdout
    fine = run_ftpc(daemon.address, home=home, stdin=b"-get missing.txt\nget one.txt\n")
    assert fine.returncode == 0, fine.stderr
    assert (home / "one.txt").exists()


def test_exit_codes_live_in_one_table_that_the_help_shows():
    from ftpd.ftpc import status
    result = subprocess.run([sys.executable, "-m", "ftpd.ftpc", "--help"], capture_output=True,
                            env=ftpc_env(__import__("pathlib").Path("/nonexistent")), timeout=30)
    for code, meaning in status.TABLE:
        assert f"{code:>3}  {meaning[:30]}" in " ".join(result.stdout.decode().split("\n"))


def test_the_docs_show_the_same_exit_status_table():
    from pathlib import Path
    from ftpd.ftpc import status
    docs = (Path(__file__).resolve().parents[2] / "docs" / "ftpc.md").read_text()
    for code, meaning in status.TABLE:
        assert f"| {code} | {meaning} |" in docs
