"""How file-system failures become FTPD/1 replies.

The library raises `LibraryError` (an FTPD/1 code and a text) and never lets
an OSError reach the session: each errno gets the code a client can act on.
"""

from __future__ import annotations

import errno

from ftpd.protocol import (CONFLICT, FORBIDDEN, INTERNAL, NOT_FOUND, NO_SPACE, TOO_LARGE,
                           CodedError)

# A path through a symlink, a file where a directory should be, or nothing
# there at all: to a client each is simply "no such file or directory".
MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO})


class LibraryError(CodedError):
    """A file-system outcome as the reply a client gets."""


def os_error(exc: OSError, doing: str) -> LibraryError:
    """The reply for `exc`, raised while `doing` (e.g. "cannot store")."""
    if exc.errno in MISSING:
        return LibraryError(NOT_FOUND, "no such file or directory")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LibraryError(NO_SPACE, "not enough free space, nothing stored")
    if exc.errno == errno.EFBIG:
        return LibraryError(TOO_LARGE, "file too large")
    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
        return LibraryError(CONFLICT, "a directory or file of that name is in the way")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return LibraryError(FORBIDDEN, f"{doing}: {exc.strerror}")
    return LibraryError(INTERNAL, f"{doing}: {exc.strerror}")
