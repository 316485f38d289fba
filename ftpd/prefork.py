"""Spare children for fork mode: forked before they are needed.

A spare has done its post-fork set-up and waits on a Unix socket pair. On
accept the parent passes it the client's fd (SCM_RIGHTS) and the peer
address, then forks a replacement spare: the client's greeting no longer
waits for fork(), and the parent still does nothing per session but accept,
hand over and fork. Each spare serves one client and exits, as any child.
"""

from __future__ import annotations

import select
import socket
from collections import OrderedDict
from typing import List, Optional, Tuple

Peer = Tuple[str, int]


class Spares:
    """The parent's side: pid -> its end of the spare's channel, oldest first."""

    def __init__(self, wanted: int):
        self.wanted = wanted
        self.channels: "OrderedDict[int, socket.socket]" = OrderedDict()

    def __len__(self) -> int:
        return len(self.channels)

    def add(self, pid: int, channel: socket.socket) -> None:
        self.channels[pid] = channel

    def hand_over(self, conn: socket.socket, peer: Peer) -> Optional[int]:
        """Give `conn` to the oldest live spare; its pid, or None if none is left."""
        while self.channels:
            pid, channel = self.channels.popitem(last=False)
            try:
                socket.send_fds(channel, [f"{peer[0]} {peer[1]}".encode()], [conn.fileno()])
                return pid
            except OSError:
                continue        # that spare died; its exit is reaped as a non-session
            finally:
                channel.close()
        return None

    def forget(self, pid: int) -> bool:
        channel = self.channels.pop(pid, None)
        if channel is not None:
            channel.close()
        return channel is not None

    def close_all(self) -> List[int]:
        """Close every channel (each spare sees EOF and exits); their pids."""
        pids = list(self.channels)
        for pid in pids:
            self.forget(pid)
        return pids


def channel_pair() -> Tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def await_client(channel: socket.socket, stop_fd: int) -> Optional[Tuple[socket.socket, Peer]]:
    """In the spare: block until the parent hands over a client (or closes
    the channel, or the stop fd says the server is draining)."""
    poller = select.poll()
    poller.register(channel.fileno(), select.POLLIN)
    poller.register(stop_fd, select.POLLIN)
    ready = dict(poller.poll())
    if stop_fd in ready:
        return None
    message, fds, _, _ = socket.recv_fds(channel, 512, 1)
    channel.close()
    if not fds:
        return None             # EOF: the parent dropped this spare
    host, _, port = message.decode().rpartition(" ")
    return socket.socket(fileno=fds[0]), (host, int(port))
