"""FTPD/1 wire codec: request parsing, reply formatting, names on the wire.

Pure functions over bytes and str; it knows nothing of sockets or files, so
the server and the client share it and it can be property-tested alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

PROTOCOL = "FTPD/1"
MAX_LINE = 4096            # bytes, including the LF
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4000
DEFAULT_PORT = 8021

BAD_REQUEST = 400
AUTH_REQUIRED = 401
FORBIDDEN = 403
NOT_FOUND = 404
TIMEOUT = 408
CONFLICT = 409
TOO_LARGE = 413
BAD_OFFSET = 416
UNAVAILABLE = 421
DIGEST_MISMATCH = 422
INTERNAL = 500
NO_SPACE = 507

CODES = {
    BAD_REQUEST: "bad request",
    AUTH_REQUIRED: "authentication required",
    FORBIDDEN: "forbidden",
    NOT_FOUND: "no such file",
    TIMEOUT: "idle timeout",
    CONFLICT: "conflict",
    TOO_LARGE: "file too large",
    BAD_OFFSET: "offset beyond end of file",
    UNAVAILABLE: "service unavailable",
    DIGEST_MISMATCH: "digest mismatch",
    INTERNAL: "internal server error",
    NO_SPACE: "not enough free space",
}

# Codes after which the server closes the connection (protocol.md §2).
CLOSING_CODES = frozenset({TIMEOUT, UNAVAILABLE})

_HEX64 = re.compile(rb"\A[0-9A-Fa-f]{64}\Z")
_DECIMAL = re.compile(rb"\A[0-9]{1,19}\Z")
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPED = re.compile(r"[\x00-\x20\x7f%]")    # what encode_name must escape
# name_problem in one regex for a name too short to exceed 255 bytes (a
# listing checks every entry): a leading '.', '/', controls, lone surrogates.
_BAD_SHORT_NAME = re.compile(r"\A\.|[/\x00-\x1f\x7f\ud800-\udfff]")
_MAX_NUMBER = 2 ** 63 - 1


class CodedError(Exception):
    """An FTPD/1 reply code and its text: the one shape of every error that
    can become (or came from) an `ERR <code> <text>` line. Each boundary
    subclasses it: ProtocolError here, the library's LibraryError, the
    client's ServerError."""

    prefix = ""

    def __init__(self, code: int, text: str):
        super().__init__(f"{self.prefix}{code} {text}")
        self.code = code
        self.text = text


class ProtocolError(CodedError):
    """A request or reply that breaks FTPD/1; carries the reply code."""


@dataclass(frozen=True)
class Request:
    verb: str
    args: Tuple[bytes, ...]


# --- names -----------------------------------------------------------------

def _must_escape(byte: int) -> bool:
    return byte <= 0x20 or byte == 0x7F or byte == 0x25  # controls, space, %


def encode_name(name: str) -> str:
    """Percent-encode a name for the wire; non-ASCII UTF-8 stays readable."""
    if not _ESCAPED.search(name):
        return name          # the common case, and a listing encodes every row's name
    out = bytearray()
    for byte in name.encode("utf-8", "surrogateescape"):
        if _must_escape(byte):
            out += b"%%%02X" % byte
        else:
            out.append(byte)
    return out.decode("utf-8", "surrogateescape")


def percent_decode(field: bytes) -> bytes:
    """Decode %XX escapes; a lone or malformed '%' is an error."""
    decoded = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), field)
    if b"%" in _PERCENT.sub(b"", field):
        raise ProtocolError(BAD_REQUEST, "invalid name")
    return decoded


def name_problem(name: str) -> Optional[str]:
    """Why `name` is not a valid library name, or None when it is."""
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if not 1 <= len(raw) <= MAX_NAME_BYTES:
        return "must be 1 to 255 bytes"
    if name.startswith("."):
        return "must not begin with '.'"
    if "/" in name:
        return "must not contain '/'"
    if _CONTROL.search(name):
        return "must not contain control characters"
    return None


def is_valid_name(name: str) -> bool:
    if 0 < len(name) <= 63:      # at most 4 UTF-8 bytes a character: no length check
        return not _BAD_SHORT_NAME.search(name)
    return name_problem(name) is None


def validate_name(name: str) -> str:
    if name_problem(name) is not None:
        raise ProtocolError(BAD_REQUEST, "invalid name")
    return name


def decode_name(field: bytes) -> str:
    """Wire field -> validated name (the only way a name enters the server)."""
    try:
        name = percent_decode(field).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(BAD_REQUEST, "invalid name") from exc
    return validate_name(name)


