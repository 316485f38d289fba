"""Accounts: the users file, scrypt password hashes, and `ftpd passwd`.

One record per line, `user:access:hash[:home[:limits]]`, where hash is a
PHC-style string `$scrypt$ln=15,r=8,p=1$<salt>$<key>` (unpadded base64),
home, when present, is the account's directory below the library,
percent-encoded like a path on the wire (no home or an empty one: the whole
library), and limits, when present, is `max_rate=N,quota=N,max_files=N`
(bytes per second, bytes, files; any subset, 0 = unlimited; no max_rate:
the server's default). Records of 3 or 4 fields, as older versions wrote
them, load unchanged. The cost parameters
live in each record, so raising DEFAULT_COST later leaves old records
working until their password is next set. Blank lines and `#` comments are
kept as they are when `ftpd passwd` rewrites the file.

The parent loads the file (it may be readable by root only) and re-reads it
before a fork when it changed; children only verify against memory, which
also works after they have chrooted into the library.
"""

from __future__ import annotations

import base64
import fcntl
import getpass
import hashlib
import hmac
import os
import re
import secrets
import sys
from dataclasses import dataclass, replace
from typing import Dict, List, NamedTuple, Optional, TextIO, Tuple

from ftpd import fileutil, protocol
from ftpd.config import ConfigError, home_path

ACCESS = ("read", "write")
USER_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}\Z")
MAX_PASSWORD = 1024          # bytes; a request line is 4096 bytes at most anyway
SALT_BYTES = 16
KEY_BYTES = 32


@dataclass(frozen=True)
class Cost:
    log2_n: int
    r: int
    p: int

    def text(self) -> str:
        return f"ln={self.log2_n},r={self.r},p={self.p}"


# 32 MiB and roughly 0.1 s per check: a login costs the attacker what it costs us.
DEFAULT_COST = Cost(15, 8, 1)


class AuthError(Exception):
    """Bad input to `ftpd passwd` (unknown user, mismatched passwords...)."""


@dataclass(frozen=True)
class Limits:
    """An account's share: None max_rate defers to [files] max_rate; 0 is unlimited."""
    max_rate: Optional[int] = None
    quota: int = 0
    max_files: int = 0

    def text(self) -> str:
        fields = {"max_rate": self.max_rate, "quota": self.quota, "max_files": self.max_files}
        return ",".join(f"{key}={value}" for key, value in fields.items()
                        if value is not None and (value or key == "max_rate"))


NO_LIMITS = Limits()


class Login(NamedTuple):
    """What a correct login gives the session."""
    access: str
    home: str              # below the library, "" for all of it
    limits: Limits = NO_LIMITS


@dataclass(frozen=True)
class Record:
    user: str
    access: str
    cost: Cost
    salt: bytes
    key: bytes
    home: str = ""
    limits: Limits = NO_LIMITS

    def line(self) -> str:
        home = protocol.encode_path(self.home) if self.home else ""
        limits = self.limits.text()
        if limits:      # a ':' in the home is escaped so the limits field stays last
            home = f"{home.replace(':', '%3A')}:{limits}"
        home = f":{home}" if home else ""
        return (f"{self.user}:{self.access}:$scrypt${self.cost.text()}${_b64(self.salt)}"
                f"${_b64(self.key)}{home}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def derive(password: str, salt: bytes, cost: Cost) -> bytes:
    n = 1 << cost.log2_n
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n,
                          r=cost.r, p=cost.p, dklen=KEY_BYTES,
                          maxmem=256 * n * cost.r + (1 << 20))


def make_record(user: str, access: str, password: str, cost: Cost = DEFAULT_COST,
                home: str = "", limits: Limits = NO_LIMITS) -> Record:
    salt = secrets.token_bytes(SALT_BYTES)
    return Record(user, access, cost, salt, derive(password, salt, cost), home, limits)


def check_home(text: str) -> str:
    """A home as `ftpd passwd --home` takes it: a path below the library
    ("" or "/" for all of it); AuthError when it could climb out."""
    try:
        return home_path(text)
    except ValueError as exc:
        raise AuthError(f"invalid home: {exc}") from None


def verify(record: Record, password: str) -> bool:
    return hmac.compare_digest(derive(password, record.salt, record.cost), record.key)


