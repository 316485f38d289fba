"""`ftpd status`: find the running server and list its sessions.

The server is found through `[server] pidfile`, else through the process
listening on a configured address. Each session retitles itself
(setproctitle), and that title, in the format of ftpd.server.titles, is all
this module reads.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional, Tuple

import psutil

from ftpd.server import accounts_report, daemon, titles
from ftpd.server.daemon import NotRunning

WILDCARD = ("", "*", "0.0.0.0", "::")


@dataclass(frozen=True)
class SessionInfo:
    pid: int
    client: str
    user: str
    home: str
    state: str
    bytes: int
    age: float


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    listen: str
    age: float
    sessions: Tuple[SessionInfo, ...]
    seccomp: str = "no"           # [server] seccomp as configured
    filtered: int = 0             # sessions the kernel reports under a seccomp filter


def title_of(proc: psutil.Process) -> str:
    return " ".join(proc.cmdline()).strip()


def find_server(config: Any) -> psutil.Process:
    if config.server.pidfile:
        pid = daemon.read_pid(config.server.pidfile)
        if pid is not None and daemon.is_ftpd(pid):
            return psutil.Process(pid)
    pid = _listener_pid(config.server.listen)
    if pid is not None:
        return psutil.Process(pid)
    where = config.server.pidfile or ",".join(f"{h}:{p}" for h, p in config.server.listen)
    raise NotRunning(f"ftpd is not running (nothing found via {where})")


def _listener_pid(addresses: Iterable[Tuple[str, int]]) -> Optional[int]:
    wanted = [(host, port) for host, port in addresses if port]
    if not wanted:
        return None        # port 0: only a pidfile can tell
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or conn.pid is None:
            continue
        host, port = tuple(conn.laddr)[:2]
        if any(port == p and (h in WILDCARD or h == host) for h, p in wanted):
            return conn.pid
    return None


def parse_session(proc: psutil.Process, now: float) -> Optional[SessionInfo]:
    try:
        title, started = title_of(proc), proc.create_time()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    parsed = titles.parse_session(title)
    if parsed is None:
        return SessionInfo(proc.pid, "-", "-", "-", "starting", 0, now - started)
    return SessionInfo(proc.pid, parsed.client, parsed.user, parsed.home, parsed.state,
                       parsed.bytes, now - started)


def seccomp_mode_of(pid: int) -> int:
    """/proc/PID/status `Seccomp:`: 0 none, 1 strict, 2 filter; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Seccomp:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def collect(server: psutil.Process, seccomp: str = "no") -> ServerInfo:
    now = time.time()
    listen = titles.parse_master(title_of(server))
    sessions = [info for info in (parse_session(child, now) for child in server.children())
                if info is not None]
    sessions.sort(key=lambda info: info.pid)
    filtered = sum(1 for info in sessions if seccomp_mode_of(info.pid) == 2)
    return ServerInfo(server.pid, listen or "-",
                      now - server.create_time(), tuple(sessions), seccomp, filtered)


def format_age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def render(info: ServerInfo) -> str:
    lines = [f"ftpd running: pid {info.pid}, listening on {info.listen}, "
             f"up {format_age(info.age)}, {len(info.sessions)} session(s)",
             f"seccomp {info.seccomp}: {info.filtered} of {len(info.sessions)} "
             f"session(s) filtered"]
    if info.sessions:
        rows = [("PID", "CLIENT", "USER", "HOME", "STATE", "BYTES", "AGE")]
        rows += [(str(s.pid), s.client, s.user, s.home, s.state, str(s.bytes),
                  format_age(s.age)) for s in info.sessions]
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  ".join(cells + [row[6]]))
    return "\n".join(lines)


def status(config: Any, as_json: bool = False) -> str:
    mode = "no" if config.server.concurrency == "thread" else config.server.seccomp
    info = collect(find_server(config), mode)
    quotas = accounts_report.quota_rows(config.access.users_file, config.server.root)
    if as_json:
        return json.dumps({**asdict(info), "quotas": quotas}, indent=2)
    shown = render(info)
    return shown + "\n" + accounts_report.render_quotas(quotas) if quotas else shown
