"""Confinement of a session child, applied after the fork and before the
first byte is read from its client.

The parent turns the config into a `Plan` (names resolved while /etc/passwd
is still reachable); the child applies it: chroot into the library through
the directory fd the parent opened, drop to the serving user with no
supplementary groups, set no_new_privs, and shrink its resource limits.
Anything that fails here ends the child before it serves: fail closed.

Everything this module needs is imported and resolved at import time: after
chroot, nothing can be loaded from disk.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import resource
import signal
import stat
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ftpd.config import Config, ConfigError

PR_SET_NO_NEW_PRIVS = 38
SESSION_NOFILE = 64        # socket, library fd, stop pipe, 2 files, logs: plenty
_LIBC = ctypes.CDLL(None, use_errno=True)   # dlopen(NULL): no file to read
# Looked up here, once: a first lookup in each child would build the
# function object there and copy the pages it writes.
_PRCTL = _LIBC.prctl


class ConfinementError(Exception):
    """The child could not confine itself; it must not serve."""


@dataclass(frozen=True)
class Plan:
    chroot: bool
    uid: Optional[int]           # None: keep the current user
    gid: Optional[int]
    user: str
    fsize: int                   # RLIMIT_FSIZE in bytes, 0: leave as is
    nofile: int = SESSION_NOFILE
    warnings: Tuple[str, ...] = ()


def _lookup_user(config: Config) -> Tuple[int, int]:
    name = config.server.user
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError) as exc:
        raise ConfigError(f"no such user {name!r}", config.source, "server", "user") from exc
    return entry.pw_uid, entry.pw_gid


def _lookup_group(config: Config, default: int) -> int:
    name = config.server.group
    if not name:
        return default
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError as exc:
        raise ConfigError(f"no such group {name!r}", config.source, "server", "group") from exc


def plan_for(config: Config, euid: Optional[int] = None) -> Plan:
    """What each child will do; ConfigError for an unknown user or group."""
    euid = os.geteuid() if euid is None else euid
    uid = gid = None
    if config.server.user:
        uid, primary = _lookup_user(config)
        gid = _lookup_group(config, primary)
    elif config.server.group:
        raise ConfigError("is set but [server] user is not", config.source, "server", "group")
    warnings: List[str] = []
    if euid == 0 and uid is None:
        warnings.append("running as root without [server] user: sessions will run as "
                        "root; set [server] user to an unprivileged account")
    if euid != 0 and uid is not None and uid != euid:
        warnings.append(f"not started as root: [server] user {config.server.user} is "
                        f"ignored, sessions run as uid {euid}")
    if euid != 0:
        uid = gid = None
    return Plan(chroot=euid == 0 and config.server.chroot, uid=uid, gid=gid,
                user=config.server.user, fsize=config.files.max_file_size,
                warnings=tuple(warnings))


def library_warnings(plan: Plan, root: str) -> List[str]:
    """Uploads fail (403) when the serving user cannot write the library."""
    uid, gid = plan.uid, plan.gid
    if uid is None:
        return []
    try:
        info = os.stat(root)
    except OSError:
        return []
    mode = info.st_mode
    writable = (info.st_uid == uid and mode & stat.S_IWUSR) or \
        (info.st_gid == gid and mode & stat.S_IWGRP) or mode & stat.S_IWOTH
    if writable:
        return []
    return [f"the library {root} is not writable by uid {uid}: uploads will be refused "
            f"(chown it to the serving user)"]


# --- in the child ---------------------------------------------------------------

def confine(plan: Plan, library_fd: int) -> None:
    """Apply `plan`; ConfinementError when any step fails."""
    try:
        if plan.chroot:
            os.fchdir(library_fd)
            os.chroot(".")
            os.chdir("/")
        if plan.uid is not None:
            drop_privileges(plan.uid, plan.gid if plan.gid is not None else plan.uid)
        no_new_privs()
        limit_resources(plan)
    except OSError as exc:
        raise ConfinementError(f"cannot confine session: {exc}") from exc


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) \
            or os.getgroups():
        raise ConfinementError("privilege drop did not stick")
    if uid != 0:
        try:
            os.setresuid(0, 0, 0)
        except PermissionError:
            return
        raise ConfinementError("could regain root after dropping privileges")


def no_new_privs() -> None:
    """No setuid binary or file capability can ever raise this process again."""
    if _PRCTL(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(error)}")


def limit_resources(plan: Plan) -> None:
    _set_limit(resource.RLIMIT_CORE, 0)       # no core file with session memory in it
    _set_limit(resource.RLIMIT_NPROC, 0)      # a session can never fork or exec a helper
    _set_limit(resource.RLIMIT_NOFILE, plan.nofile)
    if plan.fsize:
        # A write past the limit then fails with EFBIG (ERR 413) instead of a signal.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _set_limit(resource.RLIMIT_FSIZE, plan.fsize)


def _set_limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))
