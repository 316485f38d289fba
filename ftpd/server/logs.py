"""Where log lines go: stderr, a log file, syslog, and the transfer log.

Foreground logging goes to stderr. When stderr is the journal's stream
(sd-daemon(3): `$JOURNAL_STREAM` names its device and inode) each line
starts with its syslog priority, `<4>` for a warning, so `journalctl -p`
filters, and carries no timestamp (journald stamps each line itself).
`[log] file` names a file that is reopened on SIGUSR1 (the server calls
`reopen()` on every root handler), so logrotate can move it away first. The
transfer log is one more root handler that only takes the records
`Session.log_transfer` emits, in ftpd's own line format or in xferlog's.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from typing import Dict, List, Mapping, Optional

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


# xferlog(5)'s direction field; it has no record for M, D or R.
XFERLOG_DIRECTIONS = {"G": "o", "P": "i", "C": "i"}


class XferlogFormatter(logging.Formatter):
    """The wu-ftpd/vsftpd xferlog(5) line, which xferstats and report tools read:
    current-time transfer-time remote-host file-size filename transfer-type
    special-action-flag direction access-mode username service-name
    authentication-method authenticated-user-id completion-status."""

    def format(self, record: logging.LogRecord) -> str:
        t = record.transfer      # type: ignore[attr-defined]
        anonymous = t["user"] == "anonymous"
        # Like vsftpd: whole seconds, at least 1; the library path from its root.
        return " ".join((
            time.ctime(record.created), str(max(1, round(t["seconds"]))),
            xferlog_word(client_host(t["client"])), str(t["bytes"]),
            xferlog_word("/" + t["name"].strip("/")), "b", "_",
            XFERLOG_DIRECTIONS[t["verb"]], "a" if anonymous else "r",
            xferlog_word(t["user"]), "ftp", "0", "*",
            "c" if t["result"].startswith("ok") else "i"))


def xferlog_word(text: str) -> str:
    """vsftpd's escaping: a space becomes '_', anything unprintable (every
    other kind of white space too) '?', so each field stays one word."""
    return "".join("_" if char == " " else char if char.isprintable() else "?"
                   for char in text) or "?"


def client_host(client: str) -> str:
    """"127.0.0.1:40000" or "[::1]:40000" -> the address alone."""
    host, colon, port = client.rpartition(":")
    if not colon or not port.isdigit():
        return client
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _is_transfer(record: logging.LogRecord) -> bool:
    return hasattr(record, "transfer")


def _is_xferlog_transfer(record: logging.LogRecord) -> bool:
    return _is_transfer(record) and \
        record.transfer["verb"] in XFERLOG_DIRECTIONS    # type: ignore[attr-defined]


# sd-daemon(3)'s "<N>" line prefixes, by logging level.
JOURNAL_PRIORITIES: Dict[int, int] = {
    logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
    logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    """Each line of a record starts with its priority: journald files every
    line of a stream as its own entry (a traceback's too) and strips the prefix."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{JOURNAL_PRIORITIES.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def stderr_is_journal(environ: Mapping[str, str] = os.environ, fd: int = 2) -> bool:
    """systemd.exec(5): $JOURNAL_STREAM is "device:inode" of the stream it
    connected; compare with fd 2 itself, since `ftpd ... 2>file` inherits it."""
    try:
        device, inode = (int(part) for part in environ.get("JOURNAL_STREAM", "").split(":"))
        status = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return (status.st_dev, status.st_ino) == (device, inode)


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
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter(LINE_FORMAT))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s " + LINE_FORMAT))
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
        if config.log.transfer_format == "xferlog":
            transfers.setFormatter(XferlogFormatter())
            transfers.addFilter(_is_xferlog_transfer)
        else:
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
