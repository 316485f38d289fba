"""Debug hooks for the test-suite only: with FTPD_TEST_HOOKS set when the
server starts, each confined session tries the named forbidden act before
it serves, so a test can see the sandbox stop it.

    FTPD_TEST_HOOKS=execve | socket | connect | open:/some/path

The variable is read once at import (before any chroot); without it this
module does nothing. `open:` logs the outcome, since Landlock answers an
open with EACCES rather than a kill.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

log = logging.getLogger("ftpd.server")

HOOK = os.environ.get("FTPD_TEST_HOOKS", "")


def after_confinement() -> None:
    """Called in a session process right after it has confined itself."""
    if not HOOK:
        return
    act, _, argument = HOOK.partition(":")
    if act == "execve":
        os.execv("/bin/true", ["true"])
    elif act == "socket":
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    elif act == "connect":
        _connect_without_socket_call()
    elif act == "open":
        _try_open(argument)


def _connect_without_socket_call() -> None:
    """connect() on the client's own socket (fd 0 is no socket: use one the
    session already has), so the test sees `connect` itself refused."""
    for fd in range(3, 64):
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            sock.connect(("127.0.0.1", 9))
        except OSError:
            pass
        finally:
            sock.close()
        return


def _try_open(path: str) -> None:
    try:
        os.close(os.open(path, os.O_RDONLY))
        log.warning("test hook: open %s: allowed", path)
    except OSError as exc:
        log.warning("test hook: open %s: %s", path,
                    errno.errorcode.get(exc.errno or 0, str(exc.errno)))
