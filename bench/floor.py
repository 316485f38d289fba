"""The CPython floor: the least a fork-per-connection server written in
CPython costs, set beside ftpd in the benchmark.

It loads the same modules as ftpd's parent (so it forks a process of the
same size), forks one child per connection, and the child only greets,
answers `G name` with sendfile and `Q`: no limits, no signals, no logging,
no confinement, no checks. Whatever ftpd costs above this is ftpd's; what
this costs above vsftpd is the price of CPython's fork (page-table copy,
copy-on-write faults from reference counts, the interpreter's own at-fork
handlers) that no Python code on top can win back.

    python bench/floor.py PORT ROOT
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys

from ftpd import cli  # noqa: F401  (what ftpd's parent has loaded when it forks)
from ftpd.server import parent, service  # noqa: F401


def serve(conn: socket.socket, root_fd: int) -> None:
    conn.sendall(b"OK FTPD/1 floor ready\n")
    pending = b""
    while True:
        data = conn.recv(4096)
        if not data:
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            verb, _, name = line.partition(b" ")
            if verb == b"Q":
                conn.sendall(b"OK bye\n")
                return
            if verb != b"G":
                conn.sendall(b"ERR 400 the floor knows only G and Q\n")
                continue
            send_file(conn, name, root_fd)


def send_file(conn: socket.socket, name: bytes, root_fd: int) -> None:
    fd = os.open(name, os.O_RDONLY, dir_fd=root_fd)
    try:
        size = os.fstat(fd).st_size
        conn.sendall(b"OK %d\n" % size)
        offset = 0
        while offset < size:
            offset += os.sendfile(conn.fileno(), fd, offset, size - offset)
    finally:
        os.close(fd)


def main() -> None:
    port, root = int(sys.argv[1]), sys.argv[2]
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)      # the kernel reaps: no parent work
    listener = socket.create_server(("127.0.0.1", port), backlog=4096)
    print("floor serving", flush=True)
    gc.freeze()
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            try:
                listener.close()
                serve(conn, root_fd)
            finally:
                os._exit(0)
        conn.close()


if __name__ == "__main__":
    main()