_HASH = re.compile(r"\A\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,2})"
                   r"\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)\Z")


def parse_record(line: str) -> Record:
    """One non-comment line -> Record; ValueError with a plain reason."""
    parts = line.split(":", 3)
    if len(parts) not in (3, 4):
        raise ValueError("expected user:access:hash[:home[:limits]]")
    user, access, text = parts[:3]
    home, limits = _split_home(parts[3]) if len(parts) == 4 else ("", NO_LIMITS)
    if not USER_RE.match(user):
        raise ValueError(f"invalid user name {user!r}")
    if access not in ACCESS:
        raise ValueError(f"access must be read or write, not {access!r}")
    match = _HASH.match(text)
    if not match:
        raise ValueError("hash is not $scrypt$ln=N,r=R,p=P$salt$key")
    cost = Cost(*(int(match.group(i)) for i in (1, 2, 3)))
    if not (1 <= cost.log2_n <= 24 and cost.r >= 1 and cost.p >= 1):
        raise ValueError("scrypt parameters out of range")
    return Record(user, access, cost, _unb64(match.group(4)), _unb64(match.group(5)), home,
                  limits)


_LIMITS = re.compile(r"\A(?:(?:max_rate|quota|max_files)=\d{1,19},?)*\Z")


def _split_home(rest: str) -> Tuple[str, Limits]:
    """`home[:limits]`: older records wrote a home's ':' unescaped, so only a
    last field that reads as limits is taken for them."""
    head, _, last = rest.rpartition(":")
    if _ and _LIMITS.match(last):
        return (_parse_home(head) if head else ""), parse_limits(last)
    return (_parse_home(rest) if rest else ""), NO_LIMITS


def parse_limits(field: str) -> Limits:
    """`max_rate=N,quota=N,max_files=N` (any subset) -> Limits."""
    values: Dict[str, int] = {}
    for item in filter(None, field.split(",")):
        key, _, number = item.partition("=")
        if key not in ("max_rate", "quota", "max_files") or key in values:
            raise ValueError(f"unknown or repeated limit {key!r}")
        if not number.isdigit() or len(number) > 19:
            raise ValueError(f"limit {key} must be a whole number, not {number!r}")
        values[key] = int(number)
    return Limits(**values)


def _parse_home(field: str) -> str:
    try:
        return "/".join(protocol.decode_path(field.encode("utf-8")))
    except (protocol.ProtocolError, UnicodeEncodeError):
        raise ValueError(f"home {field!r} is not a path below the library") from None


def read_lines(path: str) -> List[str]:
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


def parse_lines(lines: List[str]) -> Dict[str, Record]:
    """All records; ValueError naming the line of the first bad one."""
    records: Dict[str, Record] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            record = parse_record(line)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from exc
        if record.user in records:
            raise ValueError(f"line {number}: user {record.user} appears twice")
        records[record.user] = record
    return records


# --- the server side ------------------------------------------------------------

class Accounts:
    """The users the server knows; callable as the session's authenticate hook."""

    def __init__(self, path: str = "", source: str = "<built-in>"):
        self.path = path
        self.source = source
        self.records: Dict[str, Record] = {}
        self.stamp: Optional[Tuple[int, int, int]] = None
        # Unknown users are checked against this, so they cost one scrypt run
        # like a wrong password does; its key matches no password.
        self.dummy = Record("", "read", DEFAULT_COST, secrets.token_bytes(SALT_BYTES),
                            secrets.token_bytes(KEY_BYTES))
        if path:
            self.load()

    def _stat(self) -> Tuple[int, int, int]:
        info = os.stat(self.path)
        return info.st_ino, info.st_size, info.st_mtime_ns

    def load(self) -> None:
        """Read the file now; ConfigError names it (and the line) when unusable."""
        try:
            stamp = self._stat()
            records = parse_lines(read_lines(self.path))
        except FileNotFoundError:
            # A fresh install: no accounts until `ftpd passwd` creates the file,
            # which refresh() then picks up without a reload.
            self.records, self.stamp = {}, None
            return
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(f"users file {self.path}: {reason}", self.source,
                              "access", "users_file") from exc
        self.records, self.stamp = records, stamp

    def refresh(self) -> Optional[str]:
        """Reload when the file changed (`ftpd passwd` needs no restart).
        Returns a problem to log when the new file is unusable (old one stays)."""
        if not self.path:
            return None
        try:
            if self._stat() == self.stamp:
                return None
            self.load()
        except FileNotFoundError:
            self.records, self.stamp = {}, None
        except (OSError, ConfigError) as exc:
            return f"users file not reloaded, keeping the previous accounts: {exc}"
        return None

    def __call__(self, user: str, password: str) -> Optional[Login]:
        """Access and home of a correct login, else None (same cost either way)."""
        record = self.records.get(user)
        good = verify(record or self.dummy, password[:MAX_PASSWORD])
        if not good or record is None:
            return None
        return Login(record.access, record.home, record.limits)



