"""The shell's folder commands: cd, pwd, mkdir, rm, rmdir, mv, mget, mput,
get -r and put -r, and remote completion through directories.

A mixin of ftpc.shell.Shell: it uses the shell's session (need, recover),
its output (out, err) and its current remote directory (rdir).
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Set, Tuple

from ftpd.client import Client, ClientError, ServerError
from ftpd.ftpc.completion import local_paths
from ftpd.ftpc.operations import (entry_of, has_glob, local_glob, make_dirs, move,
                                  remote_glob, remove_tree, require_dir)
from ftpd.ftpc.paths import RemoteDir, join, absolute, split
from ftpd.ftpc.status import EX_OK, exit_status
from ftpd.ftpc.transfer import (GetOptions, LocalFileError, ProgressFactory, download,
                                local_target)
from ftpd.ftpc.tree import Summary, TreeOptions
from ftpd.ftpc.tree_get import get_tree
from ftpd.ftpc.tree_put import put_tree
from ftpd.ftpc.upload import upload

NAMES_TTL = 5.0      # seconds a directory's listing is reused for tab completion
TREE_FLAGS = {"-f": "force", "--force": "force", "-c": "resume", "--continue": "resume"}


class Unfinished(Exception):
    """A command that did part of its work: what failed was said already;
    `status` is the exit status it stands for."""

    def __init__(self, text: str, status: int):
        super().__init__(text)
        self.status = status


class FolderCommands:
    rdir: RemoteDir
    batch: bool
    listings: Dict[str, Tuple[float, List[Tuple[str, bool]]]]

    # provided by Shell
    need: Callable[[], Client]
    out: Callable[[str], None]
    err: Callable[[str], None]
    bar: Callable[[], ProgressFactory]
    recover: Callable[[], None]
    client_closed: Callable[[], bool]
    words: Callable[..., Tuple[List[str], Set[str]]]

    def forget_listings(self) -> None:
        self.listings = {}

    def do_pwd(self, arg: str) -> None:
        """pwd: the current directory on the server."""
        self.words(arg, "pwd", 0, 0)
        self.out(f"Remote directory: {absolute(self.rdir.cwd)}")

    def do_cd(self, arg: str) -> None:
        """cd [PATH]: change the remote directory (`..` up, `/` the top,
        `-` the previous one, nothing: the top)."""
        words, _ = self.words(arg, "cd [PATH]", 0, 1)
        target = self.rdir.target(words[0] if words else "/")
        require_dir(self.need(), target)
        self.rdir.move_to(target)

    def do_mkdir(self, arg: str) -> None:
        """mkdir [-p] PATH...: make directories (-p: parents too, no error if there)."""
        words, flags = self.words(arg, "mkdir [-p] PATH...", 1, 1000,
                                  {"-p": "parents", "--parents": "parents"})
        for word in words:
            make_dirs(self.need(), self.rdir.resolve(word), "parents" in flags)
        self.forget_listings()

    def do_rmdir(self, arg: str) -> None:
        """rmdir PATH...: remove empty directories."""
        words, _ = self.words(arg, "rmdir PATH...", 1, 1000)
        client = self.need()
        for word in words:
            path = self.rdir.resolve(word)
            require_dir(client, path)
            client.delete(path)
        self.forget_listings()

    def do_rm(self, arg: str) -> None:
        """rm [-r] [--yes] PATH...: remove files; with -r directories and
        everything in them (asked once, y/N, unless --yes)."""
        words, flags = self.words(arg, "rm [-r] [--yes] PATH...", 1, 1000,
                                  {"-r": "recursive", "-rf": "recursive", "--yes": "yes",
                                   "-y": "yes"})
        client = self.need()
        paths = [self.rdir.resolve(word) for word in words]
        if "" in paths:
            raise LocalFileError("the top directory cannot be removed")
        trees = [p for p in paths if "recursive" in flags and _is_dir(client, p)]
        if trees and "yes" not in flags and not self.confirm(trees):
            self.out("Nothing removed.")
            return
        try:
            for path in paths:
                if path in trees:
                    self.out(f"Removed {absolute(path)} ({remove_tree(client, path)} entries).")
                else:
                    client.delete(path)
        finally:
            self.forget_listings()

    def confirm(self, trees: List[str]) -> bool:
        if self.batch:
            raise LocalFileError("rm -r in a script needs --yes")
        names = ", ".join(absolute(p) for p in trees)
        return input(f"Remove {names} and everything in it? [y/N] ").strip().lower() \
            in ("y", "yes")

    def do_mv(self, arg: str) -> None:
        """mv FROM TO: move or rename; into TO when it is a directory."""
        words, _ = self.words(arg, "mv FROM TO", 2, 2)
        source = self.rdir.resolve(words[0])
        target = move(self.need(), source, self.rdir.resolve(words[1]))
        self.forget_listings()
        self.out(f"Moved {absolute(source)} -> {absolute(target)}")

    # -- trees and globs ----------------------------------------------------------------

    def get_tree(self, words: List[str], flags: Set[str]) -> None:
        remote = self.rdir.resolve(words[0])
        local = words[1] if len(words) > 1 else split(remote)[1]
        if not local:
            raise LocalFileError("get -r of the top directory needs a LOCAL directory")
        options = TreeOptions("force" in flags, "resume" in flags)
        self.tree_done(get_tree(self.need(), remote, local, options, self.bar(), self.err))

    def put_tree(self, words: List[str], flags: Set[str]) -> None:
        local = os.path.expanduser(words[0])
        name = words[1] if len(words) > 1 else os.path.basename(os.path.normpath(local))
        remote = self.rdir.resolve(name)
        options = TreeOptions("force" in flags)
        try:
            summary = put_tree(self.need(), local, remote, options, self.bar(), self.err)
        finally:
            self.forget_listings()
        self.tree_done(summary)

    def tree_done(self, summary: Summary) -> None:
        self.out(summary.line())
        if self.client_closed():
            self.recover()
        if summary.status != EX_OK:
            raise Unfinished("", summary.status)

    def do_mget(self, arg: str) -> None:
        """mget [--force] [--continue] GLOB...: download the matching files
        here (wildcards * ? [] in the last part of each path)."""
        words, flags = self.words(arg, "mget [--force] [--continue] GLOB...", 1, 1000,
                                  TREE_FLAGS)
        client = self.need()
        options = GetOptions("force" in flags, "resume" in flags)
        names = []
        for word in words:
            path = self.rdir.resolve(word)
            found = remote_glob(client, path) if has_glob(word) else [path]
            if not found:
                self.err(f"{word}: no match")
            names += found
        self.each(names, lambda name: "Saved " + download(
            client, name, local_target(name, None), options, self.bar()).path, "received")

    def do_mput(self, arg: str) -> None:
        """mput GLOB...: upload the matching local files into the remote directory."""
        words, _ = self.words(arg, "mput GLOB...", 1, 1000)
        client = self.need()
        paths = []
        for word in words:
            found = [p for p in local_glob(word) if not os.path.isdir(p)]
            if not found:
                self.err(f"{word}: no matching file")
            paths += found
        self.each(paths, lambda path: "Stored " + absolute(upload(
            client, path, join(self.rdir.cwd, os.path.basename(path)), self.bar()).path),
                  "sent")
        self.forget_listings()

    def each(self, items: List[str], action: Callable[[str], str], verb: str) -> None:
        """Run `action` on every item; a failure is said and counted, the
        rest still goes (as mget and mput do in other clients)."""
        done, status = 0, EX_OK
        for item in items:
            try:
                self.out(f"{action(item)}")
                done += 1
            except (ClientError, LocalFileError, OSError) as exc:
                self.err(f"{item}: {exc}")
                status = status or (exit_status(exc) or EX_OK)
                if self.client_closed():
                    self.recover()
        self.out(f"{done} of {len(items)} files {verb}")
        if status != EX_OK or not items:
            raise Unfinished("", status or 1)

    # -- completion ---------------------------------------------------------------------

    def remote_paths(self, prefix: str, dirs_only: bool = False) -> List[str]:
        """Remote paths starting with `prefix` as typed (relative, or from
        `/`), through directories: a directory comes with a trailing `/`."""
        head = prefix[:prefix.rfind("/") + 1]
        rows = self.listing(self.rdir.resolve(head) if head else self.rdir.cwd)
        return [head + name + ("/" if is_dir else "") for name, is_dir in rows
                if is_dir or not dirs_only]

    def listing(self, path: str) -> List[Tuple[str, bool]]:
        stamp, rows = self.listings.get(path, (0.0, []))
        if time.monotonic() - stamp > NAMES_TTL:
            try:
                rows = [(e.name, e.is_dir) for e in self.need().list(path or None)]
            except ClientError:
                return []
            self.listings[path] = (time.monotonic(), rows)
        return rows

    def local_dirs(self, prefix: str) -> List[str]:
        return local_paths(prefix, dirs_only=True)


def _is_dir(client: Client, path: str) -> bool:
    found = entry_of(client, path)
    if found is None:
        raise ServerError(404, f"no such file or directory: {absolute(path)}")
    return found.is_dir
