"""How each verb's fields become its handler's arguments.

Fields arrive as raw bytes; these functions decode and validate them with
the wire codec (ProtocolError 400 for anything malformed), so a handler
only ever sees a validated path, number or digest.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from ftpd import protocol

STREAMED = "-"        # P's digest field: the digest follows the bytes as a line
MAX_MTIME = 2 ** 63 // 10 ** 9 - 1     # the latest time the kernel takes in nanoseconds


def no_args(args: Sequence[bytes]) -> Tuple[Any, ...]:
    return ()


def path_arg(args: Sequence[bytes]) -> Tuple[Any, ...]:
    return (protocol.decode_path(args[0]),)


def optional_path(args: Sequence[bytes]) -> Tuple[Any, ...]:
    return (protocol.decode_path(args[0]),) if args else ((),)


def two_paths(args: Sequence[bytes]) -> Tuple[Any, ...]:
    return protocol.decode_path(args[0]), protocol.decode_path(args[1])


def get_args(args: Sequence[bytes]) -> Tuple[Any, ...]:
    offset = protocol.parse_number(args[1]) if len(args) > 1 else 0
    return protocol.decode_path(args[0]), offset


def put_args(args: Sequence[bytes]) -> Tuple[Any, ...]:
    """P path size [digest|- [mtime]] -> (path, size, digest or STREAMED or None, mtime)."""
    digest: Optional[str] = None
    if len(args) > 2:
        digest = STREAMED if args[2] == STREAMED.encode() else protocol.parse_digest(args[2])
    mtime = protocol.parse_number(args[3]) if len(args) > 3 else None
    if mtime is not None and mtime > MAX_MTIME:
        raise protocol.ProtocolError(protocol.BAD_REQUEST, "mtime out of range")
    return protocol.decode_path(args[0]), protocol.parse_number(args[1]), digest, mtime


def continue_args(args: Sequence[bytes]) -> Tuple[Any, ...]:
    """C path size sha256 [mtime]: P's fields, the digest required (it binds the partial)."""
    if args[2] == STREAMED.encode():
        raise protocol.ProtocolError(protocol.BAD_REQUEST, "C needs the sha256 announced")
    return put_args(args)


def auth_args(args: Sequence[bytes]) -> Tuple[Any, ...]:
    return protocol.decode_text(args[0]), protocol.decode_text(args[1])
