"""Buffered reading from a connected socket, shared by server and client.

Requests may be pipelined, so bytes that arrive after a line belong to the
next request (or to an upload's data) and must stay in one buffer.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from typing import BinaryIO, Callable, Iterator, Optional, Tuple

from ftpd.protocol import MAX_LINE

CHUNK = 1 << 20   # large reads keep Python overhead per byte low


class StreamClosed(Exception):
    """The peer closed the connection (or it broke) before we had enough."""


class StreamTimeout(Exception):
    """Nothing (or not enough) arrived in time."""


class LineTooLong(Exception):
    """A line exceeded MAX_LINE bytes including its LF."""


class Interrupted(Exception):
    """The stop fd became readable while we waited for a request."""


class Stream:
    def __init__(self, sock: socket.socket, whole_chunks: bool = True):
        self.sock = sock
        self.buffer = bytearray()
        # The server fills whole chunks (fewer calls per byte); a client
        # hands on what has arrived, so progress and Ctrl-C lose nothing.
        self.whole_chunks = whole_chunks
        self.tls = hasattr(sock, "pending")     # ssl.SSLSocket, without importing ssl
        # Two receive buffers, made on the first transfer: an idle session
        # costs no MiB, and a chunk stays intact while the next one arrives.
        self._chunks: list = []

    # -- lines --------------------------------------------------------------

    def read_line(self, timeout: Optional[float], stop_fd: Optional[int] = None,
                  max_len: int = MAX_LINE) -> bytes:
        """Return one line with its LF; it must arrive whole within `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                if end + 1 > max_len:
                    raise LineTooLong()
                line = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                return line
            if len(self.buffer) >= max_len:
                raise LineTooLong()
            self._fill(deadline, stop_fd)

    def _fill(self, deadline: Optional[float], stop_fd: Optional[int]) -> None:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise StreamTimeout()
        if not self._wait_readable(remaining, stop_fd):
            raise StreamTimeout()
        self.sock.settimeout(remaining if remaining is None else max(remaining, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout as exc:
            raise StreamTimeout() from exc
        except OSError as exc:
            raise StreamClosed(str(exc)) from exc
        if not data:
            raise StreamClosed("connection closed by peer")
        self.buffer += data

    def _wait_readable(self, timeout: Optional[float], stop_fd: Optional[int]) -> bool:
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending():
            return True     # TLS already decrypted bytes the kernel cannot see
        if not hasattr(select, "poll"):         # Windows: the client's fallback
            return _select_readable(self.sock.fileno(), timeout, stop_fd)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLPRI)
        if stop_fd is not None:
            poller.register(stop_fd, select.POLLIN)
        ms = None if timeout is None else max(int(timeout * 1000), 1)
        events = dict(poller.poll(ms))
        if stop_fd is not None and stop_fd in events:
            raise Interrupted()
        return bool(events)

    # -- raw bytes ----------------------------------------------------------

    def iter_exact(self, size: int, stall_timeout: Optional[float]) -> Iterator[memoryview]:
        """Yield exactly `size` bytes in chunks; StreamTimeout on a stall.

        A chunk stays valid until the one after the next is asked for, so a
        consumer may hash chunk k in another thread while receiving k+1."""
        remaining = size
        if self.buffer and remaining:
            take = min(len(self.buffer), remaining)
            head = bytes(self.buffer[:take])
            del self.buffer[:take]
            remaining -= take
            yield memoryview(head)
        if not self._chunks and remaining:
            self._chunks = [memoryview(bytearray(CHUNK)) for _ in range(2)]
        # Blocking with SO_RCVTIMEO and MSG_WAITALL: the kernel fills a whole
        # chunk per call, with no poll() before each recv as settimeout() does.
        # A TLS socket decrypts in user space: Python's timeout, no flags.
        flags = socket.MSG_WAITALL if self.whole_chunks and not self.tls else 0
        if self.tls or not _has_kernel_timeouts():
            self.sock.settimeout(stall_timeout)
        else:
            _kernel_timeout(self.sock, socket.SO_RCVTIMEO, stall_timeout)
        turn = 0
        while remaining:
            view = self._chunks[turn]
            turn ^= 1
            want = min(remaining, CHUNK)
            got, failure = self._fill_chunk(view, want, flags)
            remaining -= got
            if got:
                yield view[:got]     # even before a failure: a client keeps it
            if failure is not None:
                raise failure

    def _fill_chunk(self, view: memoryview, want: int,
                    flags: int) -> Tuple[int, Optional[Exception]]:
        """Receive up to `want` bytes into view: (bytes got, exception or None)."""
        got = 0
        while got < want:
            try:
                step = self.sock.recv_into(view[got:want], want - got, flags)
            except (BlockingIOError, socket.timeout):       # stalled
                return got, StreamTimeout()
            except OSError as exc:
                return got, StreamClosed(str(exc))
            if not step:
                return got, StreamClosed("connection closed during transfer")
            got += step
            if not self.whole_chunks:
                break
        return got, None

    def sendfile(self, handle: BinaryIO, offset: int, count: int, stall_timeout: float,
                 progress: Optional[Callable[[int], None]] = None,
                 step: Optional[int] = None) -> int:
        """Send `count` bytes of the file from `offset`; returns the bytes sent
        (fewer only if the file shrank). `progress(sent)` is called every
        `step` bytes. The socket blocks with SO_SNDTIMEO, so the kernel moves
        each step in as few calls as it can."""
        step = step or count or 1
        if self.tls:        # the bytes must go through the TLS layer, not sendfile(2)
            return self._sendfile_tls(handle, offset, count, stall_timeout, progress, step)
        fd = handle.fileno()
        _kernel_timeout(self.sock, socket.SO_SNDTIMEO, stall_timeout)
        sent = 0
        # Corked, the kernel fills whole segments instead of pushing each
        # splice chunk at once as TCP_NODELAY would; uncorking flushes the tail.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        try:
            while sent < count:
                done = os.sendfile(self.sock.fileno(), fd, offset + sent,
                                   min(step, count - sent))
                if not done:
                    break
                sent += done
                if progress:
                    progress(sent)
        except BlockingIOError as exc:      # SO_SNDTIMEO passed without progress
            raise StreamTimeout() from exc
        except OSError as exc:
            raise StreamClosed(str(exc)) from exc
        finally:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            except OSError:
                pass        # the connection is gone anyway
        return sent

    def _sendfile_tls(self, handle: BinaryIO, offset: int, count: int, stall_timeout: float,
                      progress: Optional[Callable[[int], None]], step: int) -> int:
        self.sock.settimeout(stall_timeout)
        sent = 0
        try:
            while sent < count:
                done = self.sock.sendfile(handle, offset + sent, min(step, count - sent))
                if not done:
                    break
                sent += done
                if progress:
                    progress(sent)
        except socket.timeout as exc:
            raise StreamTimeout() from exc
        except OSError as exc:
            raise StreamClosed(str(exc)) from exc
        return sent

    def send(self, data: bytes, timeout: Optional[float]) -> None:
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except socket.timeout as exc:
            raise StreamTimeout() from exc
        except OSError as exc:
            raise StreamClosed(str(exc)) from exc


def _select_readable(fd: int, timeout: Optional[float], stop_fd: Optional[int]) -> bool:
    """_wait_readable with select(), where there is no poll() (Windows)."""
    watched = [fd] + ([stop_fd] if stop_fd is not None else [])
    readable, _, _ = select.select(watched, [], [], timeout)
    if stop_fd is not None and stop_fd in readable:
        raise Interrupted()
    return bool(readable)


def _has_kernel_timeouts() -> bool:
    # SO_RCVTIMEO takes a POSIX timeval; Windows wants milliseconds in a
    # DWORD, and a platform without it gets Python's own timeout instead.
    return os.name == "posix" and hasattr(socket, "SO_RCVTIMEO")


def _kernel_timeout(sock: socket.socket, option: int, seconds: Optional[float]) -> None:
    """Make `sock` blocking, with the kernel's own timeout (`option` is
    SO_RCVTIMEO or SO_SNDTIMEO; None waits for ever) instead of Python's
    poll-before-every-call emulation of a timeout."""
    sock.settimeout(None)
    whole = int(seconds or 0)
    micro = int(((seconds or 0) - whole) * 1e6) or (1 if seconds and not whole else 0)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", whole, micro))
