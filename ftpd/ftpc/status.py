"""ftpc's exit statuses: the one table, and which failure ends with which.

The one-shot commands, the batch mode and the docs all read this module, so
a status means the same thing everywhere.
"""

from __future__ import annotations

from typing import Optional, Tuple, Type

from ftpd.client import ConnectionLost, IntegrityError, LocalError, ServerError
from ftpd.ftpc.connect import CredentialError
from ftpd.ftpc.display import describe
from ftpd.ftpc.transfer import Cancelled, TransferError, VerifyError

EX_OK = 0
EX_REFUSED = 1        # the server answered ERR (its code is printed)
EX_USAGE = 2          # bad arguments, or a local file problem
EX_CONNECTION = 3     # cannot connect, connection lost, or not an FTPD/1 server
EX_VERIFY = 4         # a download did not match the server's SHA-256
EX_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as a shell reports it)
EX_PIPE = 141         # the reader of standard output went away (128 + SIGPIPE)

# (status, meaning) in the order the help and docs/ftpc.md show them.
TABLE: Tuple[Tuple[int, str], ...] = (
    (EX_OK, "done"),
    (EX_REFUSED, "the server refused; its code (401, 404, 507...) is printed"),
    (EX_USAGE, "usage error or a local problem (missing or unwritable file, would "
               "overwrite without --force, unreadable --cafile, no password available)"),
    (EX_CONNECTION, "cannot connect, the connection was lost or timed out, or the peer "
                    "is not an FTPD/1 server"),
    (EX_VERIFY, "a download did not match the server's SHA-256 (nothing was kept)"),
    (EX_INTERRUPTED, "interrupted with Ctrl-C (a partial download is kept)"),
    (EX_PIPE, "standard output was closed by its reader (get -o - into head); nothing "
              "printed"),
)

# The first matching type decides; subclasses come before their bases.
FAILURES: Tuple[Tuple[Type[BaseException], int], ...] = (
    (ServerError, EX_REFUSED),
    (ConnectionLost, EX_CONNECTION),
    (VerifyError, EX_VERIFY),
    (IntegrityError, EX_VERIFY),
    (Cancelled, EX_INTERRUPTED),
    (KeyboardInterrupt, EX_INTERRUPTED),
    (BrokenPipeError, EX_PIPE),
    (LocalError, EX_USAGE),
    (TransferError, EX_USAGE),
    (CredentialError, EX_USAGE),
    (ValueError, EX_USAGE),
    (OSError, EX_USAGE),
)


def exit_status(exc: BaseException) -> Optional[int]:
    """The status `exc` ends ftpc with, or None for a failure nobody expected."""
    for kind, status in FAILURES:
        if isinstance(exc, kind):
            return status
    return None


def message(exc: BaseException, tried_login: bool = False) -> str:
    """One sentence for the person at the keyboard."""
    if isinstance(exc, ServerError):
        return describe(exc, tried_login)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return str(exc) or type(exc).__name__


def broken_pipe(exc: BaseException) -> bool:
    """A write to standard output failed because its reader is gone."""
    return isinstance(exc, BrokenPipeError) or isinstance(exc.__cause__, BrokenPipeError)


def table_text() -> str:
    return "\n".join(f"  {status:>3}  {meaning}" for status, meaning in TABLE)
