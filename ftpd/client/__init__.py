"""The Python client API for FTPD/1 (used by ftpc and the tests).

    with Client("127.0.0.1", 8021) as c:
        c.mkdir("photos")
        c.put("local.bin", "photos/remote.bin", digest="stream")
        for dirpath, dirnames, files in c.walk():
            for entry in files: ...
        c.rename("photos/remote.bin", "photos/kept.bin")
        c.get("photos/kept.bin", "copy.bin")
        c.delete("photos/kept.bin")

Every refusal of the server raises ServerError with its code (404 missing,
409 conflict, 403 forbidden, ...); the session stays usable after it.
"""

from __future__ import annotations

from ftpd.client.connection import MAX_LISTING_ROWS, Progress, Writer, parse_hostport
from ftpd.client.errors import (ClientError, ConnectionLost, IntegrityError, LocalError,
                                ProtocolViolation, ServerError)
from ftpd.client.pipeline import Pipelines, Upload, UploadOutcome
from ftpd.client.transfers import DigestMode
from ftpd.client.tree import WalkStep, TreeOps, join_path
from ftpd.protocol import Entry

__all__ = ["Client", "ClientError", "ConnectionLost", "DigestMode", "Entry", "IntegrityError",
           "LocalError", "MAX_LISTING_ROWS", "Progress", "ProtocolViolation", "ServerError",
           "Upload", "UploadOutcome", "WalkStep", "Writer", "join_path", "parse_hostport"]


class Client(TreeOps, Pipelines):
    """One FTPD/1 session: connects and reads the greeting on creation; one
    method per verb, each raising ServerError for an ERR reply (the session
    goes on) and ConnectionLost when the connection is gone."""
