"""ftpc's batch mode: `ftpc -b FILE HOST`, or shell commands piped in.

Like `sftp -b`: the commands run in order in one session, and the first
that fails stops the script with that command's exit status, so a cron line
or a CI step notices.
"""

from __future__ import annotations

from typing import Optional, TextIO, Tuple

from ftpd.ftpc.connect import Target
from ftpd.ftpc.shell import Shell, first_connect
from ftpd.ftpc.status import EX_OK


def run_batch(target: Target, login: Optional[Tuple[str, str]], commands: TextIO,
              quiet: bool = False, limit_rate: int = 0) -> int:
    """`ftpc -b FILE HOST`, or shell commands piped in: run them in order and
    stop at the first that fails, with its exit status. A line starting
    with '-' may fail without stopping the script (as in sftp -b)."""
    shell = Shell(target, login, quiet, batch=True)
    shell.limit_rate = limit_rate
    failed = first_connect(shell)
    if failed is not None:
        return failed
    try:
        for number, raw in enumerate(commands, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            tolerant = line.startswith("-")
            shell.where = f"line {number}: "
            stop = shell.onecmd(line[1:].lstrip() if tolerant else line)
            if shell.status != EX_OK and not tolerant:
                return shell.status
            if stop and shell.status == EX_OK:
                break
        return EX_OK
    finally:
        if shell.client is not None and shell.connected:
            shell.client.__exit__(None, None, None)
