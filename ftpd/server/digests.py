"""A file's SHA-256 kept with the file, so `H` need not read it again.

The digest an upload computed anyway is written, before the commit's
rename, to the extended attribute `user.ftpd.sha256` of the file as
"<size> <mtime_ns> <sha256>". It is trusted only while the open file's
size and mtime_ns are still those numbers: any write through the file
system moves mtime, so a file changed in place behind the server's back
is hashed again, never answered from a stale record.

The one change this cannot see is a deliberate one: new content of the same
size whose writer then sets the old mtime back (utime). That is the trust
rsync's quick check and make place in (size, mtime). ctime would catch it,
but cannot be recorded: setting the attribute itself moves ctime (and so
does the commit's rename), so a stored ctime would never match.

Kernel timestamps of ordinary writes come from a coarse clock (a few ms
per tick), so a write in the same tick as the one before leaves mtime as
it was. Hence: a commit stamps the file with a fine-grained mtime of its
own before recording it, and a digest computed for `H` is recorded only
for a file not modified in the last RACY_NS (git's "racily clean" rule).
"""

from __future__ import annotations

import errno
import os
import time
from typing import Optional

ATTRIBUTE = "user.ftpd.sha256"
RACY_NS = 2_000_000_000
UNSUPPORTED = (errno.ENOTSUP, errno.EOPNOTSUPP)
_HEX = frozenset("0123456789abcdef")


def supported(dir_fd: int) -> bool:
    """Whether the file system under `dir_fd` takes user extended attributes."""
    try:
        os.getxattr(dir_fd, ATTRIBUTE)
    except OSError as exc:
        return exc.errno not in UNSUPPORTED    # ENODATA: supported, none set
    return True


def recall(fd: int, info: Optional[os.stat_result] = None) -> Optional[str]:
    """The recorded digest of the open file `fd`, if its size and mtime_ns still match."""
    info = info or os.fstat(fd)
    try:
        raw = os.getxattr(fd, ATTRIBUTE)
    except OSError:
        return None
    fields = raw.decode("ascii", "replace").split(" ")
    if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
        return None
    size, mtime_ns, digest = int(fields[0]), int(fields[1]), fields[2]
    if size != info.st_size or mtime_ns != info.st_mtime_ns:
        return None
    if len(digest) != 64 or not _HEX.issuperset(digest):
        return None
    return digest


def record(fd: int, digest: str, info: Optional[os.stat_result] = None) -> bool:
    """Attach `digest` to the open file as it is now; False where it could
    not be (no xattrs here, not our file, read-only): the file stays usable."""
    info = info or os.fstat(fd)
    value = f"{info.st_size} {info.st_mtime_ns} {digest}".encode("ascii")
    try:
        os.setxattr(fd, ATTRIBUTE, value)
    except OSError:
        return False
    return True


def settled(info: os.stat_result, now_ns: Optional[int] = None) -> bool:
    """Whether the file was last modified long enough ago that a later write
    is sure to move its mtime (see RACY_NS)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    return now_ns - info.st_mtime_ns >= RACY_NS
