"""What ftpd.client raises: one hierarchy under ClientError (also importable
from ftpd.client)."""

from __future__ import annotations

from ftpd.protocol import CodedError


class ClientError(Exception):
    """Base of everything the client raises."""


class ServerError(ClientError, CodedError):
    """The server answered ERR <code> <text>."""

    prefix = "ERR "


class ConnectionLost(ClientError):
    """Could not connect, or the connection broke or timed out."""


class ProtocolViolation(ConnectionLost):
    """The peer does not speak FTPD/1: another kind of server, or a reply
    that breaks the protocol. The connection has been closed."""


class LocalError(ClientError):
    """A local problem: a source that cannot be read, a destination that
    cannot be written, a bad argument. Raised before the request is sent;
    if it happens while a reply is in flight the connection is closed, so
    the session never falls out of step."""


class IntegrityError(ClientError):
    """The bytes received do not match the size and SHA-256 the server
    reports for the file (nothing was kept by `Client.get`)."""
