"""The process titles ftpd writes and `ftpd status` reads: one format,
written and parsed here only (a round-trip test holds the two together).

    ftpd: master 127.0.0.1:8021
    ftpd: 10.0.0.7:51234 -: starting
    ftpd: 10.0.0.7:51234 anonymous /: G backup.tar 41% (1048576 bytes)
    ftpd: 10.0.0.8:40312 alice /users/alice: idle (0 bytes)

The user and the home travel percent-encoded, as on the wire, so neither
can hold a space or a colon that would confuse the parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ftpd import protocol

_SESSION = re.compile(
    r"\Aftpd: (?P<client>\S+) (?P<user>\S+)(?: (?P<home>/\S*))?: (?P<state>.*?)"
    r"(?: \((?P<bytes>\d+) bytes\))?\Z")
_MASTER = re.compile(r"\Aftpd: master (?P<listen>\S+)")


@dataclass(frozen=True)
class SessionTitle:
    client: str
    user: str             # "-" before the session serves
    home: str             # "-" before the session serves, else "/" or "/a/b"
    state: str
    bytes: int


def master(listen: str) -> str:
    return f"ftpd: master {listen}"


def starting(client: str) -> str:
    return f"ftpd: {client} -: starting"


def session(client: str, user: str, home: str, state: str, moved: int) -> str:
    """`home` is the session's root below the library ("" for all of it)."""
    where = "/" + protocol.encode_path(home) if home else "/"
    return f"ftpd: {client} {protocol.encode_text(user)} {where}: {state} ({moved} bytes)"


def parse_master(title: str) -> Optional[str]:
    """The listening addresses of a master's title, or None."""
    match = _MASTER.match(title)
    return match["listen"] if match else None


def parse_session(title: str) -> Optional[SessionTitle]:
    """A session's title, or None for a title of another kind."""
    match = _SESSION.match(title)
    if match is None or match["client"] == "master":
        return None
    try:
        user = protocol.decode_text(match["user"].encode())
    except protocol.ProtocolError:
        user = match["user"]
    home = match["home"]
    if home is not None and home != "/":
        try:
            home = "/" + "/".join(protocol.decode_path(home[1:].encode()))
        except protocol.ProtocolError:
            pass
    return SessionTitle(match["client"], user, home or "-", match["state"],
                        int(match["bytes"] or 0))
