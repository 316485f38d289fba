"""Real client addresses of live sessions, shared by all sessions of a node.

Behind a load balancer the parent sees only the balancer's address, so its
per-IP limit cannot tell clients apart. Each session learns the real
address from the PROXY header and registers it here; the table lives in an
anonymous shared mapping made before any fork, so every child (or thread)
sees every other. A slot whose pid is gone is free again, so a killed child
costs nothing beyond its slot until someone needs it.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from typing import Optional, Tuple

from ftpd.server.library import pid_alive

_SLOT = struct.Struct("!iQ46s")      # pid, thread ident, address text
_EMPTY = _SLOT.pack(0, 0, b"")


class PeerTable:
    def __init__(self, slots: int):
        self.slots = slots
        self.memory = mmap.mmap(-1, slots * _SLOT.size)   # MAP_SHARED|MAP_ANONYMOUS
        import multiprocessing    # here: only a server behind a balancer needs it

        self.lock = multiprocessing.Lock()

    def _read(self, index: int) -> Tuple[int, int, bytes]:
        return _SLOT.unpack_from(self.memory, index * _SLOT.size)

    def _write(self, index: int, data: bytes) -> None:
        self.memory[index * _SLOT.size:(index + 1) * _SLOT.size] = data

    def admit(self, address: str, limit: int) -> Optional[int]:
        """Register `address` for this session; None when over `limit`."""
        me = (os.getpid(), threading.get_ident())
        key = address.encode("ascii", "replace")[:46]
        with self.lock:
            free, same = None, 0
            for index in range(self.slots):
                pid, ident, text = self._read(index)
                if pid == 0 or (pid, ident) == me or not pid_alive(pid):
                    free = index if free is None else free
                elif text.rstrip(b"\0") == key:
                    same += 1
            if same >= limit or free is None:
                return None
            self._write(free, _SLOT.pack(me[0], me[1], key))
            return free

    def release(self, index: int) -> None:
        with self.lock:
            self._write(index, _EMPTY)
