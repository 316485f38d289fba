"""Folder operations on the server, shared by the shell and the one-shot
commands: what a path is, mkdir -p, rm -r, mv into a directory, remote globs.

Paths here are wire paths (ftpd.ftpc.paths resolves what was typed). Where
many requests are independent they travel pipelined (Client.batch).
"""

from __future__ import annotations

import fnmatch
import glob
import os
from typing import List, Optional, Tuple

from ftpd import protocol
from ftpd.client import Client, Entry, ServerError
from ftpd.ftpc.paths import join, absolute, split

GLOB_CHARS = set("*?[")


def entry_of(client: Client, path: str) -> Optional[Entry]:
    """The listing row of `path` (from its parent's listing), None if missing;
    the root is a directory."""
    if not path:
        return Entry("", None, 0, True)
    parent, base = split(path)
    try:
        rows = client.list(parent or None)
    except ServerError as exc:
        if exc.code in (protocol.NOT_FOUND, protocol.CONFLICT):
            return None
        raise
    return next((row for row in rows if row.name == base), None)


def is_dir(client: Client, path: str) -> bool:
    found = entry_of(client, path)
    return found is not None and found.is_dir


def require_dir(client: Client, path: str) -> None:
    found = entry_of(client, path)
    if found is None:
        raise ServerError(protocol.NOT_FOUND, f"no such directory: {absolute(path)}")
    if not found.is_dir:
        raise ServerError(protocol.CONFLICT, f"not a directory: {absolute(path)}")


def make_dirs(client: Client, path: str, parents: bool) -> List[str]:
    """M, or with `parents` every missing directory down to `path` (an
    existing directory is fine then, as with mkdir -p); returns those made."""
    if not parents:
        client.mkdir(path)
        return [path]
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    made = []
    for prefix, outcome in zip(prefixes, client.batch([("M", protocol.encode_path(p))
                                                        for p in prefixes]), strict=True):
        if not isinstance(outcome, ServerError):
            made.append(prefix)
        elif outcome.code != protocol.CONFLICT or not is_dir(client, prefix):
            raise outcome
    return made


def tree_contents(client: Client, path: str) -> Tuple[List[str], List[str]]:
    """(files, directories) under the directory `path`, directories
    parents first, through the pipelined walk."""
    files: List[str] = []
    dirs: List[str] = []
    for dirpath, dirnames, found in client.walk(path or None):
        files += [join(dirpath, entry.name) for entry in found]
        dirs += [join(dirpath, name) for name in dirnames]
    return files, dirs


def remove_tree(client: Client, path: str) -> int:
    """Delete the directory `path` and everything in it: the files in
    pipelined windows, then the directories deepest first. Returns the
    number of entries removed; the first refusal is raised."""
    files, dirs = tree_contents(client, path)
    doomed = files + dirs[::-1] + [path]
    for outcome in client.batch([("D", protocol.encode_path(p)) for p in doomed]):
        if isinstance(outcome, ServerError):
            raise outcome
    return len(doomed)


def move(client: Client, source: str, target: str) -> str:
    """R, into `target` when it is a directory (as mv); returns where it went."""
    if not source:
        raise ServerError(protocol.BAD_REQUEST, "the root cannot be moved")
    if is_dir(client, target):
        target = join(target, split(source)[1])
    client.rename(source, target)
    return target


def has_glob(text: str) -> bool:
    return bool(GLOB_CHARS & set(text))


def remote_glob(client: Client, pattern: str) -> List[str]:
    """Files (and directories) matching a wire-path pattern whose last
    component holds the wildcards, matched here against the listing: the
    server knows no globs. Hidden names never match (none are listed)."""
    parent, base = split(pattern)
    if has_glob(parent):
        raise ValueError(f"{pattern}: wildcards work in the last part of a path only")
    rows = client.list(parent or None)
    return [join(parent, row.name) for row in rows if fnmatch.fnmatchcase(row.name, base)]


def local_glob(pattern: str) -> List[str]:
    """Local paths matching a shell pattern (the pattern itself if it has none)."""
    pattern = os.path.expanduser(pattern)
    if not has_glob(pattern):
        return [pattern]
    return sorted(glob.glob(pattern))
