"""`put -r DIR [NAME]`: a local tree to the server, as a mirror.

One listing of the remote side (the pipelined walk), the missing
directories made in pipelined M windows, the size-equal files compared by
pipelined H, then each new or forced file sent with its digest streamed
(read once) and its modification time. The server commits each file
atomically, so a cut transfer never leaves a partial under a final name.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Dict, List, Set, Tuple

from ftpd import protocol
from ftpd.client import Client, Entry, ServerError, Upload
from ftpd.ftpc.operations import entry_of
from ftpd.ftpc.paths import join, absolute
from ftpd.ftpc.transfer import (Cancelled, LocalFileError, ProgressFactory, no_bar,
                                path_problem)
from ftpd.ftpc.tree import (FatalErrors, Interrupts, KeepGoing, Say, Summary, TreeOptions,
                            abort, differs, file_digest, finish)


@dataclass(frozen=True)
class LocalFile:
    rel: str        # path below the tree's top, '/'-separated
    path: str       # where it is on this machine
    size: int
    mtime: int


@dataclass
class RemoteTree:
    exists: bool
    files: Dict[str, Entry]
    dirs: Set[str]


def put_tree(client: Client, local_root: str, remote_root: str, options: TreeOptions,
             bar: ProgressFactory, say: Say) -> Summary:
    local_root = os.path.expanduser(local_root)
    if not os.path.isdir(local_root):
        raise LocalFileError(f"{local_root} is not a directory")
    summary = Summary("sent")
    dirs, files = scan_local(local_root, summary, say)
    remote = remote_tree(client, remote_root)
    with Interrupts() as interrupts:
        try:
            broken = make_dirs(client, remote_root, dirs, remote, summary, say)
            todo = plan(client, remote_root, files, remote, broken, options, summary, say,
                        interrupts)
            send_all(client, remote_root, todo, bar if todo else no_bar, summary, say,
                     interrupts)
        except FatalErrors as exc:
            if isinstance(exc, KeyboardInterrupt):
                client.close()      # mid-upload: the server discards what it got
            abort(summary, exc, say)
            if isinstance(exc, KeyboardInterrupt):
                raise Cancelled("put -r aborted; the file being sent was not stored") from exc
            raise
    return finish(summary, interrupts, say)


def scan_local(root: str, summary: Summary, say: Say) -> Tuple[List[str], List[LocalFile]]:
    """(directories parents first, files) below `root`; names the server
    cannot hold and links to directories are reported and left out."""
    dirs: List[str] = []
    files: List[LocalFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        keep = []
        for name in sorted(dirnames):
            full = os.path.join(dirpath, name)
            if _refused(full, name, summary, say, os.path.islink(full)):
                continue
            keep.append(name)
            dirs.append(join(rel_dir, name))
        dirnames[:] = keep
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if _refused(full, name, summary, say, False):
                continue
            try:
                info = os.stat(full)
            except OSError as exc:
                summary.fail(full, exc, say)
                continue
            if stat.S_ISREG(info.st_mode):
                files.append(LocalFile(join(rel_dir, name), full, info.st_size,
                                       int(info.st_mtime)))
    return dirs, files


def _refused(full: str, name: str, summary: Summary, say: Say, is_link: bool) -> bool:
    problem = path_problem(name)
    if is_link:
        problem = "a link to a directory is not followed"
    if problem:
        summary.fail(full, LocalFileError(f"left out: {problem}"), say)
    return bool(problem)


def remote_tree(client: Client, remote_root: str) -> RemoteTree:
    """What is already on the server under `remote_root`."""
    top = entry_of(client, remote_root)
    if top is None:
        return RemoteTree(False, {}, set())
    if not top.is_dir:
        raise ServerError(protocol.CONFLICT, f"{absolute(remote_root)} is a file on the server")
    tree = RemoteTree(True, {}, set())
    cut = len(remote_root) + 1 if remote_root else 0
    for dirpath, dirnames, found in client.walk(remote_root or None):
        rel_dir = dirpath[cut:]
        tree.dirs.update(join(rel_dir, name) for name in dirnames)
        tree.files.update((join(rel_dir, entry.name), entry) for entry in found)
    return tree


def make_dirs(client: Client, remote_root: str, dirs: List[str], remote: RemoteTree,
              summary: Summary, say: Say) -> Set[str]:
    """Make the missing directories (parents first, pipelined); returns
    those that could not be made, whose files cannot be sent."""
    if not remote.exists:
        client.mkdir(remote_root)
    missing = [d for d in dirs if d not in remote.dirs]
    outcomes = client.batch([("M", protocol.encode_path(join(remote_root, d)))
                             for d in missing])
    broken: Set[str] = set()
    for rel, outcome in zip(missing, outcomes, strict=True):
        if isinstance(outcome, ServerError):
            broken.add(rel)
            if not _under(rel, broken - {rel}):
                summary.fail(f"mkdir {absolute(join(remote_root, rel))}", outcome, say)
    return broken


def _under(rel: str, broken: Set[str]) -> bool:
    parent = rel.rpartition("/")[0]
    while parent:
        if parent in broken:
            return True
        parent = parent.rpartition("/")[0]
    return False


def plan(client: Client, remote_root: str, files: List[LocalFile], remote: RemoteTree,
         broken: Set[str], options: TreeOptions, summary: Summary, say: Say,
         interrupts: Interrupts) -> List[LocalFile]:
    """The files to send; those equal in size to the server's are compared
    by SHA-256 (H pipelined) and skipped when identical."""
    todo: List[LocalFile] = []
    compare: List[LocalFile] = []
    for item in files:
        there = remote.files.get(item.rel)
        target = absolute(join(remote_root, item.rel))
        if _under(item.rel, broken):
            summary.failed += 1         # its directory's failure was reported
        elif item.rel in remote.dirs:
            summary.fail(target, differs("a directory is there"), say)
        elif there is None:
            todo.append(item)
        elif there.size == item.size:
            compare.append(item)
        elif options.force:
            todo.append(item)
        else:
            summary.fail(target, differs(), say)
    outcomes = client.batch([("H", protocol.encode_path(join(remote_root, item.rel)))
                             for item in compare])
    for item, outcome in zip(compare, outcomes, strict=True):
        if interrupts.stop_asked():
            return []
        try:
            if isinstance(outcome, ServerError):
                raise outcome
            if client.hash_reply(outcome)[1] == file_digest(item.path):
                summary.skipped += 1
            elif options.force:
                todo.append(item)
            else:
                summary.fail(absolute(join(remote_root, item.rel)), differs(), say)
        except KeepGoing as exc:
            summary.fail(item.path, exc, say)
    return todo


def send_all(client: Client, remote_root: str, todo: List[LocalFile], bar: ProgressFactory,
             summary: Summary, say: Say, interrupts: Interrupts) -> None:
    """Send the files pipelined (Client.put_many): each file's bytes go
    out with the next file's P, one round trip per file instead of two."""
    progress = bar(f"put -r {absolute(remote_root)}", sum(item.size for item in todo), 0)
    uploads = (Upload(item.path, join(remote_root, item.rel), item.mtime) for item in todo)
    try:
        for upload, outcome in client.put_many(uploads, progress.update, interrupts.stop_asked):
            if isinstance(outcome, tuple):
                summary.done += 1
                summary.size += outcome[0]
            else:
                summary.fail(absolute(upload.name), outcome, say)
    finally:
        progress.close()