def parse_path(text: str) -> Tuple[str, ...]:
    """A decoded path -> its components, each a valid name (protocol.md §1):
    no leading or trailing '/', no empty, '.' or '..' component, at most
    MAX_PATH_BYTES. The only way a path enters the server."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ProtocolError(BAD_REQUEST, "invalid name") from exc
    if not 1 <= size <= MAX_PATH_BYTES:
        raise ProtocolError(BAD_REQUEST, "invalid name")
    parts = tuple(text.split("/"))
    for part in parts:
        validate_name(part)
    return parts


def decode_path(field: bytes) -> Tuple[str, ...]:
    """Wire field -> validated path components ('/' or '%2F' separate them)."""
    try:
        text = percent_decode(field).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(BAD_REQUEST, "invalid name") from exc
    return parse_path(text)


def encode_path(path: "str | Sequence[str]") -> str:
    """Path (a 'a/b' string or its components) -> wire field; '/' travels as is."""
    parts = path.split("/") if isinstance(path, str) else list(path)
    return "/".join(encode_name(part) for part in parts)


def decode_text(field: bytes) -> str:
    """Percent-decode a free field (user, password): any UTF-8 is allowed."""
    try:
        return percent_decode(field).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(BAD_REQUEST, "invalid field") from exc


def encode_text(text: str) -> str:
    return encode_name(text)


# --- numbers and digests -----------------------------------------------------

def parse_number(field: bytes) -> int:
    if not _DECIMAL.match(field) or int(field) > _MAX_NUMBER:
        raise ProtocolError(BAD_REQUEST, "bad number")
    return int(field)


def parse_digest(field: bytes) -> str:
    if not _HEX64.match(field):
        raise ProtocolError(BAD_REQUEST, "bad sha256 digest")
    return field.decode("ascii").lower()


# --- requests ----------------------------------------------------------------

def strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line


def parse_request(line: bytes) -> Request:
    """Split one request line (with or without its LF) into verb and fields."""
    body = strip_eol(line)
    if not body:
        raise ProtocolError(BAD_REQUEST, "empty request")
    fields = body.split(b" ")
    if any(not field for field in fields):
        raise ProtocolError(BAD_REQUEST, "fields must be separated by one space")
    verb = fields[0]
    if len(verb) != 1 or not verb.isalpha():
        raise ProtocolError(BAD_REQUEST, "unknown command")
    return Request(verb.decode("ascii").upper(), tuple(fields[1:]))


def format_request(verb: str, *fields: str) -> bytes:
    line = " ".join((verb,) + tuple(str(f) for f in fields)) + "\n"
    data = line.encode("utf-8", "surrogateescape")
    if len(data) > MAX_LINE:
        raise ProtocolError(BAD_REQUEST, "line too long")
    return data


# --- replies -----------------------------------------------------------------

def ok(*fields: object) -> bytes:
    return (" ".join(("OK",) + tuple(str(f) for f in fields)) + "\n").encode("utf-8")


def err(code: int, text: str) -> bytes:
    text = " ".join(text.split()) or CODES.get(code, "error")
    return f"ERR {code} {text}\n".encode("utf-8", "replace")


def parse_reply(line: bytes) -> List[str]:
    """Return the fields after OK, or raise ProtocolError for an ERR line."""
    text = strip_eol(line).decode("utf-8", "replace")
    if text == "OK" or text.startswith("OK "):
        return text.split(" ")[1:]
    if text.startswith("ERR "):
        parts = text.split(" ", 2)
        if len(parts) >= 2 and len(parts[1]) == 3 and parts[1].isdigit():
            return _raise_err(int(parts[1]), parts[2] if len(parts) > 2 else "")
    raise ProtocolError(INTERNAL, f"malformed reply: {text[:80]!r}")


def _raise_err(code: int, text: str) -> List[str]:
    raise ProtocolError(code, text or CODES.get(code, "error"))


@dataclass(frozen=True)
class Entry:
    """One row of a listing: a file (size in bytes) or a directory (size None)."""
    name: str
    size: Optional[int]
    mtime: int
    is_dir: bool = False


def format_entry(entry: Entry) -> bytes:
    """`<size> <mtime> <name>`, or `- <mtime> <name>/` for a directory."""
    return format_row(entry.name, None if entry.is_dir else entry.size, entry.mtime)


def format_row(name: str, size: Optional[int], mtime: int) -> bytes:
    """One listing row from plain values (size None: a directory); what a
    server sending 100,000 rows uses, without building an Entry for each."""
    if size is None:
        return f"- {mtime} {encode_name(name)}/\n".encode("utf-8", "surrogateescape")
    return f"{size} {mtime} {encode_name(name)}\n".encode("utf-8", "surrogateescape")


def parse_entry(line: bytes) -> Entry:
    """One listing row -> Entry. A directory's row has size `-` and a name
    ending in `/`: it comes back with is_dir True, size None and the name
    without the slash. ProtocolError(500) for a malformed row."""
    fields = strip_eol(line).split(b" ")
    if len(fields) != 3:
        raise ProtocolError(INTERNAL, "malformed listing line")
    size_field, mtime_field, name_field = fields
    try:
        if size_field == b"-":
            if not name_field.endswith(b"/"):
                raise ProtocolError(INTERNAL, "directory row without a trailing /")
            return Entry(decode_name(name_field[:-1]), None, parse_number(mtime_field), True)
        return Entry(decode_name(name_field), parse_number(size_field),
                     parse_number(mtime_field), False)
    except ProtocolError as exc:
        raise ProtocolError(INTERNAL, f"malformed listing line: {exc.text}") from exc
