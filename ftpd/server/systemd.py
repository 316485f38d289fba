"""systemd glue without libsystemd: sd_notify and socket activation.

sd_notify: one datagram per state change to $NOTIFY_SOCKET (a path, or an
abstract socket written with a leading '@'). Socket activation: systemd (or
systemd-socket-activate) passes listening sockets as fds 3.. with
LISTEN_FDS=n and LISTEN_PID=<our pid>; we serve on them instead of binding.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Dict, Iterable, List, Mapping, MutableMapping, NamedTuple, Optional, Tuple

from ftpd.server.listeners import Address, format_address

log = logging.getLogger("ftpd.systemd")

LISTEN_FDS_START = 3
ACTIVATION_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
# FileDescriptorName= of ftpd-metrics.socket: its sockets serve the Prometheus
# endpoint, every other one serves clients (ftpd.socket's are named after it).
METRICS_FD_NAME = "metrics"

Bound = Dict[Address, List[socket.socket]]


class Activation(NamedTuple):
    """The sockets systemd passed: for clients, and for the metrics (maybe none)."""
    clients: Bound
    metrics: Bound


class ActivationError(Exception):
    """The sockets systemd handed over are not what a server can use."""


def notify_address(environ: Mapping[str, str] = os.environ) -> Optional[str]:
    path = environ.get("NOTIFY_SOCKET", "")
    if path.startswith("@"):
        return "\0" + path[1:]          # abstract namespace
    return path if path.startswith("/") else None


def notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send `state` ("READY=1", ...) to the service manager; False if none listens.

    Never raises: a lost notification must not take the server down."""
    address = notify_address(environ)
    if address is None:
        return False
    if "RELOADING=1" in state.split("\n"):
        # systemd >= 253 wants the moment the reload began, on CLOCK_MONOTONIC.
        state += f"\nMONOTONIC_USEC={time.monotonic_ns() // 1000}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), address)
    except OSError as exc:
        log.warning("sd_notify %r failed: %s", state, exc)
        return False
    return True


def listen_fds(environ: MutableMapping[str, str] = os.environ,
               unset: bool = True) -> Optional[Activation]:
    """The inherited listening sockets, keyed by address; None when not activated."""
    try:
        pid, count = int(environ.get("LISTEN_PID", "")), int(environ.get("LISTEN_FDS", ""))
    except ValueError:
        return None
    if pid != os.getpid() or count < 1:
        return None       # meant for another process (or nothing passed)
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    if unset:             # sessions and anything we exec must not see them
        for name in ACTIVATION_VARS:
            environ.pop(name, None)
    activation = Activation({}, {})
    for index, fd in enumerate(range(LISTEN_FDS_START, LISTEN_FDS_START + count)):
        sock = _adopt(fd)
        named = names[index] if index < len(names) else ""
        bound = activation.metrics if named == METRICS_FD_NAME else activation.clients
        host, port = sock.getsockname()[:2]
        bound.setdefault((host, port), []).append(sock)
    if not activation.clients:
        # Only ftpd-metrics.socket started us: ftpd.socket is stopped, and
        # with it the service (nothing is to listen for clients).
        raise ActivationError("LISTEN_FDS: only metrics sockets were passed, none for "
                              "clients: start ftpd.socket (systemctl start ftpd.socket)")
    return activation


def _adopt(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ActivationError(f"LISTEN_FDS: fd {fd} is not a socket: {exc.strerror}") from exc
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if sock.family not in (socket.AF_INET, socket.AF_INET6) \
            or sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()
        raise ActivationError(f"LISTEN_FDS: fd {fd} is not a listening TCP socket "
                              "(the socket unit needs ListenStream= and Accept=no)")
    os.set_inheritable(fd, False)
    sock.setblocking(False)
    return sock


def listen_ignored(configured: Iterable[Address], explicit: bool,
                   inherited: Iterable[Address]) -> Tuple[int, str]:
    """The start line under socket activation (level, text): the sockets
    that serve, and that [server] listen does not. A warning when the config
    asks for other addresses than the socket unit gives."""
    wanted, used = tuple(configured), tuple(inherited)
    level = logging.WARNING if explicit and set(wanted) != set(used) else logging.INFO
    text = (f"socket activation: serving on {', '.join(map(format_address, used))} "
            f"from systemd; [server] listen ({', '.join(map(format_address, wanted))}) "
            "is ignored: the socket unit's ListenStream= decides")
    return level, text


def metrics_listen_ignored(configured: Optional[Address], inherited: Iterable[Address]) -> str:
    """The start line when ftpd-metrics.socket passes the metrics' sockets."""
    text = f"socket activation: metrics on http://{', '.join(map(format_address, inherited))}" \
        "/metrics from systemd (ftpd-metrics.socket)"
    if configured is not None:
        text += f"; [metrics] listen ({format_address(configured)}) is ignored"
    return text
