"""ftpc, the interactive and scriptable client of ftpd: command line, shell,
verified and resumable transfers, display.

Built on the public API ``ftpd.client``; nothing here imports ``ftpd.server``,
and none of the server's dependencies (psutil, setproctitle, python-daemon)
is needed to run it.
"""

from ftpd.ftpc.cli import main

__all__ = ["main"]
