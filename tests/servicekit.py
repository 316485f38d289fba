"""Helpers for the service tests: big files, slow and idle clients, log waits."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Tuple

from tests.harness import Daemon, read_reply, recv_counted, wait_until

BLOCK = os.urandom(1 << 20)


def big_file(path: Path, mib: int) -> str:
    """Write `mib` MiB of random-looking data; return its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(BLOCK)
            digest.update(BLOCK)
    return digest.hexdigest()


def slow_download(daemon: Daemon, name: str, first: int = 1 << 16) -> Tuple[socket.socket, int]:
    """Start `G name` with a small receive window and read only `first` bytes,
    so the session stays mid-transfer until the test reads on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)   # before connect
    sock.settimeout(10)
    sock.connect((daemon.host, daemon.port))
    assert read_reply(sock).startswith(b"OK FTPD/1")
    sock.sendall(b"G " + name.encode() + b"\n")
    header = read_reply(sock)
    assert header.startswith(b"OK "), header
    count = int(header.split()[1])
    recv_counted(sock, first)
    return sock, count


def idle_session(daemon: Daemon) -> socket.socket:
    sock = daemon.connect()
    assert read_reply(sock).startswith(b"OK FTPD/1")
    return sock


def wait_for_log(daemon: Daemon, text: str, timeout: float = 15.0, count: int = 1) -> str:
    return wait_until(lambda: daemon.log().count(text) >= count and daemon.log(), timeout,
                      what=f"{text!r} in the log")


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False
