"""Helpers for the ftpc tests: run the real ftpc, and a relay that breaks the network.

The relay sits between ftpc and the real daemon and, on its first connection,
cuts (or freezes) the server-to-client stream after a set number of bytes:
a deterministic stand-in for a cable pulled in the middle of a download.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tests.harness import project_env


def ftpc_env(home: Path, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = project_env(extra)
    env["HOME"] = str(home)            # no stray ~/.netrc or history from the real user
    env.pop("FTPC_PASSWORD", None)
    env.setdefault("TERM", "dumb")
    env.update(extra or {})
    return env


def ftpc_command(*args: str) -> List[str]:
    return [sys.executable, "-m", "ftpd.ftpc", *args]


def run_ftpc(*args: str, home: Path, cwd: Optional[Path] = None, env: Optional[dict] = None,
             timeout: float = 60.0, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
    return subprocess.run(ftpc_command(*args), cwd=cwd or home, env=ftpc_env(home, env),
                          input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, stdin=None if stdin is not None else subprocess.DEVNULL)


class Relay:
    """TCP relay to 127.0.0.1:`port`; the first connection breaks after `limit` bytes.

    mode "cut": both sides are closed; mode "stall": nothing more is forwarded
    (the connection stays open) until close(). `upload`: the limit counts the
    client's bytes to the server instead of the server's to the client.
    """

    def __init__(self, port: int, limit: int, mode: str = "cut", upload: bool = False):
        self.port, self.limit, self.mode, self.upload = port, limit, mode, upload
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: List[socket.socket] = [self.listener]
        self.connections = 0
        self.broken = threading.Event()
        self.closing = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            self.sockets += [down, up]
            self.connections += 1
            limit = self.limit if self.connections == 1 else None
            to_server, to_client = (limit, None) if self.upload else (None, limit)
            threading.Thread(target=self._pump, args=(down, up, to_server), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, to_client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: Optional[int]) -> None:
        sent = 0
        try:
            src.settimeout(None)
            while True:
                want = 65536 if limit is None else min(65536, limit - sent)
                data = src.recv(want) if want > 0 else b""
                if not data:
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        if limit is not None and sent >= limit:
            self.broken.set()
            if self.mode == "stall":
                self.closing.wait(120)
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.closing.set()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


class RecordingRelay(Relay):
    """A Relay that cuts nothing and keeps every chunk it forwards, in the
    order it forwarded them: ("up", bytes) from the client, ("down", bytes)
    from the server. A chunk is recorded before it is passed on, so a reply
    the server could only make after a request is recorded after it."""

    def __init__(self, port: int):
        self.events: List[Tuple[str, bytes]] = []
        self.lock = threading.Lock()
        super().__init__(port, limit=1 << 62)

    def _pump(self, src: socket.socket, dst: socket.socket, limit: Optional[int]) -> None:
        direction = "up" if src.getsockname() == self.listener.getsockname() else "down"
        try:
            src.settimeout(None)
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    self.events.append((direction, data))
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def when(self, direction: str, pattern: bytes) -> int:
        """The index of the event by which `direction`'s stream first
        matched the regular expression `pattern` (ValueError if it never did)."""
        with self.lock:
            events = list(self.events)
        stream = b""
        for index, (way, data) in enumerate(events):
            if way == direction:
                stream += data
                if re.search(pattern, stream):
                    return index
        raise ValueError(f"{pattern!r} never went {direction}")


def make_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


class FakeServer:
    """A scripted peer on loopback for what the real daemon never does: greet
    like another protocol, answer out of protocol, or stop at a chosen moment.

    `script(conn)` runs once per connection in a thread; `requests` collects
    the bytes each connection sent, so a test sees what the client asked."""

    def __init__(self, script):
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.port = self.listener.getsockname()[1]
        self.conns: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            self.script(conn)
        except OSError:
            pass

    def close(self) -> None:
        for sock in [self.listener, *self.conns]:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> "FakeServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_request_lines(conn: socket.socket, count: int) -> List[bytes]:
    """Read `count` request lines (pipelined ones may come in one segment)."""
    data = b""
    while data.count(b"\n") < count:
        more = conn.recv(4096)
        if not more:
            break
        data += more
    return data.splitlines()[:count]


def serve_file(data: bytes, digest: str, after: bytes = b""):
    """A FakeServer script answering H and G for one file, in whatever order
    they come; after the file's bytes it sends `after` and closes, like a
    server that stops (ERR 421) right after a transfer."""
    def script(conn: socket.socket) -> None:
        conn.sendall(b"OK FTPD/1 fake\n")
        pending = b""
        while True:
            while b"\n" not in pending:
                more = conn.recv(4096)
                if not more:
                    return
                pending += more
            line, _, pending = pending.partition(b"\n")
            if line.startswith(b"H "):
                conn.sendall(f"OK {len(data)} {digest}\n".encode())
            elif line.startswith(b"G "):
                conn.sendall(f"OK {len(data)}\n".encode() + data + after)
                conn.close()
                return
            else:
                conn.sendall(b"ERR 400 not in this script\n")
    return script
