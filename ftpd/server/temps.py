"""Upload temporaries: their names, and the sweep that removes stale ones.

An upload writes to a hidden file in its target's own directory, named
`.ftpd~<host>~<node pid>~<session pid>~<random>.part`: the host and node pid
let a restarting node recognise its own leftovers on a shared library, the
session pid lets the parent remove what a killed session left behind.

The sweep walks the tree from a directory fd, one directory at a time, each
opened relative to its parent with O_NOFOLLOW | O_DIRECTORY: a symlink is
never followed (os.fwalk opens a symlink's target before checking it, which
a swap could turn into a FIFO that blocks the server). Hidden directories
are skipped, since no upload can be made into one.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from typing import Callable, List, Optional, Tuple

from ftpd import fileutil, protocol

TEMP_PREFIX = ".ftpd~"
TEMP_PATTERN = re.compile(
    r"\A\.ftpd~(?P<host>[^~/]+)~(?P<node>\d+)~(?P<pid>\d+)~[0-9a-f]{16}\.part\Z")
MAX_SWEEP_DEPTH = 1000        # the most [files] max_depth allows
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def node_host() -> str:
    return socket.gethostname().replace("~", "-").replace("/", "-") or "localhost"


def temp_name(node_pid: int, session_pid: int) -> str:
    return f"{TEMP_PREFIX}{node_host()}~{node_pid}~{session_pid}~{secrets.token_hex(8)}.part"


def pid_alive(pid: int) -> bool:
    """Whether a process exists (a permission error means it does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_for_node(node_pid: int, alive: Callable[[int], bool]) -> Callable[[str], bool]:
    """Temps of this host whose node is dead, or is us (a pid reused by a restart)."""
    host = node_host()

    def stale(filename: str) -> bool:
        match = TEMP_PATTERN.match(filename)
        if not match or match.group("host") != host:
            return False
        node = int(match.group("node"))
        return node == node_pid or not alive(node)
    return stale


def of_session(node_pid: int, session_pid: int) -> Callable[[str], bool]:
    marker = f"~{node_pid}~{session_pid}~"
    return lambda filename: bool(TEMP_PATTERN.match(filename)) and marker in filename


def sweep(root_fd: int, wanted: Callable[[str], bool],
          modified_before: Optional[float] = None) -> List[str]:
    """Unlink every temp `wanted` accepts (and, with `modified_before`, last
    modified before that time), anywhere below root_fd; returns their paths.
    Depth-first, holding one fd per level being walked."""
    def accept(item: "os.DirEntry[str]") -> bool:
        return wanted(item.name) and (modified_before is None or older(item, modified_before))

    removed: List[str] = []
    stack: List[Tuple[int, str, List[str]]] = []
    stack.append(_visit(os.dup(root_fd), "", accept, removed))
    while stack:
        fd, prefix, subdirs = stack[-1]
        if not subdirs or len(stack) >= MAX_SWEEP_DEPTH:
            os.close(fd)
            stack.pop()
            continue
        name = subdirs.pop()
        try:
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
        except OSError:
            continue        # gone, swapped for a symlink, or unreadable: skip it
        stack.append(_visit(child, f"{prefix}{name}/", accept, removed))
    return removed


def older(item: "os.DirEntry[str]", limit: float) -> bool:
    """Whether a directory entry was last modified before `limit` (gone: no)."""
    try:
        return item.stat(follow_symlinks=False).st_mtime < limit
    except OSError:
        return False


def _visit(fd: int, prefix: str, accept: Callable[["os.DirEntry[str]"], bool],
           removed: List[str]) -> Tuple[int, str, List[str]]:
    subdirs = []
    try:
        with os.scandir(fd) as scan:
            for item in scan:
                if item.is_dir(follow_symlinks=False):
                    if protocol.is_valid_name(item.name):
                        subdirs.append(item.name)
                elif item.name.startswith(TEMP_PREFIX) and accept(item):
                    fileutil.unlink_quietly(item.name, dir_fd=fd)
                    removed.append(prefix + item.name)
    except OSError:
        pass                # unreadable directory: nothing we could have written there
    return fd, prefix, subdirs


