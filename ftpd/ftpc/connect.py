"""How ftpc reaches a server: address, TLS context, credentials.

Passwords never come from the command line (other users can read it in
`ps`): they come from $FTPC_PASSWORD, from ~/.netrc (the convention of
ftp, curl and lftp), or from a prompt that does not echo.
"""

from __future__ import annotations

import getpass
import netrc
import os
import sys
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Optional, TextIO, Tuple

from ftpd.client import Client, parse_hostport

if TYPE_CHECKING:       # imported by build_ssl_context: only --tls pays for it
    import ssl

PASSWORD_ENV = "FTPC_PASSWORD"
INSECURE_WARNING = ("ftpc: WARNING: --insecure: the server's certificate is NOT checked; "
                    "anyone on the network path can read and change this session")


class CredentialError(Exception):
    """A user was named but no password can be found without a terminal."""


@dataclass(frozen=True)
class Target:
    """Everything needed to (re)open a session with one server."""
    host: str
    port: int
    timeout: float = 30.0
    ssl_context: Optional[ssl.SSLContext] = None

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def with_address(self, text: str) -> "Target":
        address, path = split_url(text)
        if path:
            raise ValueError(f"{text}: give a server, without a file path")
        host, port = parse_hostport(address)
        return Target(host, port, self.timeout, self.ssl_context)

    def connect(self) -> Client:
        return Client(self.host, self.port, timeout=self.timeout, ssl_context=self.ssl_context)


OTHER_PROTOCOLS = {
    "ftp": "classic FTP (RFC 959)", "ftps": "FTP over TLS", "sftp": "SSH file transfer",
    "http": "HTTP", "https": "HTTP",
}


def split_url(text: str) -> Tuple[str, str]:
    """`ftpd://HOST[:PORT][/PATH]` or plain `HOST[:PORT]` -> (HOST[:PORT], PATH)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text, ""
    scheme = scheme.lower()
    if scheme != "ftpd":
        what = OTHER_PROTOCOLS.get(scheme, "not FTPD/1")
        raise ValueError(f"{scheme}:// is {what}, a different protocol: ftpc talks only to "
                         "ftpd servers (FTPD/1); give ftpd://HOST[:PORT] or HOST[:PORT]")
    address, _, path = rest.partition("/")
    return address, urllib.parse.unquote(path)


def parse_target(text: str, timeout: float, ssl_context: Optional[ssl.SSLContext]) -> Target:
    host, port = parse_hostport(split_url(text)[0])
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return Target(host, port, timeout, ssl_context)


def build_ssl_context(cafile: Optional[str] = None, insecure: bool = False,
                      warn: Optional[TextIO] = None) -> ssl.SSLContext:
    """TLS 1.2 or newer; certificate and host name checked unless `insecure`."""
    import ssl
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot use --cafile {cafile}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        print(INSECURE_WARNING, file=warn or sys.stderr)
    return context


# -- credentials ---------------------------------------------------------------------

def netrc_lookup(host: str, path: Optional[str] = None) -> Optional[Tuple[str, str]]:
    """(login, password) for `host` from ~/.netrc, or None.

    A broken or unreadable netrc is reported and ignored rather than fatal:
    the user can still type the password.
    """
    path = path or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.exists(path):
        return None
    try:
        found = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        print(f"ftpc: ignoring {path}: {exc}", file=sys.stderr)
        return None
    if not found or not found[0]:
        return None
    if found[2]:
        _refuse_if_readable_by_others(path)
    return found[0], found[2] or ""


def _refuse_if_readable_by_others(path: str) -> None:
    # As classic ftp and Python's netrc do: a password others can read is no secret.
    if os.name != "posix":
        return
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        raise CredentialError(f"{path} holds a password but other users can access it "
                              f"(mode {mode:o}); run: chmod 600 {path}")


def resolve_login(host: str, user: Optional[str], env: Mapping[str, str] = os.environ,
                  netrc_path: Optional[str] = None,
                  prompt: Optional[Callable[[str], str]] = None) -> Optional[Tuple[str, str]]:
    """Decide who to log in as: (user, password), or None for anonymous.

    Order: -u USER with $FTPC_PASSWORD, then a netrc entry for that user,
    then a no-echo prompt. Without -u, a netrc entry for the host logs in.
    """
    entry = netrc_lookup(host, netrc_path)
    if user is None:
        return entry
    if PASSWORD_ENV in env:
        return user, env[PASSWORD_ENV]
    if entry and entry[0] == user:
        return entry
    if prompt is None:
        if not sys.stdin.isatty():
            raise CredentialError(f"no password for {user}: set {PASSWORD_ENV}, add a "
                                  f"~/.netrc entry for {host}, or run on a terminal")
        prompt = getpass.getpass
    return user, prompt(f"Password for {user}@{host}: ")
