"""The client takes no POSIX-only path without a fallback (issue 15, "Runs
where the users are"): ftpd.client and ftpc run here with the names Windows
lacks removed (select.poll, os.O_NOFOLLOW, SO_RCVTIMEO/SO_SNDTIMEO, TCP_CORK,
MSG_WAITALL), against the real daemon and a peer that stalls. Nothing was run
on Windows or macOS itself (docs/ftpc.md, Platforms)."""

from __future__ import annotations

import hashlib
import io
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from ftpd.client import Client, ConnectionLost
from tests.harness import project_env
from tests.fakeserver import sha
from tests.ftpc_util import FakeServer, read_request_lines
from tests.functional.test_client_fuzz import ftpc_main, sandbox

REMOVED = [(select, "poll"), (os, "O_NOFOLLOW"), (socket, "SO_RCVTIMEO"),
           (socket, "SO_SNDTIMEO"), (socket, "TCP_CORK"), (socket, "MSG_WAITALL")]
# The same, for a child process: ftpc run as people run it, minus those names.
STRIP = "; ".join(f"delattr(__import__('{module.__name__}'), '{name}')"
                  for module, name in REMOVED if hasattr(module, name))


@pytest.fixture
def without_posix(monkeypatch):
    """Remove the names for the rest of the test. Ask for it after `daemon`:
    starting the daemon (subprocess, selectors) itself still needs poll."""
    for module, name in REMOVED:
        monkeypatch.delattr(module, name, raising=False)
    assert not hasattr(select, "poll") and not hasattr(os, "O_NOFOLLOW")


def test_the_client_api_works_without_poll_and_posix_socket_options(daemon, tmp_path,
                                                                     without_posix):
    data = os.urandom(3 << 20)          # several receive chunks
    with daemon.client() as client:
        assert client.put(io.BytesIO(data), "big.bin") == (len(data), sha(data).decode())
        assert [(e.name, e.size) for e in client.list()] == [("big.bin", len(data))]
        assert client.hash("big.bin") == (len(data), sha(data).decode())
        assert client.get("big.bin", str(tmp_path / "copy.bin")) == len(data)
        (tmp_path / "part.bin").write_bytes(data[:1000])
        assert client.get("big.bin", str(tmp_path / "part.bin"), offset=1000) == len(data) - 1000
        client.ensure_alive()
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert (tmp_path / "part.bin").read_bytes() == data


def stalls_after(first: bytes):
    """A peer that sends `first` (after the greeting's request, if any) and then nothing."""
    def script(conn):
        if first:
            conn.sendall(b"OK FTPD/1 slow\n")
            read_request_lines(conn, 1)
            conn.sendall(first)
        time.sleep(5)
    return script


@pytest.mark.parametrize("first,where", [
    (b"", "no greeting from"),                                       # select() fallback
    (b"OK 100\n" + b"x" * 10, "download cut short: timed out"),       # Python's timeout
])
def test_a_stall_still_times_out_without_poll_and_kernel_timeouts(without_posix, first,
                                                                   where):
    with FakeServer(stalls_after(first)) as fake:
        started = time.monotonic()
        with pytest.raises(ConnectionLost) as info:
            with Client("127.0.0.1", fake.port, timeout=0.5) as client:
                client.get("a.txt", io.BytesIO(), verify=False)
        assert time.monotonic() - started < 4.5         # the timeout, not the peer's close
    assert where in str(info.value) and "timed out" in str(info.value)


def test_ftpc_one_shot_commands_without_the_posix_names(daemon, without_posix):
    (daemon.root / "notes.txt").write_bytes(b"hello\n" * 1000)
    with sandbox() as (work, _):
        status, out, err = ftpc_main([f"127.0.0.1:{daemon.port}", "get", "notes.txt"])
        assert (status, (work / "notes.txt").read_bytes()) == (0, b"hello\n" * 1000), err
        (work / "up.txt").write_bytes(b"up")
        assert ftpc_main([f"127.0.0.1:{daemon.port}", "put", "up.txt"])[0] == 0
        status, out, _ = ftpc_main([f"127.0.0.1:{daemon.port}", "list"])
    assert status == 0 and b"notes.txt" in out and b"up.txt" in out
    assert (daemon.root / "up.txt").read_bytes() == b"up"


def test_ftpc_in_a_process_without_the_posix_names(daemon, tmp_path):
    data = os.urandom(1 << 20)
    (daemon.root / "blob.bin").write_bytes(data)
    code = f"import sys; {STRIP}; from ftpd.ftpc.cli import main; sys.exit(main())"
    env = project_env({"HOME": str(tmp_path)})
    address = f"127.0.0.1:{daemon.port}"
    result = subprocess.run([sys.executable, "-c", code, address, "get", "blob.bin"],
                            cwd=tmp_path, env=env, capture_output=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256((tmp_path / "blob.bin").read_bytes()).digest() == \
        hashlib.sha256(data).digest()
