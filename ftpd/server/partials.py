"""Resumable uploads (C): where an interrupted one is kept, and for how long.

A `C` upload writes to a hidden file in the target's directory whose name
is derived from everything the upload is bound to: the account, the path
and the size and SHA-256 announced. A later `C` with the same four finds
it and continues after the bytes it holds; any other upload cannot, since
it computes another name. Like every temp it starts with `.`, so it is
never listed and cannot be named. It is kept for `[files]
partial_upload_ttl` seconds after its last byte arrived: an expired one is
removed when the server starts, when a `C` into its directory starts, or
reused from byte 0 by a `C` that finds it.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from typing import List

from ftpd import fileutil
from ftpd.server import temps

PARTIAL_PATTERN = re.compile(r"\A\.ftpd~partial~[0-9a-f]{32}\.part\Z")


def partial_name(account: str, path: str, size: int, digest: str) -> str:
    binding = "\0".join((account, path, str(size), digest.lower()))
    return f"{temps.TEMP_PREFIX}partial~{hashlib.sha256(binding.encode()).hexdigest()[:32]}.part"


def is_partial(filename: str) -> bool:
    return bool(PARTIAL_PATTERN.match(filename))


def expired(info: os.stat_result, ttl: float, now: float = 0.0) -> bool:
    return (now or time.time()) - info.st_mtime >= ttl


def sweep_expired(root_fd: int, ttl: float) -> List[str]:
    """Remove expired partials anywhere below root_fd (at start-up)."""
    return temps.sweep(root_fd, is_partial, modified_before=time.time() - ttl)


def drop_expired_in(dir_fd: int, ttl: float) -> List[str]:
    """Remove expired partials in this one directory (when a C starts there)."""
    removed = []
    limit = time.time() - ttl
    with os.scandir(dir_fd) as scan:
        for item in scan:
            if is_partial(item.name) and temps.older(item, limit):
                fileutil.unlink_quietly(item.name, dir_fd=dir_fd)
                removed.append(item.name)
    return removed
