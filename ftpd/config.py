"""Settings: one table (section, key, type, default, help) -> a frozen Config.

etc/ftpd.conf, `ftpd --help` and the README's reference all agree with
SETTINGS; tests hold them to it. Every error names file, section and key.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional, Tuple, Union

from ftpd.protocol import DEFAULT_PORT
from ftpd.sizes import parse_size

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]   # a trusted proxy's range

SYSTEM_CONFIG = "/etc/ftpd/ftpd.conf"
EX_CONFIG = os.EX_CONFIG      # 78: sysexits' configuration error
# A host and port, as the settings give them and as sockets report them.
Address = Tuple[str, int]


class ConfigError(Exception):
    def __init__(self, problem: str, source: str = "<built-in>",
                 section: Optional[str] = None, key: Optional[str] = None,
                 line: Optional[int] = None):
        where = source if line is None else f"{source}:{line}"
        place = " ".join(part for part in (section and f"[{section}]", key) if part)
        if place:
            where += f": {place}"
        super().__init__(f"{where}: {problem}")
        self.source, self.section, self.key, self.problem = source, section, key, problem


# --- value parsers: str -> value, raising ValueError with a plain reason ---

def optional_size(text: str) -> Optional[int]:
    """A size, or empty for "not set here" (a more general setting decides)."""
    return parse_size(text) if text.strip() else None


def parse_bool(text: str) -> bool:
    value = configparser.ConfigParser.BOOLEAN_STATES.get(text.strip().lower())
    if value is None:
        raise ValueError(f"{text!r} is not yes or no")
    return value


def parse_address(text: str) -> Address:
    text = text.strip()
    match = re.fullmatch(r"\[([0-9A-Fa-f:.%\w]+)\]:(\d+)|([^:\[\]\s]+):(\d+)", text)
    if not match:
        raise ValueError(f"{text!r} is not host:port (IPv6 as [::1]:8021)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return host, port


def optional_address(text: str) -> Optional[Address]:
    """One host:port, or empty for off."""
    return parse_address(text) if text.strip() else None


def parse_listen(text: str) -> Tuple[Address, ...]:
    addresses = tuple(parse_address(part) for part in text.split(",") if part.strip())
    if not addresses:
        raise ValueError("at least one host:port is needed")
    return addresses


def integer(minimum: int, maximum: int = 2 ** 31) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"{value} is out of range {minimum}-{maximum}")
        return value
    return parse


def seconds(minimum: float = 0.0) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a number of seconds") from None
        if not value >= minimum or value != value or value == float("inf"):
            raise ValueError(f"{text.strip()} must be a finite number >= {minimum:g}")
        return value
    return parse


def choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return value
    return parse


def parse_proxies(text: str) -> Tuple[Network, ...]:
    from ftpd.server.proxy import parse_networks
    return parse_networks(text)


def optional_path(text: str) -> str:
    """A file path, made absolute (daemons chdir to /); empty means none."""
    path = text.strip()
    return os.path.abspath(path) if path else ""


def optional_account(text: str) -> str:
    """A user or group name (or numeric id), or empty for none."""
    name = text.strip()
    if name and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?", name):
        raise ValueError(f"{name!r} is not a user or group name")
    return name


def directory_path(text: str) -> str:
    path = text.strip()
    if not path:
        raise ValueError("a directory path is needed")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{path!r} exists and is not a directory")
    return os.path.abspath(path)


def home_path(text: str) -> str:
    """A home below the library: a relative path whose components are valid
    FTPD/1 names (so it can never climb out); empty means the whole library."""
    from ftpd.protocol import ProtocolError, parse_path
    path = text.strip().strip("/")
    if not path:
        return ""
    try:
        return "/".join(parse_path(path))
    except ProtocolError as exc:
        raise ValueError(f"{text.strip()!r} is not a path below the library ({exc.text})") from None


# --- the table -------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    default: str           # as written in the file, parsed like any other value
    parse: Callable[[str], Any]
    help: str


SETTINGS: Tuple[Setting, ...] = (
    Setting("server", "listen", f"127.0.0.1:{DEFAULT_PORT}", parse_listen,
            "Addresses to listen on, comma-separated host:port; IPv6 as [::1]:8021."),
    Setting("server", "root", "./library", directory_path,
            "The file library: the root of the tree clients see; must exist (only the "
            "default ./library is created)."),
    Setting("server", "max_clients", "200", integer(1, 100000),
            "Sessions served at once; more are refused with ERR 421 before any fork."),
    Setting("server", "max_clients_per_ip", "50", integer(1, 100000),
            "Sessions served at once for one client address."),
    Setting("server", "idle_timeout", "300", seconds(0.01),
            "Seconds a whole request line may take to arrive (ERR 408, then close)."),
    Setting("server", "first_request_timeout", "30", seconds(0.01),
            "Seconds from connect to a whole first request (ERR 408, then close); past "
            "max_clients*0.6 silent sessions, new ones are refused at random (ERR 421)."),
    Setting("server", "data_timeout", "60", seconds(0.01),
            "Seconds a transfer may stall without progress before it is dropped."),
    Setting("server", "backlog", "1024", integer(1, 65535),
            "Listen backlog: how many connects may queue during a burst."),
    Setting("server", "shutdown_timeout", "30", seconds(0),
            "On SIGTERM, seconds transfers may run on before sessions are killed."),
    Setting("server", "proxy_protocol", "no", parse_bool,
            "Expect a PROXY v1/v2 header (HAProxy send-proxy) before each session."),
    Setting("server", "trusted_proxies", "127.0.0.1, ::1", parse_proxies,
            "Addresses/CIDRs allowed to send a PROXY header; others are cut off."),
    Setting("server", "pidfile", "", optional_path,
            "Write the server's pid here once listening (ftpd status finds it); empty: none."),
    Setting("server", "user", "", optional_account,
            "Started as root: each session drops to this user (supplementary groups cleared)."),
    Setting("server", "group", "", optional_account,
            "Group for sessions; empty means the primary group of [server] user."),
    Setting("server", "chroot", "yes", parse_bool,
            "Started as root: each session chroots into the library before reading a byte."),
    Setting("server", "seccomp", "yes", choice("yes", "no", "log"),
            "System-call filter per session: yes kills a session on a call off the list, "
            "log only logs it (fork mode only)."),
    Setting("server", "concurrency", "fork", choice("fork", "thread"),
            "Session model: fork (a process per client) or thread; needs a restart."),
    Setting("files", "max_file_size", "0", parse_size,
            "Largest upload accepted (K, M, G, T suffixes); 0 means unlimited."),
    Setting("files", "min_free_space", "64M", parse_size,
            "Free space an upload must leave on the library's file system."),
    Setting("files", "overwrite", "yes", parse_bool,
            "no makes a drop box: nothing stored is replaced, deleted or renamed (ERR 403)."),
    Setting("files", "fsync", "yes", parse_bool,
            "Make each upload durable (fsync file and directory) before replying."),
    Setting("files", "max_depth", "32", integer(1, 1000),
            "Most directory levels a path may have (a deeper M or P gets ERR 400)."),
    Setting("files", "max_entries_per_listing", "100000", integer(1, 100000000),
            "Most rows one L answers; a bigger directory gets ERR 413 instead."),
    Setting("files", "partial_upload_ttl", "3600", seconds(0),
            "Seconds an interrupted resumable upload (C) is kept for resuming; 0: none."),
    Setting("files", "max_rate", "0", parse_size,
            "Bytes per second per session, both directions (K, M, G); 0 means unlimited."),
    Setting("access", "anonymous", "write", choice("none", "read", "write"),
            "What a client that has not logged in may do: none, read or write."),
    Setting("access", "anonymous_home", "", home_path,
            "Directory, relative to the library, that anonymous sessions see; empty: all."),
    Setting("log", "level", "info", choice("debug", "info", "warning", "error"),
            "Least severe messages logged: debug, info, warning or error."),
    Setting("log", "file", "", optional_path,
            "Log file (reopened on SIGUSR1); empty: stderr, or syslog with --daemon."),
    Setting("log", "transfer_log", "", optional_path,
            "One line per transfer and per M, D, R (reopened on SIGUSR1); empty: none."),
    Setting("log", "transfer_format", "ftpd", choice("ftpd", "xferlog"),
            "Transfer log lines: ftpd, or xferlog (wu-ftpd's, for xferstats: G, P, C only; "
            "M, D, R are left out, xferlog has no such records)."),
    Setting("access", "anonymous_max_rate", "", optional_size,
            "Bytes per second for anonymous sessions; empty: [files] max_rate; 0: unlimited."),
    Setting("access", "users_file", "", optional_path,
            "Accounts file written by `ftpd passwd` (scrypt hashes); empty: no accounts."),
    Setting("access", "login_failure_delay", "1", seconds(0),
            "Seconds before a failed login (A) is answered."),
    Setting("access", "max_login_failures", "3", integer(1, 1000),
            "Failed logins after which the session gets ERR 421 and is closed."),
    Setting("tls", "certificate", "", optional_path,
            "PEM certificate (chain); with private_key the listener speaks TLS only."),
    Setting("tls", "private_key", "", optional_path,
            "PEM private key matching [tls] certificate."),
    Setting("tls", "handshake_timeout", "10", seconds(0.01),
            "Seconds a client has to complete the TLS handshake."),
    Setting("metrics", "listen", "", optional_address,
            "Serve Prometheus metrics at http://host:port/metrics (one host:port, "
            "e.g. 127.0.0.1:9821); empty: off. Ignored when systemd passes "
            "ftpd-metrics.socket's socket."),
)

SECTIONS: Tuple[str, ...] = tuple(dict.fromkeys(s.section for s in SETTINGS))


# --- the typed config: one field per row of SETTINGS (a test holds them equal);
# defaults and help live only in the table.

@dataclass(frozen=True)
class ServerSettings:
    listen: Tuple[Address, ...]
    root: str
    max_clients: int
    max_clients_per_ip: int
    idle_timeout: float
    first_request_timeout: float
    data_timeout: float
    backlog: int
    shutdown_timeout: float
    proxy_protocol: bool
    trusted_proxies: Tuple[Network, ...]
    pidfile: str
    user: str
    group: str
    chroot: bool
    seccomp: str
    concurrency: str


@dataclass(frozen=True)
class FilesSettings:
    max_file_size: int
    min_free_space: int
    overwrite: bool
    fsync: bool
    max_depth: int
    max_entries_per_listing: int
    partial_upload_ttl: float
    max_rate: int


@dataclass(frozen=True)
class AccessSettings:
    anonymous: str
    anonymous_home: str
    anonymous_max_rate: Optional[int]
    users_file: str
    login_failure_delay: float
    max_login_failures: int


@dataclass(frozen=True)
class LogSettings:
    level: str
    file: str
    transfer_log: str
    transfer_format: str


@dataclass(frozen=True)
class TlsSettings:
    certificate: str
    private_key: str
    handshake_timeout: float


@dataclass(frozen=True)
class MetricsSettings:
    listen: Optional[Address]


@dataclass(frozen=True)
class Config:
    server: ServerSettings
    files: FilesSettings
    access: AccessSettings
    log: LogSettings
    tls: TlsSettings
    metrics: MetricsSettings
    source: str = "<built-in>"
    # Which settings were given (in the file, on the command line) rather
    # than defaulted: the default root may be created, a configured one not.
    from_file: FrozenSet[Tuple[str, str]] = frozenset()
    from_command_line: FrozenSet[Tuple[str, str]] = frozenset()

    def origin(self, section: str, key: str) -> Optional[str]:
        """Where a setting came from, as errors name it; None for the default."""
        if (section, key) in self.from_command_line:
            return "command line"
        return self.source if (section, key) in self.from_file else None


SECTION_TYPES: Dict[str, type] = {
    "server": ServerSettings, "files": FilesSettings, "access": AccessSettings,
    "log": LogSettings, "tls": TlsSettings, "metrics": MetricsSettings,
}


# --- loading ---------------------------------------------------------------

def locate(explicit: Optional[str], environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """-c PATH, else $FTPD_CONFIG, else /etc/ftpd/ftpd.conf if it exists."""
    if explicit:
        return explicit
    if environ.get("FTPD_CONFIG"):
        return environ["FTPD_CONFIG"]
    return SYSTEM_CONFIG if os.path.exists(SYSTEM_CONFIG) else None


def build(values: Mapping[Tuple[str, str], str], source: str = "<built-in>",
          overrides: Optional[Mapping[Tuple[str, str], str]] = None) -> Config:
    """Parse every setting (file value, else default) into a frozen Config."""
    overrides = dict(overrides or {})
    sections: Dict[str, Dict[str, Any]] = {section: {} for section in SECTIONS}
    for setting in SETTINGS:
        ident = (setting.section, setting.key)
        origin = "command line" if ident in overrides else source
        raw = overrides.get(ident, values.get(ident, setting.default))
        try:
            sections[setting.section][setting.key] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(str(exc), origin, setting.section, setting.key) from exc
    return Config(source=source, from_file=frozenset(values),
                  from_command_line=frozenset(overrides),
                  **{name: SECTION_TYPES[name](**fields) for name, fields in sections.items()})


def load(path: Optional[str] = None, overrides: Optional[Mapping[Tuple[str, str], str]] = None,
         environ: Mapping[str, str] = os.environ) -> Config:
    located = locate(path, environ)
    if located is None:
        return build({}, overrides=overrides)
    from ftpd.conffile import read_file
    return build(read_file(located), located, overrides)


def reference_markdown() -> str:
    """The config reference table, as the README carries it."""
    lines = ["| section | key | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        lines.append(f"| `[{s.section}]` | `{s.key}` | `{s.default}` | {s.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
