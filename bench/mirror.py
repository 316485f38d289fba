"""Trees: `ftpc put -r` / `get -r` against `rsync -a` to and from an rsync
daemon (rsync://) on the same machine, both over loopback, every tree on
tmpfs (docs/benchmark.md, "Trees").

Two source trees: `tree`, many small files in directories of 1,000 (issue
13 and 14: 10,000 of 4 KiB), and `bigtree`, the workspace's big file
beside a few small ones (issue 13: a tree with a 1 GiB file). Each timed
run starts from an empty destination, except `tree_again`, which sends
the tree again over a complete copy: every file identical, so ftpc skips
each one after comparing SHA-256 (pipelined `H`) and rsync after comparing
size and mtime. Every copy is checked afterwards (names and sizes; for the
run again, that no file was replaced), untimed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from bench.measure import MeasureError
from bench.servers import PROJECT, Contestant, Workspace, ensure_installed

TREE_FAMILIES = ("tree_put", "tree_get", "tree_again", "bigtree_put", "bigtree_get")
Listing = Dict[str, Tuple[int, int]]          # relative path -> (size, inode)


def ensure_rsync() -> str:
    return ensure_installed("rsync", "rsync", "or leave the tree families out with --only")


class Rsyncd(Contestant):
    """`rsync --daemon` with one writable module, `bench`, on tmpfs."""

    name = "rsync"
    proto = "rsync"
    families = frozenset(TREE_FAMILIES)

    def __init__(self, workspace: Workspace, binary: str):
        super().__init__()
        self.binary = binary
        self.upload_dir = workspace.dir / "rsync"
        self.upload_dir.mkdir()
        self.conf = workspace.dir / "rsyncd.conf"
        self.conf.write_text(
            f"use chroot = no\nlog file = {workspace.dir / 'rsyncd.log'}\n"
            f"pid file = {workspace.dir / 'rsyncd.pid'}\n[bench]\npath = {self.upload_dir}\n"
            f"read only = no\nuid = {os.geteuid()}\ngid = {os.getegid()}\n")

    def url(self, path: str = "") -> str:
        return f"rsync://127.0.0.1:{self.port}/bench/{path}"

    def start(self) -> "Rsyncd":
        self.launch([self.binary, "--daemon", "--no-detach", f"--port={self.port}",
                     f"--config={self.conf}", "--address=127.0.0.1"], b"@RSYNCD")
        return self


def make_tree(top: Path, files: int, size: int) -> None:
    """`files` files of `size` random bytes, 1,000 to a directory."""
    for i in range(files):
        folder = top / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:06d}.dat").write_bytes(os.urandom(size))


def listing(top: Path) -> Listing:
    found = {}
    for folder, _, names in os.walk(top):
        for name in names:
            path = os.path.join(folder, name)
            info = os.stat(path)
            found[os.path.relpath(path, top)] = (info.st_size, info.st_ino)
    return found


def same_files(copy: Listing, source: Listing) -> bool:
    return {k: v[0] for k, v in copy.items()} == {k: v[0] for k, v in source.items()}


class TreeMeter:
    """The tree families, with the sizes of this run. Sources are made on first use."""

    def __init__(self, workspace: Workspace, sizes: Dict[str, int]):
        self.ws = workspace
        self.sizes = sizes
        self.limit = sizes["time_limit"]
        self.sources = workspace.dir / "trees"
        self._made: Dict[str, Listing] = {}

    def methods(self) -> Dict[str, Callable[[Contestant], Dict[str, float]]]:
        return {family: getattr(self, family) for family in TREE_FAMILIES}

    def tree_put(self, who: Contestant) -> Dict[str, float]:
        return {"tree_put_s": self._put(who, "tree")}

    def tree_get(self, who: Contestant) -> Dict[str, float]:
        return {"tree_get_s": self._get(who, "tree")}

    def tree_again(self, who: Contestant) -> Dict[str, float]:
        return {"tree_again_s": self._again(who, "tree")}

    def bigtree_put(self, who: Contestant) -> Dict[str, float]:
        return {"bigtree_put_s": self._put(who, "bigtree")}

    def bigtree_get(self, who: Contestant) -> Dict[str, float]:
        return {"bigtree_get_s": self._get(who, "bigtree")}

    def source(self, kind: str) -> Listing:
        if kind not in self._made:
            top = self.sources / kind
            if kind == "tree":
                make_tree(top, self.sizes["tree_files"], self.sizes["tree_file_size"])
            else:
                make_tree(top / "small", self.sizes["bigtree_files"],
                          self.sizes["tree_file_size"])
                os.link(self.ws.big, top / self.ws.big.name)
            self._made[kind] = listing(top)
        return self._made[kind]

    def _put(self, who: Contestant, kind: str) -> float:
        source = self.source(kind)
        remote = who.upload_dir / kind
        shutil.rmtree(remote, ignore_errors=True)
        seconds = self._run(who, "put", kind)
        if not same_files(listing(remote), source):
            raise MeasureError(f"put -r of {kind} left a copy that differs from the source")
        return seconds

    def _again(self, who: Contestant, kind: str) -> float:
        before = self._complete_remote(who, kind)
        seconds = self._run(who, "put", kind)
        if listing(who.upload_dir / kind) != before:
            raise MeasureError(f"put -r of an unchanged {kind} replaced files")
        return seconds

    def _get(self, who: Contestant, kind: str) -> float:
        source = self._complete_remote(who, kind)
        back = self.ws.dir / "back" / kind
        shutil.rmtree(back.parent, ignore_errors=True)
        back.parent.mkdir()
        try:
            seconds = self._run(who, "get", kind)
            if not same_files(listing(back), source):
                raise MeasureError(f"get -r of {kind} left a copy that differs from the source")
        finally:
            shutil.rmtree(back.parent, ignore_errors=True)
        return seconds

    def _complete_remote(self, who: Contestant, kind: str) -> Listing:
        """The remote copy, sent first (untimed) when it is not complete."""
        remote = who.upload_dir / kind
        found = listing(remote)
        if not same_files(found, self.source(kind)):
            self._put(who, kind)
            found = listing(remote)
        return found

    def _run(self, who: Contestant, direction: str, kind: str) -> float:
        """One transfer as a user types it, timed from start to exit."""
        argv = self._argv(who, direction, kind)
        env = dict(os.environ, PYTHONPATH=str(PROJECT))
        started = time.monotonic()
        try:
            done = subprocess.run(argv, cwd=self.sources, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, timeout=self.limit)
        except subprocess.TimeoutExpired as exc:
            raise MeasureError(f"{argv[0]} {direction} of {kind} took more than "
                              f"{self.limit:g}s") from exc
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise MeasureError(f"{' '.join(argv[-4:])} exited {done.returncode}: "
                              f"{done.stderr.strip()[-300:]}")
        return seconds

    def _argv(self, who: Contestant, direction: str, kind: str) -> List[str]:
        back = str(self.ws.dir / "back" / kind)
        if isinstance(who, Rsyncd):
            if direction == "put":
                return [who.binary, "-a", kind, who.url()]
            return [who.binary, "-a", who.url(kind + "/"), back + "/"]
        ftpc = [sys.executable, "-m", "ftpd.ftpc", "-q", f"127.0.0.1:{who.port}"]
        if direction == "put":
            return ftpc + ["put", "-r", kind]
        return ftpc + ["get", "-r", kind, "-o", back]
