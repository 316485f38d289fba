"""Implicit TLS: the parent builds the context, each child does its handshake.

The context is built (and the key read, possibly as root) before any fork,
so a broken certificate is a config error at start or reload, never a
surprise in a session. The handshake runs in the child with a deadline: a
client that connects and never speaks TLS costs its slot for that long and
nothing else.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Optional

from ftpd.config import Config, ConfigError

log = logging.getLogger("ftpd.session")


def server_context(config: Config) -> Optional[ssl.SSLContext]:
    """The [tls] settings as a server context, or None when TLS is off."""
    tls = config.tls
    if not tls.certificate and not tls.private_key:
        return None
    for key in ("certificate", "private_key"):
        if not getattr(tls, key):
            other = "private_key" if key == "certificate" else "certificate"
            raise ConfigError(f"is empty but [tls] {other} is set (both or neither)",
                              config.source, "tls", key)
        _check_readable(config, key)
    try:    # parse the certificate alone first, so an error names the right key
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=tls.certificate)
    except ssl.SSLError as exc:
        raise ConfigError(f"{tls.certificate} holds no usable certificate: {exc.reason or exc}",
                          config.source, "tls", "certificate") from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(tls.certificate, tls.private_key)
    except ssl.SSLError as exc:
        raise ConfigError(f"{tls.private_key} is not the key of {tls.certificate}: "
                          f"{exc.reason or exc}", config.source, "tls", "private_key") from exc
    return context


def _check_readable(config: Config, key: str) -> None:
    path = getattr(config.tls, key)
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", config.source,
                          "tls", key) from exc
    if b"-----BEGIN " not in head:
        raise ConfigError(f"{path} is not a PEM file", config.source, "tls", key)


def handshake(conn: socket.socket, context: ssl.SSLContext, timeout: float,
              peer: str) -> Optional[ssl.SSLSocket]:
    """Wrap `conn` as the server side; None (and a log line) when it fails."""
    conn.settimeout(timeout)
    try:
        wrapped = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else \
            getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        log.info("TLS handshake with %s failed: %s", peer, reason)
        return None
    cipher = wrapped.cipher()     # None only before a handshake
    log.debug("TLS %s %s with %s", wrapped.version(), cipher[0] if cipher else "-", peer)
    return wrapped
