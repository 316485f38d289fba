"""The security measures of one configuration, prepared in the parent and
entered by each child.

The parent builds a `Guard` at start and at every reload (a ConfigError
keeps the old one): TLS context, accounts and confinement plan, so `ftpd
check` finds every problem before a client does. A child then calls
`confine()` right after the fork and `handshake()` after any PROXY header,
and only then does the session read its first request.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Optional

from ftpd.config import Config, ConfigError
from ftpd.server import confine, landlock, syscalls, tls
from ftpd.server.auth import Accounts

log = logging.getLogger("ftpd.server")


@dataclass
class Guard:
    accounts: Accounts
    context: Optional[ssl.SSLContext]
    plan: confine.Plan
    handshake_timeout: float
    root: str
    seccomp: str = "no"                  # [server] seccomp: yes, no or log
    syscall_filter: Optional[Any] = None   # built here, loaded by each child
    landlock_abi: int = 0                # 0: the kernel offers no Landlock

    @classmethod
    def from_config(cls, config: Config) -> "Guard":
        """Everything checked now; ConfigError names the file, section and key."""
        return cls(accounts=Accounts(config.access.users_file, config.source),
                   context=tls.server_context(config),
                   plan=confine.plan_for(config),
                   handshake_timeout=config.tls.handshake_timeout,
                   root=config.server.root, seccomp=config.server.seccomp,
                   syscall_filter=cls.filter_for(config), landlock_abi=landlock.abi())

    @staticmethod
    def filter_for(config: Config) -> Optional[Any]:
        """The seccomp filter a forked session loads; none in thread mode,
        where it would bind the whole server."""
        if config.server.concurrency == "thread":
            return None
        try:
            return syscalls.build(config.server.seccomp)
        except syscalls.SeccompUnavailable as exc:
            raise ConfigError(str(exc), config.source, "server", "seccomp") from exc

    def describe(self) -> str:
        parts = ["TLS" if self.context else "plaintext (no TLS)"]
        if self.plan.chroot:
            parts.append("chroot")
        if self.plan.uid is not None:
            parts.append(f"user {self.plan.user} (uid {self.plan.uid}, gid {self.plan.gid})")
        if self.syscall_filter is not None:
            parts.append(f"seccomp {self.seccomp}")
        parts.append(f"{len(self.accounts.records)} account(s)")
        return ", ".join(parts)

    def announce(self) -> None:
        for warning in self.plan.warnings + tuple(confine.library_warnings(self.plan, self.root)):
            log.warning("%s", warning)
        log.info("sessions: %s", self.describe())
        log.info("%s", landlock.describe(self.landlock_abi))

    def before_fork(self) -> None:
        problem = self.accounts.refresh()
        if problem:
            log.error("%s", problem)

    def confine(self, library_fd: int) -> None:
        """In the child, before reading a byte: chroot, drop, limits, Landlock
        (needs no_new_privs), and the system-call filter last (it forbids the
        calls the others make)."""
        confine.confine(self.plan, library_fd)
        try:
            if self.landlock_abi:
                landlock.restrict_to(library_fd, self.landlock_abi)
        except OSError as exc:
            raise confine.ConfinementError(f"cannot enter the Landlock sandbox: {exc}") from exc
        try:
            syscalls.install(self.syscall_filter)
        except OSError as exc:
            raise confine.ConfinementError(f"cannot load the seccomp filter: {exc}") from exc

    def handshake(self, conn: socket.socket, peer: str) -> Optional[socket.socket]:
        """In the child, after confine(): TLS if configured. None: do not serve."""
        if self.context is None:
            return conn
        return tls.handshake(conn, self.context, self.handshake_timeout, peer)
