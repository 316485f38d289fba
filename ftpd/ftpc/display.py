"""What ftpc prints: sizes, listings and errors in plain words."""

from __future__ import annotations

import json
import time
from typing import Iterable, List, Optional, Sequence

from ftpd import protocol
from ftpd.client import Entry, ServerError

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")

# What each refusal means for the person at the keyboard (protocol.md §2).
HINTS = {
    protocol.BAD_REQUEST: "the server did not accept the request",
    protocol.AUTH_REQUIRED: "log in with a valid user and password (login USER, or ftpc -u USER)",
    protocol.FORBIDDEN: "this account or server does not allow it",
    protocol.NOT_FOUND: "list the files to check the name",
    protocol.CONFLICT: "the name is taken, or is a directory where a file is needed",
    protocol.TOO_LARGE: "the file is larger than the server accepts",
    protocol.BAD_OFFSET: "the local partial file is longer than the remote file",
    protocol.UNAVAILABLE: "the server cannot take this session now; try again later",
    protocol.TIMEOUT: "the session was idle too long",
    protocol.DIGEST_MISMATCH: "the data was damaged on the way; nothing was stored",
    protocol.INTERNAL: "the server hit an internal error",
    protocol.NO_SPACE: "the server's disk is full; nothing was stored",
}


def shown(text: str) -> str:
    """Text the server chose, made safe for a terminal: every character that
    is not printable (C0 and C1 controls such as ESC and CSI, DEL, line
    breaks, bidirectional overrides) is written as its Python escape, so a
    server can neither colour, move, retitle nor forge lines of the screen."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def terminal_lines(text: str) -> str:
    """The last guard on what ftpc prints: each line made safe by shown(),
    the line breaks ftpc itself puts between them kept."""
    return "\n".join(shown(line) for line in text.split("\n"))


def human_size(size: int) -> str:
    value = float(size)
    for unit in UNITS:
        if value < 1024 or unit == UNITS[-1]:
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def local_time(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def plural(count: int, noun: str) -> str:
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("y") else f"{count} {noun}s"


def listing_table(entries: Iterable[Entry]) -> List[str]:
    """`ls -l`-like lines: size, local time, name (last, so spaces are fine);
    a directory shows `-` for its size and a `/` after its name."""
    rows = sorted(entries, key=lambda e: e.name)
    sizes = ["-" if e.size is None else human_size(e.size) for e in rows]
    width = max([len(s) for s in sizes] + [len("SIZE")])
    lines = [f"{'SIZE':>{width}}  {'MODIFIED':16}  NAME"]
    lines += [f"{size:>{width}}  {local_time(e.mtime)}  {shown(e.name)}{'/' if e.is_dir else ''}"
              for size, e in zip(sizes, rows, strict=True)]
    files = [e for e in rows if not e.is_dir]
    counts = [plural(len(files), "file")]
    if len(files) < len(rows):
        counts.append(plural(len(rows) - len(files), "directory"))
    total = sum(e.size or 0 for e in files)
    lines.append(f"{', '.join(counts)}, {human_size(total)} total")
    return lines


def listing_json(entries: Sequence[Entry]) -> str:
    """A directory is written as on the wire: size null, a '/' after its name;
    `type` says it in a word ("file" or "dir")."""
    return json.dumps([{"name": e.name + ("/" if e.is_dir else ""), "size": e.size,
                        "mtime": e.mtime, "type": "dir" if e.is_dir else "file"}
                       for e in sorted(entries, key=lambda e: e.name)],
                      indent=2)


def describe(error: ServerError, tried_login: bool = False) -> str:
    """One line a person understands, keeping the server's code and words.
    `tried_login`: a user and password were sent, so 401 means they were wrong."""
    hint = HINTS.get(error.code)
    if tried_login and error.code == protocol.AUTH_REQUIRED:
        hint = "the user name or password was not accepted"
    text = f"server refused: {shown(error.text)} (code {error.code})"
    return f"{text}; {hint}" if hint else text


def transfer_summary(verb: str, path: str, size: int, digest: Optional[str],
                     resumed_from: int = 0) -> str:
    check = f", sha256 {digest[:16]}... verified" if digest else ", not verified"
    resumed = f", resumed at byte {resumed_from}" if resumed_from else ""
    return f"{verb} {path} ({human_size(size)}{resumed}{check})"
