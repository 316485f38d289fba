"""`ftpd serve`: put the pieces of a service together around the Server.

Order matters and is the same in every mode: config, the pre-flight
checks `ftpd check` runs too, pidfile check, sockets (inherited from
systemd or bound here), logging — all while errors
can still reach the terminal — then (with --daemon) detach, claim the
pidfile, serve, and tell whoever waits (systemd, the launcher) "ready".
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import setproctitle

from ftpd import config as config_mod
from ftpd.server import daemon, listeners, logs, preflight, reports, systemd
from ftpd.server.guard import Guard
from ftpd.server.listeners import Address

Bound = Dict[Address, List[socket.socket]]
log = logging.getLogger("ftpd.server")


def serve(path: Optional[str], overrides: Mapping[Tuple[str, str], str],
          detach: bool = False) -> int:
    located = config_mod.locate(path)
    located = os.path.abspath(located) if located else None   # reload after a chdir
    config = config_mod.load(located, overrides)
    bound = systemd.listen_fds()
    inherited = bound is not None
    report = preflight.run(config, activated=inherited)      # what `ftpd check` runs
    pidfile = daemon.PidFile(config.server.pidfile) if config.server.pidfile else None
    if pidfile is not None:
        pidfile.check()
    if bound is None:
        bound = listeners.bind_all(config.server.listen, config.server.backlog)
    # Ours even under socket activation; bound now, while errors reach the terminal.
    metrics_bound = listeners.bind_all([config.metrics.listen], reports.BACKLOG) \
        if config.metrics.listen is not None else {}
    held = logs.setup(config, daemon=detach)
    _log_start_notes(config, report, bound if inherited else None)

    def reload_config() -> config_mod.Config:
        return preflight.check_settings(config_mod.load(located, overrides), inherited)

    def run(ready: Callable[[str], None]) -> int:
        return _run(config, reload_config, bound, inherited, pidfile, ready, metrics_bound,
                    report.guard)

    if detach:
        sockets = [sock.fileno() for group in [*bound.values(), *metrics_bound.values()]
                   for sock in group]
        return daemon.daemonize(held + sockets, run)
    return run(lambda error: None)


def _log_start_notes(config: config_mod.Config, report: preflight.Report,
                     inherited: Optional[Bound]) -> None:
    for warning in report.login_warnings:
        log.warning("%s", warning)
    if inherited is not None:
        explicit = config.origin("server", "listen") is not None
        level, text = systemd.listen_ignored(config.server.listen, explicit, inherited)
        log.log(level, "%s", text)


def _run(config: config_mod.Config, reload_config: Callable[[], config_mod.Config],
         bound: Bound, inherited: bool, pidfile: Optional[daemon.PidFile],
         ready: Callable[[str], None], metrics_bound: Optional[Bound] = None,
         guard: Optional[Guard] = None) -> int:
    from ftpd.server.parent import Server

    def notify(state: str) -> None:
        systemd.notify(state)
        if state == "READY=1":
            ready("")

    server = Server(config, reload_config=reload_config, bound=bound, inherited=inherited,
                    notify=notify, title=setproctitle.setproctitle,
                    metrics_bound=metrics_bound, guard=guard)
    with pidfile if pidfile is not None else contextlib.nullcontext():
        return server.serve_forever()
