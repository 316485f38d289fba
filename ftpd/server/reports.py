"""What sessions tell the parent for its metrics, and the parent's side when
metrics are off.

A forked session cannot touch the parent's counters, so it reports: one
datagram per event on a SOCK_DGRAM socketpair made before any fork. The
parent keeps the reading end, every session inherits the sending end (a
thread-mode session uses the same object). Records are short ASCII lines:

    T <verb> <ok|failed> <bytes in> <bytes out>    a transfer or change ended
    L                                              a login failed
    R <reason>                                     a session refused a client

Datagrams keep their boundaries, so a record is never torn or mixed with
another session's. This module never imports prometheus_client: with
`[metrics] listen` empty, `ServerMetrics` (all no-ops) is all there is.
"""

from __future__ import annotations

import logging
import selectors
import socket
from enum import Enum
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from ftpd.config import Address, Config

if TYPE_CHECKING:
    from ftpd.server.spawn import Spawner

log = logging.getLogger("ftpd.server")

Sink = Callable[[bytes], None]   # sends one record to the parent
SEND_WAIT = 1.0                  # a session waits at most this long for a full queue
MAX_RECORD = 256
BACKLOG = 16                     # the metrics listener's: scrapes are few


class Refusal(Enum):
    """Why a client is turned away before its session: the metrics label
    and the words the client is told (`ERR 421 <text>`)."""

    MAX_CLIENTS = ("max_clients", "too many clients")
    PER_IP = ("max_clients_per_ip", "too many connections from your address")
    SILENT = ("silent", "too many connections waiting for a first request, try again")
    UNTRUSTED_PROXY = ("untrusted_proxy", "not a trusted proxy")
    # The per-IP limit behind a PROXY header, applied by the session itself.
    PER_IP_PROXIED = ("per_ip_proxied", "too many connections from your address")

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def text(self) -> str:
        return self.value[1]


def no_sink(record: bytes) -> None:
    """Metrics are off: nobody listens."""


class SessionEvents:
    """One session's reports. Bytes go as the change since the last record,
    so the parent's totals add up whatever a transfer's outcome."""

    def __init__(self, sink: Sink = no_sink):
        self.sink = sink
        self.reported_in = 0
        self.reported_out = 0

    def transfer(self, verb: str, result: str, bytes_in: int, bytes_out: int) -> None:
        """`bytes_in`/`bytes_out`: the session's totals so far."""
        if self.sink is no_sink:
            return
        outcome = "ok" if result.startswith("ok") else "failed"
        delta_in, delta_out = bytes_in - self.reported_in, bytes_out - self.reported_out
        self.reported_in, self.reported_out = bytes_in, bytes_out
        self.sink(f"T {verb} {outcome} {delta_in} {delta_out}".encode("ascii"))

    def login_failed(self) -> None:
        self.sink(b"L")

    def refused(self, reason: Refusal) -> None:
        self.sink(f"R {reason.label}".encode("ascii"))


class ReportChannel:
    """The socketpair: `send` for sessions, `drain` for the parent."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.reader.setblocking(False)
        # Shared by every session (one open file): bounded, never blocking for long.
        self.writer.settimeout(SEND_WAIT)

    def send(self, record: bytes) -> None:
        try:
            self.writer.send(record[:MAX_RECORD])
        except OSError as exc:     # the parent has not drained for SEND_WAIT: lose one
            log.warning("metrics: a report was lost (%s)", exc)

    def drain(self, limit: int = 1024) -> List[bytes]:
        """The records waiting, at most `limit` (the loop comes back for more)."""
        records = []
        for _ in range(limit):
            try:
                records.append(self.reader.recv(MAX_RECORD))
            except (BlockingIOError, InterruptedError):
                break
        return records

    def close_reader(self) -> None:
        self.reader.close()

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


class ServerMetrics:
    """The parent's metrics hooks, all doing nothing: `[metrics] listen` is
    empty. metrics.Metrics overrides them."""

    def __init__(self) -> None:
        self.sink: Sink = no_sink     # what sessions report through

    def attach(self, selector: selectors.BaseSelector) -> None:
        """Register what the parent's loop must wait on."""

    def session_started(self) -> None:
        """A session was spawned."""

    def refused(self, reason: Refusal) -> None:
        """The parent refused a client."""

    def reloaded(self, ok: bool) -> None:
        """A SIGHUP was handled: the configuration was replaced, or kept."""

    def rebind(self, listen: Optional[Address]) -> None:
        if listen is not None:
            log.warning("[metrics] listen: turning metrics on needs a restart")

    def expire(self, now: float) -> None:
        """Cut scrapes that are past their time."""

    def close_in_child(self) -> None:
        """In a forked session: drop the parent's ends, keep the sink."""

    def close(self) -> None:
        """The server is stopping."""


def metrics_for(config: Config, spawner: "Spawner",
                bound: Optional[Dict[Address, List[socket.socket]]] = None,
                inherited: bool = False) -> ServerMetrics:
    """The parent's metrics: no-ops, or (importing prometheus_client only
    now) the real ones on `bound`, bound here if not given. Sockets systemd
    passed (`inherited`, ftpd-metrics.socket) turn them on by themselves."""
    if config.metrics.listen is None and not (inherited and bound):
        return ServerMetrics()
    from ftpd.server.metrics import Metrics
    return Metrics(config, spawner, bound, inherited)
