"""Uploads a person can trust: `put` sends a local file (or standard input)
hashing it on the way (`P name size -`, one read of the file), with its
modification time; the server commits it only whole and matching, so a cut
upload leaves the old file of that name untouched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import BinaryIO, Optional

from ftpd.client import Client
from ftpd.ftpc.transfer import (Cancelled, LocalFileError, Outcome, ProgressFactory, no_bar,
                                path_problem)


def upload(client: Client, path: str, name: Optional[str] = None,
           bar: ProgressFactory = no_bar, stdin: Optional[BinaryIO] = None,
           resume: bool = False) -> Outcome:
    """Send a local file (`-`: standard input, spooled to a temporary file to
    learn its size). It is hashed while it is sent (`P name size -`), so it
    is read once, and the server stores it only if the digest matches; its
    modification time travels with it. `resume`: a resumable upload (`C`,
    hashed first), sending only what the server lacks of an interrupted one."""
    if path == "-":
        if not name:
            raise LocalFileError("put - needs a name for the server: put - --as NAME")
        _check_store_name(name)
        with _spool(stdin or sys.stdin.buffer) as spooled:
            return _send(client, spooled, name, bar, None, resume)
    path = os.path.expanduser(path)
    name = name or os.path.basename(os.path.normpath(path))
    _check_store_name(name)
    if not os.path.isfile(path):
        what = "is not a regular file" if os.path.exists(path) else "does not exist"
        raise LocalFileError(f"{path} {what}")
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        return _send(client, handle, name, bar, int(os.fstat(handle.fileno()).st_mtime),
                     resume)


def _check_store_name(name: str) -> None:
    problem = path_problem(name)
    if problem:
        raise LocalFileError(f"cannot store as {name!r}: {problem}; choose another name")


def _spool(source: BinaryIO) -> BinaryIO:
    spooled = tempfile.TemporaryFile()
    try:
        shutil.copyfileobj(source, spooled, 1 << 20)
        spooled.seek(0)
    except OSError as exc:
        spooled.close()
        raise LocalFileError(f"cannot spool standard input: {exc.strerror or exc}") from exc
    return spooled


def _send(client: Client, handle: BinaryIO, name: str, bar: ProgressFactory,
          mtime: Optional[int], resume: bool = False) -> Outcome:
    progress = bar(name, os.fstat(handle.fileno()).st_size, 0)
    try:
        size, digest = client.put(handle, name, progress=progress.update, digest="stream",
                                  mtime=mtime, resume=resume)
    except KeyboardInterrupt as exc:
        client.close()      # a cut upload is never committed by the server
        kept = "; the server keeps what arrived: put --continue sends the rest" \
            if resume else ""
        raise Cancelled(f"upload cancelled; nothing was stored on the server{kept}") from exc
    finally:
        progress.close()
    return Outcome(name, size, digest)
