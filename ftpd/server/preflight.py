"""What the configuration must pass before the server binds, forks or detaches.

`ftpd serve` runs `run()` first and `ftpd check` runs nothing else, so
check fails on exactly what start fails on, with the same message and exit
status. Nothing here changes the system: the log files are probed without
being created and the listen addresses are tried on a port the kernel
picks, which a running server cannot hold.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from typing import List, Mapping

from ftpd.config import Address, Config, ConfigError
from ftpd.server.guard import Guard
from ftpd.server.listeners import format_address

# The test-suite and the benchmarks let the kernel pick the port (port 0)
# and read it from the "listening on" line; nobody else has a use for it.
ALLOW_PORT_0 = "FTPD_ALLOW_PORT_0"


@dataclass
class Report:
    guard: Guard
    login_warnings: List[str]     # the plan's own warnings the guard announces itself

    @property
    def warnings(self) -> List[str]:
        return list(self.guard.plan.warnings) + self.login_warnings


def run(config: Config, activated: bool = False,
        environ: Mapping[str, str] = os.environ, metrics_activated: bool = False) -> Report:
    """Every check; ConfigError (exit 78) names file, section and key."""
    check_settings(config, activated, environ, metrics_activated)
    check_log_files(config)
    check_pidfile_directory(config)
    guard = Guard.from_config(config)    # TLS files, users file, user and group, seccomp
    return Report(guard, login_warnings(config, guard))


def check_settings(config: Config, activated: bool = False,
                   environ: Mapping[str, str] = os.environ,
                   metrics_activated: bool = False) -> Config:
    """The checks a reload repeats: the library and the listen addresses
    (not those socket activation replaces: [server] listen under ftpd.socket,
    [metrics] listen under ftpd-metrics.socket)."""
    check_root(config)
    if not activated:
        for address in config.server.listen:
            check_address(config, address, environ)
    if config.metrics.listen is not None and not metrics_activated:
        check_address(config, config.metrics.listen, environ, section="metrics")
    return config


def check_root(config: Config) -> None:
    origin = config.origin("server", "root")
    root = config.server.root
    if origin is not None and not os.path.isdir(root):
        # Creating it would serve an empty tree after a typo in the path.
        raise ConfigError(f"{root} does not exist (only the built-in default ./library "
                          "is created): create it or correct the path", origin,
                          "server", "root")


def check_address(config: Config, address: Address,
                  environ: Mapping[str, str] = os.environ, section: str = "server") -> None:
    origin = config.origin(section, "listen") or config.source
    host, port = address
    if port == 0 and environ.get(ALLOW_PORT_0) != "1":
        raise ConfigError(f"{format_address(address)}: port 0 makes the kernel pick a "
                          "different port at each start, where no client will look: "
                          "name the port (8021 is the default)", origin, section, "listen")
    try:
        infos = socket.getaddrinfo(None if host in ("", "*") else host, 0,
                                   type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"{host} does not resolve: {exc.strerror or exc}", origin,
                          "server", "listen") from exc
    for family, kind, proto, _, sockaddr in infos:
        try:
            _try_bind(family, kind, proto, sockaddr)
        except OSError as exc:
            raise ConfigError(f"{format_address(address)}: cannot listen on {sockaddr[0]}: "
                              f"{exc.strerror}", origin, section, "listen") from exc


def _try_bind(family: int, kind: int, proto: int, sockaddr: tuple) -> None:
    """Bind the address on port 0: fails the way start would for an address
    this host does not have, without touching the port a server holds."""
    with socket.socket(family, kind, proto) as probe:
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        probe.bind((sockaddr[0], 0, *sockaddr[2:]))


def check_log_files(config: Config) -> None:
    for key in ("file", "transfer_log"):
        path = getattr(config.log, key)
        if not path:
            continue
        try:
            _probe_append(path)
        except OSError as exc:
            # The words logs.setup() would use when the open itself fails.
            raise ConfigError(f"cannot open {path}: {exc.strerror}", config.source,
                              "log", key) from exc


def _probe_append(path: str) -> None:
    """Raise what opening `path` for append would raise, creating nothing."""
    if os.path.lexists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_CLOEXEC))
        return
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


def check_pidfile_directory(config: Config) -> None:
    path = config.server.pidfile
    if not path:
        return
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        problem = f"directory {directory} does not exist (under systemd: RuntimeDirectory=)"
    elif not os.access(directory, os.W_OK | os.X_OK):
        problem = f"directory {directory} is not writable by uid {os.getuid()}"
    else:
        return
    raise ConfigError(problem, config.source, "server", "pidfile")


def login_warnings(config: Config, guard: Guard) -> List[str]:
    if config.access.anonymous != "none" or guard.accounts.records:
        return []
    path = config.access.users_file
    if not path:
        why = "[access] users_file is not set"
    elif not os.path.exists(path):
        why = f"[access] users_file {path} does not exist (ftpd passwd creates it)"
    else:
        why = f"[access] users_file {path} has no accounts"
    return [f"{config.source}: [access] anonymous = none and {why}: nobody can log in"]
