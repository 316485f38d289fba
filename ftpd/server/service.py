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
from typing import Callable, Mapping, NamedTuple, Optional, Tuple

import setproctitle

from ftpd import config as config_mod
from ftpd.server import daemon, listeners, logs, preflight, reports, systemd
from ftpd.server.guard import Guard

log = logging.getLogger("ftpd.server")


def serve(path: Optional[str], overrides: Mapping[Tuple[str, str], str],
          detach: bool = False) -> int:
    located = config_mod.locate(path)
    located = os.path.abspath(located) if located else None   # reload after a chdir
    config = config_mod.load(located, overrides)
    activation = systemd.listen_fds()
    passed = Passed(activation is not None, bool(activation and activation.metrics))
    report = preflight.run(config, activated=passed.clients, metrics_activated=passed.metrics)
    pidfile = daemon.PidFile(config.server.pidfile) if config.server.pidfile else None
    if pidfile is not None:
        pidfile.check()
    sockets = _sockets(config, activation)
    held = logs.setup(config, daemon=detach)
    _log_start_notes(config, report, activation)

    def reload_config() -> config_mod.Config:
        return preflight.check_settings(config_mod.load(located, overrides), passed.clients,
                                        metrics_activated=passed.metrics)

    def run(ready: Callable[[str], None]) -> int:
        return _run(config, reload_config, sockets, passed, pidfile, ready, report.guard)

    if detach:
        fds = [sock.fileno() for group in [*sockets.clients.values(), *sockets.metrics.values()]
               for sock in group]
        return daemon.daemonize(held + fds, run)
    return run(lambda error: None)


class Passed(NamedTuple):
    """Which sockets systemd passed: those are never rebound on a reload."""
    clients: bool
    metrics: bool


def _sockets(config: config_mod.Config,
             activation: Optional[systemd.Activation]) -> systemd.Activation:
    """What systemd passed, the rest bound now, while errors reach the terminal."""
    clients = activation.clients if activation is not None else \
        listeners.bind_all(config.server.listen, config.server.backlog)
    if activation is not None and activation.metrics:
        metrics = activation.metrics
    elif config.metrics.listen is not None:       # ours even under socket activation
        metrics = listeners.bind_all([config.metrics.listen], reports.BACKLOG)
    else:
        metrics = {}
    return systemd.Activation(clients, metrics)


def _log_start_notes(config: config_mod.Config, report: preflight.Report,
                     activation: Optional[systemd.Activation]) -> None:
    for warning in report.login_warnings:
        log.warning("%s", warning)
    if activation is None:
        return
    explicit = config.origin("server", "listen") is not None
    level, text = systemd.listen_ignored(config.server.listen, explicit, activation.clients)
    log.log(level, "%s", text)
    if activation.metrics:
        log.info("%s", systemd.metrics_listen_ignored(config.metrics.listen,
                                                      activation.metrics))


def _run(config: config_mod.Config, reload_config: Callable[[], config_mod.Config],
         sockets: systemd.Activation, passed: Passed, pidfile: Optional[daemon.PidFile],
         ready: Callable[[str], None], guard: Optional[Guard] = None) -> int:
    from ftpd.server.parent import Server

    def notify(state: str) -> None:
        systemd.notify(state)
        if state == "READY=1":
            ready("")

    server = Server(config, reload_config=reload_config, bound=sockets.clients,
                    inherited=passed.clients, notify=notify, title=setproctitle.setproctitle,
                    metrics_bound=sockets.metrics, guard=guard, metrics_inherited=passed.metrics)
    with pidfile if pidfile is not None else contextlib.nullcontext():
        return server.serve_forever()
