"""Where log lines go: stderr, a log file, syslog, and the transfer log.

Foreground logging goes to stderr, without a timestamp under systemd
(journald stamps each line itself). `[log] file` names a file that is
reopened on SIGUSR1 (the server calls `reopen()` on every root handler), so
logrotate can move it away first. The transfer log is one more root handler
that only takes the records `Session.log_transfer` emits.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from typing import List, Optional

from ftpd import protocol
from ftpd.config import Config, ConfigError

TRANSFER_LOGGER = "ftpd.transfer"
SYSLOG_SOCKET = "/dev/log"
LINE_FORMAT = "ftpd[%(process)d] %(levelname)s %(message)s"


class ReopeningFileHandler(logging.FileHandler):
    """A FileHandler that logrotate can rotate: SIGUSR1 -> reopen()."""

    def __init__(self, path: str):
        super().__init__(path, mode="a", encoding="utf-8", delay=False)

    def reopen(self) -> None:
        # Open the new file before closing the old one: if the directory
        # has gone, keep writing where we were and say so there.
        try:
            fresh = self._open()
        except OSError as exc:
            logging.getLogger("ftpd.logs").error("cannot reopen %s: %s", self.baseFilename, exc)
            return
        self.acquire()
        try:
            old, self.stream = self.stream, fresh
        finally:
            self.release()
        if old is not None:
            old.close()


class TransferFormatter(logging.Formatter):
    """time client user verb name bytes seconds sha256 result (the rest of the line)."""

    def format(self, record: logging.LogRecord) -> str:
        t = record.transfer      # type: ignore[attr-defined]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        return " ".join((stamp, t["client"], protocol.encode_text(t["user"]), t["verb"],
                         protocol.encode_name(t["name"]), str(t["bytes"]),
                         f"{t['seconds']:.3f}", t["sha256"] or "-", t["result"]))


def _is_transfer(record: logging.LogRecord) -> bool:
    return hasattr(record, "transfer")


def log_transfer(client: str, user: str, verb: str, name: str, size: int,
                 seconds: float, sha256: Optional[str], result: str) -> None:
    """One transfer record: a readable line in the main log, a field line in the transfer log."""
    fields = dict(client=client, user=user, verb=verb, name=name, bytes=size,
                  seconds=seconds, sha256=sha256, result=result)
    logging.getLogger(TRANSFER_LOGGER).info(
        "transfer %s %s %s %s bytes=%d seconds=%.3f sha256=%s result=%s", client, user, verb,
        protocol.encode_name(name), size, seconds, sha256 or "-", result,
        extra={"transfer": fields})


def _main_handler(config: Config, daemon: bool) -> logging.Handler:
    if config.log.file:
        handler: logging.Handler = _open_file(config, "file")
        handler.setFormatter(logging.Formatter("%(asctime)s " + LINE_FORMAT))
        return handler
    if daemon:
        if not os.path.exists(SYSLOG_SOCKET):
            raise ConfigError(f"--daemon needs a log file (there is no {SYSLOG_SOCKET})",
                              config.source, "log", "file")
        handler = logging.handlers.SysLogHandler(
            SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        handler.setFormatter(logging.Formatter("ftpd[%(process)d]: %(levelname)s %(message)s"))
        return handler
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(stamp + LINE_FORMAT))
    return handler


def _open_file(config: Config, key: str) -> ReopeningFileHandler:
    path = getattr(config.log, key)
    try:
        return ReopeningFileHandler(path)
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}", config.source,
                          "log", key) from exc


def setup(config: Config, daemon: bool = False) -> List[int]:
    """Install the handlers `config` asks for; return the fds they hold
    (a daemon must keep them open across detaching)."""
    level = getattr(logging, config.log.level.upper())
    main = _main_handler(config, daemon)
    main.setLevel(level)
    handlers = [main]
    if config.log.transfer_log:
        transfers = _open_file(config, "transfer_log")
        transfers.setFormatter(TransferFormatter())
        transfers.addFilter(_is_transfer)
        handlers.append(transfers)
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    _skip_unused_record_fields()
    # Transfers are logged at INFO whatever [log] level says; the main
    # handler's own level still filters them out of the main log.
    logging.getLogger(TRANSFER_LOGGER).setLevel(logging.INFO)
    return held_fds(handlers)


def _skip_unused_record_fields() -> None:
    """The logging HOWTO's "Optimization": no format here shows the caller's
    file and line, the thread or the multiprocessing name, so do not collect
    them. Walking frames for the caller also copies shared pages in every
    forked session that logs a line."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


def held_fds(handlers: List[logging.Handler]) -> List[int]:
    fds = []
    for handler in handlers:
        stream = getattr(handler, "stream", None)
        sock = getattr(handler, "socket", None)
        for thing in (stream, sock):
            if thing is not None and hasattr(thing, "fileno"):
                fds.append(thing.fileno())
    return fds
