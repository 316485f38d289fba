"""Helpers for the ftpc tests: run the real ftpc, and a relay that breaks the network.

The relay sits between ftpc and the real daemon and, on its first connection,
cuts (or freezes) the server-to-client stream after a set number of bytes:
a deterministic stand-in for a cable pulled in the middle of a download.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional

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
    (the connection stays open) until close().
    """

    def __init__(self, port: int, limit: int, mode: str = "cut"):
        self.port, self.limit, self.mode = port, limit, mode
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
            threading.Thread(target=self._pump, args=(down, up, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, limit), daemon=True).start()

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


def make_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data