# --- `ftpd passwd` -------------------------------------------------------------

def check_user_name(user: str) -> str:
    if not USER_RE.match(user):
        raise AuthError(f"invalid user name {user!r}: use 1-64 of A-Z a-z 0-9 _ . @ - "
                        "(not starting with . @ or -)")
    return user


def read_password(stdin: TextIO = sys.stdin) -> str:
    """Twice without echo from a terminal, or one line from a pipe."""
    if stdin.isatty():
        try:
            first = getpass.getpass("New password: ")
            again = getpass.getpass("Repeat password: ")
        except EOFError:
            raise AuthError("no password given, nothing changed") from None
        if again != first:
            raise AuthError("passwords do not match, nothing changed")
        password = first
    else:
        password = stdin.readline()
        password = password[:-1] if password.endswith("\n") else password
        password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise AuthError("empty password, nothing changed")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD:
        raise AuthError(f"password longer than {MAX_PASSWORD} bytes")
    return password


def _existing_lines(path: str) -> List[str]:
    try:
        lines = read_lines(path)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        parse_lines(lines)           # refuse to rewrite a file we cannot read
    except ValueError as exc:
        raise AuthError(f"{path}: {exc}; fix it by hand first") from exc
    return lines


def set_password(path: str, user: str, password: Optional[str], access: Optional[str],
                 home: Optional[str] = None, limits: Optional[Dict[str, int]] = None) -> Login:
    """Create or update `user`; keeps its access, home, limits and (when
    `password` is None, for an existing account) password unless given."""
    check_user_name(user)
    home = None if home is None else check_home(home)
    with _locked(path):
        lines = _existing_lines(path)
        index, old = _find(lines, user)
        access = access or (old.access if old else "read")
        home = home if home is not None else (old.home if old else "")
        kept = replace(old.limits if old else NO_LIMITS, **(limits or {}))
        if password is not None:
            record = make_record(user, access, password, home=home, limits=kept)
        elif old is not None:
            record = replace(old, access=access, home=home, limits=kept)
        else:
            raise AuthError(f"no such user {user!r} in {path}: a new account needs a password")
        line = record.line()
        if index is None:
            lines.append(line)
        else:
            lines[index] = line
        write_atomically(path, lines)
    return Login(access, home, kept)


def find_user(path: str, user: str) -> Optional[Record]:
    """The account's record as `passwd` would edit it, None when it has none."""
    return _find(_existing_lines(path), user)[1]


def list_accounts(path: str) -> List[Record]:
    return list(parse_lines(_existing_lines(path)).values())


def delete_user(path: str, user: str) -> None:
    with _locked(path):
        lines = _existing_lines(path)
        index, _ = _find(lines, user)
        if index is None:
            raise AuthError(f"no such user {user!r} in {path}")
        del lines[index]
        write_atomically(path, lines)


def _find(lines: List[str], user: str) -> Tuple[Optional[int], Optional[Record]]:
    for index, line in enumerate(lines):
        if line.split(":", 1)[0] == user and not line.lstrip().startswith("#"):
            return index, parse_record(line)
    return None, None


class _locked:
    """flock on the file's directory: concurrent `passwd` runs never lose an edit
    (the file itself is replaced by rename, so it cannot carry the lock)."""

    def __init__(self, path: str):
        self.directory = os.path.dirname(os.path.abspath(path))

    def __enter__(self) -> None:
        self.fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)


def write_atomically(path: str, lines: List[str]) -> None:
    """The accounts file, replaced whole (mode 0600 from creation)."""
    fileutil.write_atomically(path, "".join(line + "\n" for line in lines).encode("utf-8"),
                              0o600)
